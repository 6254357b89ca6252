"""The Log against a simple in-memory model: a list of stored batches with their offsets.

Appends, rolls, flushes, retention, DeleteRecords, clean restarts and crashes (with a torn
or bit-flipped unflushed tail) must leave the log serving exactly the model's batches from
log_start_offset on; a crash may only lose a suffix, and never anything flushed.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine
from hypothesis.stateful import invariant
from hypothesis.stateful import precondition
from hypothesis.stateful import rule

from millpond.clock import FakeClock
from millpond.protocol.records import iter_batches
from millpond.storage.log import Log
from millpond.storage.log import LogConfig
from millpond.storage.log import OffsetOutOfRangeError
from tests.support.batches import build_batch
from tests.support.batches import concat
from tests.support.batches import headers_of

CONFIG = LogConfig(segment_bytes=700, index_interval_bytes=150, retention_ms=-1)
_PREFIX = struct.Struct(">qi")


@dataclass(frozen=True)
class StoredBatch:
    base_offset: int
    last_offset: int
    data: bytes


def _batch_positions(path: Path) -> list[tuple[int, int, int]]:
    """(position, size, base_offset) of each whole batch in a segment file."""
    data = path.read_bytes()
    found = []
    position = 0
    while position + 12 <= len(data):
        base_offset, length = _PREFIX.unpack_from(data, position)
        if position + 12 + length > len(data):
            break
        found.append((position, 12 + length, base_offset))
        position += 12 + length
    return found


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="millpond-log-model-"))
        self.directory = self.root / "topic-0"
        self.clock = FakeClock()
        self.log = Log.open(self.directory, CONFIG, self.clock, clean_shutdown=True)
        self.model: list[StoredBatch] = []
        self.start = 0
        self.end = 0
        self.flushed = 0

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.root)

    def _visible(self) -> list[StoredBatch]:
        return [batch for batch in self.model if batch.last_offset >= self.start]

    # --- operations -------------------------------------------------------------------------

    @rule(
        shapes=st.lists(
            st.tuples(st.integers(1, 4), st.integers(0, 150), st.integers(-5, 20)),
            min_size=1,
            max_size=4,
        ),
        compressed=st.booleans(),
    )
    def append(self, shapes: list[tuple[int, int, int]], compressed: bool) -> None:
        now = self.clock.wall_ms()
        batches = [
            build_batch(
                [bytes([count, size]) * (size // 2 + 1)] * count,
                timestamps=[now + skew + i for i in range(count)],
                compression=1 if compressed else 0,
            )
            for count, size, skew in shapes
        ]
        records, headers = concat(*batches)
        result = self.log.append(records, headers)
        assert result.base_offset == self.end
        for header in iter_batches(records):
            data = bytes(records[header.position : header.position + header.size])
            self.model.append(StoredBatch(header.base_offset, header.last_offset, data))
        self.end = self.model[-1].last_offset + 1
        assert result.last_offset == self.end - 1

    @rule()
    def roll(self) -> None:
        self.log.roll()

    @rule()
    def flush(self) -> None:
        self.log.flush()
        assert self.log.recovery_point == self.end
        self.flushed = self.end

    @rule(milliseconds=st.integers(0, 3000))
    def advance_clock(self, milliseconds: int) -> None:
        self.clock.advance(milliseconds)

    @rule(retention_ms=st.integers(-1, 3000), retention_bytes=st.integers(-1, 3000))
    def apply_retention(self, retention_ms: int, retention_bytes: int) -> None:
        self.log.config = replace(
            CONFIG, retention_ms=retention_ms, retention_bytes=retention_bytes
        )
        self.log.apply_retention()
        self.log.config = CONFIG
        new_start = self.log.log_start_offset
        assert new_start >= self.start
        if new_start > self.start:  # whole segments went: it starts at a batch
            assert new_start == self.end or any(b.base_offset == new_start for b in self.model)
        self.start = new_start

    @rule(offset=st.integers(0, 10_000))
    def delete_records_before(self, offset: int) -> None:
        offset = offset % (self.end + 3)
        if offset > self.end:
            with pytest.raises(OffsetOutOfRangeError):
                self.log.delete_records_before(offset)
            return
        self.start = max(self.start, offset)
        assert self.log.delete_records_before(offset) == self.start

    @rule(where=st.integers(0, 10_000), max_bytes=st.integers(0, 1500))
    def read_somewhere(self, where: int, max_bytes: int) -> None:
        offset = self.start + where % (self.end - self.start + 1)
        data = self.log.read(offset, max_bytes)
        if offset == self.end:
            assert data == b""
            return
        expected = [b for b in self.model if b.last_offset >= offset]
        got = headers_of(data)
        assert got
        assert data == b"".join(b.data for b in expected[: len(got)])
        assert len(got) == 1 or len(data) <= max_bytes

    @rule()
    def clean_restart(self) -> None:
        self.log.close()
        self.log = Log.open(self.directory, CONFIG, self.clock, clean_shutdown=True)
        assert self.log.recovery_truncated_bytes == 0
        self.flushed = self.end

    @rule(
        damage=st.sampled_from(["none", "truncate", "flip"]),
        which=st.integers(0, 1000),
        where=st.floats(0, 1, exclude_max=True),
        bit=st.integers(0, 7),
    )
    def crash_restart(self, damage: str, which: int, where: float, bit: int) -> None:
        self.log._close_files()
        if damage != "none":
            self._damage_unflushed_tail(damage, which, where, bit)
        self.log = Log.open(self.directory, CONFIG, self.clock, clean_shutdown=False)
        new_end = self.log.log_end_offset
        assert self.flushed <= new_end <= max(self.end, self.start)
        assert self.log.log_start_offset == self.start
        if new_end != self.start:
            assert any(b.last_offset + 1 == new_end for b in self.model)
        event(f"crash ({damage}): lost {'some' if new_end < self.end else 'nothing'}")
        if new_end > self.start:
            event("segments after crash: " + ("several" if self.log.segment_count > 1 else "one"))
        if damage == "none":
            assert new_end == self.end
            assert self.log.recovery_truncated_bytes == 0
        self.model = [b for b in self.model if b.last_offset < new_end]
        self.end = self.flushed = new_end

    def _damage_unflushed_tail(self, damage: str, which: int, where: float, bit: int) -> None:
        """Truncate or flip a bit in bytes written after the last flush, as a power cut can."""
        regions: list[tuple[Path, int, list[tuple[int, int, int]]]] = []
        for path in sorted(self.directory.glob("*.log")):
            batches = _batch_positions(path)
            unflushed = [b for b in batches if b[2] >= self.flushed]
            if unflushed:
                regions.append((path, unflushed[0][0], unflushed))
        if not regions:
            return
        path, first_position, unflushed = regions[which % len(regions)]
        if damage == "truncate":
            size = path.stat().st_size
            cut = first_position + int(where * (size - first_position))
            with path.open("r+b") as file:
                file.truncate(cut)
        else:
            # Flip a bit the CRC covers (or the magic byte): from byte 16 of a batch on.
            position, size, _ = unflushed[int(where * len(unflushed))]
            target = position + 16 + (which % (size - 16))
            data = bytearray(path.read_bytes())
            data[target] ^= 1 << bit
            path.write_bytes(data)

    # --- what must always hold --------------------------------------------------------------

    @invariant()
    def serves_the_model(self) -> None:
        log = self.log
        assert (log.log_start_offset, log.log_end_offset) == (self.start, self.end)
        assert log.recovery_point >= self.flushed
        stored: list[bytes] = []
        offset = self.start
        while offset < self.end:
            data = log.read(offset, 1 << 20)
            headers = headers_of(data)
            stored += [data[h.position : h.position + h.size] for h in headers]
            offset = headers[-1].next_offset
        assert stored == [b.data for b in self._visible()]
        assert [h.base_offset for h in log.batches()] == [b.base_offset for b in self._visible()]

    @precondition(lambda self: self.end > self.start)
    @invariant()
    def newest_record_is_findable_by_time(self) -> None:
        found = self.log.max_timestamp()
        assert found is not None
        timestamp, offset = found
        assert offset < self.end
        located = self.log.offset_for_timestamp(timestamp)
        if offset >= self.start:
            assert located == (offset, timestamp) or (
                located is not None and located[0] <= offset and located[1] >= timestamp
            )


LogMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLogAgainstModel = LogMachine.TestCase
