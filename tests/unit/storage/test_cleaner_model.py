"""The cleaner against a model: every keyed record ever appended, by offset.

Random appends (some tombstones, some compressed), rolls, flushes, cleans with random
settings, clean and unclean reopenings, and reads from random offsets. After every step the
log must serve only records the model holds, at their own offsets, in strictly increasing
order; every key's latest record must still be there unless it is a tombstone past
delete.retention.ms; nothing at or above the cleaner checkpoint may be gone; and a consumer
reading from any offset must come to the first retained record at or after it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck
from hypothesis import event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine
from hypothesis.stateful import invariant
from hypothesis.stateful import rule

from millpond.clock import FakeClock
from millpond.protocol.record_codec import NewRecord
from millpond.protocol.record_codec import encode_batch
from millpond.protocol.record_codec import iter_records
from millpond.protocol.records import iter_batches
from millpond.storage.cleaner import CleanerConfig
from millpond.storage.cleaner import build_cleaned
from millpond.storage.log import Log
from millpond.storage.log import LogConfig

CONFIG = LogConfig(segment_bytes=400, index_interval_bytes=100, retention_ms=-1)
DELETE_RETENTION_MS = 1000
KEYS = [b"a", b"b", b"c", b"d", b"e", b"f"]
Stored = tuple[bytes, bytes | None, int]  # key, value, timestamp


class CleanerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="millpond-cleaner-model-"))
        self.directory = self.root / "compacted-0"
        self.clock = FakeClock()
        self.log = Log.open(self.directory, CONFIG, self.clock, clean_shutdown=True)
        self.model: dict[int, Stored] = {}
        self.end = 0
        self.flushed = 0

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.root)

    def _served(self) -> list[tuple[int, bytes | None, bytes | None]]:
        found = []
        offset = self.log.log_start_offset
        while offset < self.log.log_end_offset:
            data = self.log.read(offset, 1 << 20)
            for header in iter_batches(data):
                found += [
                    (r.offset, r.key, r.value)
                    for r in iter_records(data, header)
                    if r.offset >= self.log.log_start_offset  # below it: skipped, as consumers do
                ]
                offset = header.next_offset
        return found

    # --- operations -------------------------------------------------------------------------

    @rule(
        entries=st.lists(
            st.tuples(st.sampled_from(KEYS), st.none() | st.binary(min_size=1, max_size=40)),
            min_size=1,
            max_size=5,
        ),
        codec=st.sampled_from([0, 0, 1, 4]),
    )
    def append(self, entries: list[tuple[bytes, bytes | None]], codec: int) -> None:
        now = self.clock.wall_ms()
        batch = encode_batch(
            [NewRecord(key, value, now) for key, value in entries], compression=codec
        )
        result = self.log.append(batch, list(iter_batches(batch)))
        for number, (key, value) in enumerate(entries):
            self.model[result.base_offset + number] = (key, value, now)
        self.end = result.last_offset + 1

    @rule()
    def roll(self) -> None:
        self.log.roll()

    @rule()
    def flush(self) -> None:
        self.log.flush()
        self.flushed = self.log.log_end_offset

    @rule(milliseconds=st.integers(0, 1500))
    def advance_clock(self, milliseconds: int) -> None:
        self.clock.advance(milliseconds)

    @rule(
        ratio=st.sampled_from([0.0, 0.3, 0.9]),
        lag=st.sampled_from([0, 0, 800]),
        seal=st.booleans(),
    )
    def clean(self, ratio: float, lag: int, seal: bool) -> None:
        if seal:
            self.roll()
            self.flush()
        config = CleanerConfig(
            delete_retention_ms=DELETE_RETENTION_MS,
            min_compaction_lag_ms=lag,
            min_cleanable_dirty_ratio=ratio,
        )
        job = self.log.begin_clean(self.clock.wall_ms(), config)
        if job is None:
            event("clean: nothing due")
            return
        result = build_cleaned(job)
        assert self.log.finish_clean(result)
        event("clean: removed records" if result.records_removed else "clean: removed nothing")
        if len(job.plan.groups) < len(job.segments):
            event("clean: merged segments")

    @rule(where=st.integers(0, 10_000))
    def delete_records_during_a_clean(self, where: int) -> None:
        self.roll()
        self.flush()
        job = self.log.begin_clean(self.clock.wall_ms(), CleanerConfig(DELETE_RETENTION_MS))
        start = self.log.log_start_offset
        target = start + where % (self.end - start + 1)
        self.log.delete_records_before(target)
        self.model = {offset: stored for offset, stored in self.model.items() if offset >= target}
        if job is not None:
            swapped = self.log.finish_clean(build_cleaned(job))
            event("delete records during a clean: " + ("swapped" if swapped else "discarded"))

    @rule()
    def clean_restart(self) -> None:
        self.log.close()
        self.log = Log.open(self.directory, CONFIG, self.clock, clean_shutdown=True)
        self.flushed = self.log.log_end_offset

    @rule()
    def crash_restart(self) -> None:
        self.log._close_files()
        self.log = Log.open(self.directory, CONFIG, self.clock, clean_shutdown=False)
        end = self.log.log_end_offset
        assert end >= self.flushed
        # A crash may lose the unflushed tail (page cache), never anything flushed.
        self.model = {offset: stored for offset, stored in self.model.items() if offset < end}
        self.end = self.flushed = end

    @rule(where=st.integers(0, 10_000))
    def read_from_anywhere(self, where: int) -> None:
        start, end = self.log.log_start_offset, self.log.log_end_offset
        if start == end:
            return
        offset = start + where % (end - start)
        retained = [o for o, _, _ in self._served() if o >= offset]
        # As a consumer does: a batch keeps its offset span when the cleaner removes records,
        # so one may hold nothing at or after the fetch offset; then fetch from its end.
        while offset < end:
            header = next(iter_batches(data := self.log.read(offset, 1)))
            assert header.last_offset >= offset
            first = [r.offset for r in iter_records(data, header) if r.offset >= offset]
            if first:
                assert first[0] == retained[0]
                return
            offset = header.next_offset
            assert not retained or retained[0] >= offset
        assert not retained

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def serves_the_latest_records_at_their_offsets(self) -> None:
        served = self._served()
        offsets = [offset for offset, _, _ in served]
        assert offsets == sorted(set(offsets))
        for offset, key, value in served:
            assert self.model[offset][:2] == (key, value)
        present = set(offsets)
        latest: dict[bytes, int] = {}
        for offset, (key, _, _) in sorted(self.model.items()):
            latest[key] = offset
        now = self.clock.wall_ms()
        for offset in latest.values():
            _, value, timestamp = self.model[offset]
            if offset not in present:
                assert value is None and timestamp < now - DELETE_RETENTION_MS
        for offset in self.model:
            if offset >= self.log.cleaner_checkpoint:
                assert offset in present
        assert self.log.log_end_offset == self.end
        assert not list(self.directory.glob("*.cleaned")) + list(self.directory.glob("*.swap"))


CleanerMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCleanerModel = CleanerMachine.TestCase
