from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from millpond.clock import FakeClock
from millpond.config import BrokerConfig
from millpond.config import ConfigError
from millpond.config import TopicConfig
from millpond.protocol.record_codec import COMPRESSION_GZIP
from millpond.protocol.record_codec import COMPRESSION_LZ4
from millpond.protocol.record_codec import COMPRESSION_NONE
from millpond.protocol.record_codec import COMPRESSION_SNAPPY
from millpond.protocol.record_codec import COMPRESSION_ZSTD
from millpond.protocol.record_codec import NewRecord
from millpond.protocol.record_codec import Record
from millpond.protocol.record_codec import encode_batch
from millpond.protocol.record_codec import iter_records
from millpond.protocol.records import COMPRESSION_MASK
from millpond.protocol.records import TIMESTAMP_TYPE_MASK
from millpond.protocol.records import BatchHeader
from millpond.protocol.records import iter_batches
from millpond.protocol.records import set_log_append_time
from millpond.storage.cleaner import CleanCancelledError
from millpond.storage.cleaner import CleanerConfig
from millpond.storage.cleaner import LogCleaner
from millpond.storage.cleaner import batch_has_null_key
from millpond.storage.cleaner import build_cleaned
from millpond.storage.log import CLEANER_OFFSET_CHECKPOINT
from millpond.storage.log import Log
from millpond.storage.log import LogConfig
from millpond.storage.producer_state import ProducerStateManager

T0 = 1_700_000_000_000
DAY = 86_400_000
EAGER = CleanerConfig(min_cleanable_dirty_ratio=0.0)
Entry = tuple[bytes | None, bytes | None]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_ms=T0)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "compacted-0"


@pytest.fixture
def log(directory: Path, clock: FakeClock) -> Iterator[Log]:
    opened = Log.open(directory, LogConfig(retention_ms=-1), clock, clean_shutdown=True)
    yield opened
    if not opened._closed:
        opened.close()


def append(
    log: Log,
    entries: list[Entry],
    *,
    timestamp: int | None = None,
    compression: int = COMPRESSION_NONE,
    producer_id: int = -1,
    base_sequence: int = -1,
    log_append_time: bool = False,
) -> int:
    """Append one batch of (key, value) records; returns its base offset."""
    stamp = T0 if timestamp is None else timestamp
    batch = encode_batch(
        [NewRecord(key, value, stamp) for key, value in entries],
        compression=compression,
        producer_id=producer_id,
        producer_epoch=0 if producer_id >= 0 else -1,
        base_sequence=base_sequence,
        log_append_time=log_append_time,
    )
    return log.append(batch, list(iter_batches(batch))).base_offset


def seal(log: Log) -> None:
    """Roll and flush, so that everything appended so far is cleanable."""
    log.roll()
    log.flush()


def clean(log: Log, clock: FakeClock, config: CleanerConfig = EAGER) -> bool:
    job = log.begin_clean(clock.wall_ms(), config)
    if job is None:
        return False
    return log.finish_clean(build_cleaned(job))


def batches(log: Log) -> list[tuple[BatchHeader, bytes]]:
    """Every batch from log_start_offset, read the way a consumer does (Log.read chains)."""
    found = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 20)
        assert data
        for header in iter_batches(data):
            found.append((header, data))
            offset = header.next_offset
    return found


def records(log: Log) -> list[Record]:
    return [record for header, data in batches(log) for record in iter_records(data, header)]


def contents(log: Log) -> list[tuple[int, bytes | None, bytes | None]]:
    return [(r.offset, r.key, r.value) for r in records(log)]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.suffix in {".cleaned", ".swap"})


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


# --- what is kept --------------------------------------------------------------------------


def test_latest_value_per_key_survives_at_its_offset(log: Log, clock: FakeClock) -> None:
    append(log, [(b"a", b"1"), (b"b", b"1")])
    append(log, [(b"a", b"2")])
    seal(log)
    append(log, [(b"c", b"1"), (b"b", b"2")])
    append(log, [(b"a", b"3")])
    seal(log)
    append(log, [(b"b", b"3")])  # active segment: never cleaned, not in the key map
    end = log.log_end_offset
    assert clean(log, clock)
    assert contents(log) == [(3, b"c", b"1"), (4, b"b", b"2"), (5, b"a", b"3"), (6, b"b", b"3")]
    assert log.log_end_offset == end
    assert log.log_start_offset == 0
    assert log.cleaner_checkpoint == log.active_segment.base_offset
    assert (log.directory / CLEANER_OFFSET_CHECKPOINT).read_text() == f"0\n{6}\n"
    assert leftovers(log.directory) == []


def test_rewritten_batch_keeps_base_offset_and_span(log: Log, clock: FakeClock) -> None:
    append(log, [(b"a", b"1"), (b"b", b"1"), (b"c", b"1")])
    append(log, [(b"c", b"2")])
    seal(log)
    assert clean(log, clock)
    (first, data), (second, _) = batches(log)
    assert (first.base_offset, first.last_offset, first.records_count) == (0, 2, 2)
    assert [r.offset for r in iter_records(data, first)] == [0, 1]
    assert (second.base_offset, second.last_offset) == (3, 3)


def test_read_from_a_removed_offset_returns_the_next_batch(log: Log, clock: FakeClock) -> None:
    append(log, [(b"a", b"1")])
    append(log, [(b"b", b"1")])
    append(log, [(b"a", b"2")])
    seal(log)
    append(log, [(b"b", b"2")])
    seal(log)
    append(log, [(b"c", b"1")])
    assert clean(log, clock)
    assert contents(log) == [(2, b"a", b"2"), (3, b"b", b"2"), (4, b"c", b"1")]
    for removed, expected in ((0, 2), (1, 2)):
        (header,) = list(iter_batches(log.read(removed, 1)))
        assert header.base_offset == expected
    assert next(iter(log.batches(0))).base_offset == 2


def test_segments_cleaned_empty_are_skipped_by_reads(
    directory: Path, clock: FakeClock, log: Log
) -> None:
    for value in (b"1", b"2", b"3"):
        append(log, [(b"a", value)])
        seal(log)
    append(log, [(b"b", b"1")])
    # One group per segment, so the first two come out empty.
    log.config = LogConfig(retention_ms=-1, segment_bytes=log.active_segment.size + 1)
    assert clean(log, clock)
    assert log.segment_count == 4
    assert [segment.size for segment in log._segments[:2]] == [0, 0]
    expected = [(2, b"a", b"3"), (3, b"b", b"1")]
    assert contents(log) == expected
    for offset in (0, 1):
        assert next(iter_batches(log.read(offset, 1 << 20))).base_offset == 2
    log.close()
    for clean_shutdown in (True, False):
        reopened = Log.open(
            directory, LogConfig(retention_ms=-1), clock, clean_shutdown=clean_shutdown
        )
        assert contents(reopened) == expected, clean_shutdown
        assert reopened.segment_count == 4
        reopened.close()


def test_retention_deletes_empty_cleaned_segments(log: Log, clock: FakeClock) -> None:
    for value, timestamp in ((b"1", T0), (b"2", T0 + 5000)):
        append(log, [(b"a", value)], timestamp=timestamp)
        seal(log)
    append(log, [(b"b", b"1")])
    log.config = LogConfig(retention_ms=-1, segment_bytes=log.active_segment.size + 1)
    assert clean(log, clock)
    assert log._segments[0].size == 0
    log.config = LogConfig(retention_ms=1000)
    clock.advance(2000)
    assert log.apply_retention() == 1  # the empty one (by its creation time)
    assert log.log_start_offset == 1
    assert contents(log) == [(1, b"a", b"2"), (2, b"b", b"1")]


def test_null_keys_are_dropped(log: Log, clock: FakeClock) -> None:
    append(log, [(None, b"x"), (b"a", b"1")])
    seal(log)
    assert clean(log, clock)
    assert contents(log) == [(1, b"a", b"1")]


def test_batch_has_null_key() -> None:
    keyed = encode_batch([NewRecord(b"k", b"v", T0)], compression=COMPRESSION_ZSTD)
    unkeyed = encode_batch([NewRecord(b"k", b"v", T0), NewRecord(None, b"v", T0)])
    assert not batch_has_null_key(keyed, next(iter_batches(keyed)))
    assert batch_has_null_key(unkeyed, next(iter_batches(unkeyed)))


# --- tombstones, lag and dirty ratio -------------------------------------------------------


def test_tombstone_kept_for_one_clean_then_until_delete_retention(
    log: Log, clock: FakeClock
) -> None:
    config = CleanerConfig(delete_retention_ms=DAY, min_cleanable_dirty_ratio=0.0)
    append(log, [(b"a", b"1"), (b"b", b"1")])
    append(log, [(b"a", None)])
    seal(log)
    clock.advance(2 * DAY)  # old already, but not yet cleaned once: kept
    assert clean(log, clock, config)
    assert contents(log) == [(1, b"b", b"1"), (2, b"a", None)]

    append(log, [(b"c", b"1")], timestamp=clock.wall_ms())
    seal(log)
    assert clean(log, clock, config)  # now in the clean part and past delete.retention.ms
    assert contents(log) == [(1, b"b", b"1"), (3, b"c", b"1")]


def test_young_tombstone_survives_later_cleans(log: Log, clock: FakeClock) -> None:
    config = CleanerConfig(delete_retention_ms=DAY, min_cleanable_dirty_ratio=0.0)
    append(log, [(b"a", b"1")])
    append(log, [(b"a", None)], timestamp=T0 + 1000)
    seal(log)
    assert clean(log, clock, config)
    clock.advance(DAY)  # exactly delete.retention.ms after the tombstone: still kept
    append(log, [(b"z", b"1")], timestamp=clock.wall_ms())
    seal(log)
    assert clean(log, clock, config)
    assert contents(log) == [(1, b"a", None), (2, b"z", b"1")]
    clock.advance(1001)
    append(log, [(b"y", b"1")], timestamp=clock.wall_ms())
    seal(log)
    assert clean(log, clock, config)
    assert contents(log) == [(2, b"z", b"1"), (3, b"y", b"1")]


def test_min_compaction_lag_protects_young_records(log: Log, clock: FakeClock) -> None:
    config = CleanerConfig(min_compaction_lag_ms=10_000, min_cleanable_dirty_ratio=0.0)
    append(log, [(b"a", b"1")], timestamp=T0)
    append(log, [(b"a", b"2")], timestamp=T0)
    seal(log)
    append(log, [(b"a", b"3")], timestamp=T0 + 8_000)
    seal(log)
    clock.advance(5_000)
    assert not clean(log, clock, config)  # all too young
    clock.advance(5_000)  # the first segment is old enough, the second is not
    assert clean(log, clock, config)
    assert contents(log) == [(1, b"a", b"2"), (2, b"a", b"3")]
    assert log.cleaner_checkpoint == 2
    clock.advance(8_000)
    assert clean(log, clock, config)
    assert contents(log) == [(2, b"a", b"3")]


def test_dirty_ratio_decides_when_to_clean(log: Log, clock: FakeClock) -> None:
    for number in range(10):
        append(log, [(b"k%d" % number, b"v" * 50)])
    seal(log)
    assert clean(log, clock)
    append(log, [(b"k0", b"w" * 50)])
    seal(log)
    # One dirty batch against ten clean ones: about 1/11.
    assert not clean(log, clock, CleanerConfig(min_cleanable_dirty_ratio=0.2))
    assert clean(log, clock, CleanerConfig(min_cleanable_dirty_ratio=0.05))
    assert [r.key for r in records(log)] == [b"k%d" % n for n in range(1, 10)] + [b"k0"]
    assert not clean(log, clock)  # nothing dirty


def test_nothing_to_clean_without_a_flush_or_with_only_the_active_segment(
    log: Log, clock: FakeClock
) -> None:
    append(log, [(b"a", b"1")])
    append(log, [(b"a", b"2")])
    assert log.begin_clean(clock.wall_ms(), EAGER) is None
    log.roll()  # inactive, but not yet below the persisted recovery point
    assert log.begin_clean(clock.wall_ms(), EAGER) is None
    log.flush()
    assert clean(log, clock)


# --- batch formats ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "codec", [COMPRESSION_GZIP, COMPRESSION_ZSTD, COMPRESSION_SNAPPY, COMPRESSION_LZ4]
)
def test_compressed_batches_are_rewritten_with_their_codec(
    log: Log, clock: FakeClock, codec: int
) -> None:
    append(log, [(b"a", b"1" * 100), (b"b", b"1" * 100), (b"c", b"1" * 100)], compression=codec)
    append(log, [(b"b", b"2")])
    seal(log)
    assert clean(log, clock)
    (first, data), _ = batches(log)
    assert first.attributes & COMPRESSION_MASK == codec
    assert (first.base_offset, first.last_offset, first.records_count) == (0, 2, 2)
    assert [(r.offset, r.key) for r in iter_records(data, first)] == [(0, b"a"), (2, b"c")]


def test_log_append_time_batches_keep_their_timestamp(log: Log, clock: FakeClock) -> None:
    stamped = encode_batch(
        [NewRecord(b"a", b"1", T0), NewRecord(b"b", b"1", T0)], log_append_time=True
    )
    set_log_append_time(stamped, next(iter_batches(stamped)), T0 + 777)
    log.append(stamped, list(iter_batches(stamped)))
    append(log, [(b"a", b"2")])
    seal(log)
    assert clean(log, clock)
    (first, _), _ = batches(log)
    assert first.attributes & TIMESTAMP_TYPE_MASK
    assert first.max_timestamp == T0 + 777
    assert first.partition_leader_epoch == -1


def test_idempotent_producer_keeps_its_last_batch(
    directory: Path, log: Log, clock: FakeClock
) -> None:
    append(log, [(b"a", b"1")], producer_id=7, base_sequence=0)
    append(log, [(b"a", b"2"), (b"b", b"2")], producer_id=7, base_sequence=1)
    append(log, [(b"a", b"3"), (b"b", b"3")])
    seal(log)
    assert clean(log, clock)
    found = [
        (h.base_offset, h.last_offset, h.records_count, h.base_sequence) for h, _ in batches(log)
    ]
    # The first batch of producer 7 goes; its last one stays with no records left.
    assert found == [(1, 2, 0, 1), (3, 4, 2, -1)]
    assert contents(log) == [(3, b"a", b"3"), (4, b"b", b"3")]
    log.close()
    reopened = Log.open(directory, LogConfig(retention_ms=-1), clock, clean_shutdown=False)
    try:
        state = ProducerStateManager(directory, clock)
        state.load(reopened.log_start_offset, reopened.log_end_offset, reopened.batches)
        entry = state.last_entry(7)
        assert entry is not None
        assert entry.last_sequence == 2
        assert entry.batches[-1].last_offset == 2
    finally:
        reopened.close()


def test_an_older_empty_producer_batch_goes_once_superseded(log: Log, clock: FakeClock) -> None:
    append(log, [(b"a", b"1")], producer_id=7, base_sequence=0)
    append(log, [(b"a", b"2")])
    seal(log)
    assert clean(log, clock)
    assert [h.records_count for h, _ in batches(log)] == [0, 1]
    append(log, [(b"a", b"3")], producer_id=7, base_sequence=1)
    seal(log)
    assert clean(log, clock)
    assert [(h.base_offset, h.records_count) for h, _ in batches(log)] == [(2, 1)]


def test_small_segments_are_merged(log: Log, clock: FakeClock) -> None:
    for number in range(6):
        append(log, [(b"k%d" % number, b"v")])
        seal(log)
    assert log.segment_count == 7
    assert clean(log, clock)
    assert log.segment_count == 2
    assert [r.offset for r in records(log)] == list(range(6))
    assert sorted(p.name for p in log.directory.glob("*.log")) == [
        "00000000000000000000.log",
        "00000000000000000006.log",
    ]


# --- concurrency with retention and deletion -------------------------------------------------


def test_retention_during_a_clean_discards_the_result(log: Log, clock: FakeClock) -> None:
    append(log, [(b"a", b"1")])
    append(log, [(b"a", b"2")])
    seal(log)
    append(log, [(b"b", b"1")])
    seal(log)
    before = open_fds()
    job = log.begin_clean(clock.wall_ms(), EAGER)
    assert job is not None
    log.delete_records_before(2)  # deletes the first segment while the job holds it
    result = build_cleaned(job)  # the pinned fd still reads the unlinked file
    assert result.records_removed == 1
    assert not log.finish_clean(result)
    assert leftovers(log.directory) == []
    assert open_fds() == before - 1  # the deleted segment's fd (its .log) is closed now
    assert contents(log) == [(2, b"b", b"1")]
    assert log.cleaner_checkpoint == 0
    assert clean(log, clock)


def test_a_flush_in_flight_keeps_the_replaced_segments_open(log: Log, clock: FakeClock) -> None:
    append(log, [(b"a", b"1")])
    append(log, [(b"a", b"2")])
    seal(log)
    append(log, [(b"a", b"3")])
    flush = log.prepare_flush(include_active_indexes=True)
    assert flush is not None
    job = log.begin_clean(clock.wall_ms(), EAGER)
    assert job is not None
    old = job.segments
    assert log.finish_clean(build_cleaned(job))
    assert log._deleted_awaiting_close == list(old)
    for fd in flush.fds:
        os.fdatasync(fd)
    log.complete_flush(flush)
    assert log._deleted_awaiting_close == []


def test_deleting_the_log_during_a_clean(directory: Path, log: Log, clock: FakeClock) -> None:
    append(log, [(b"a", b"1")])
    seal(log)
    before = open_fds()
    job = log.begin_clean(clock.wall_ms(), EAGER)
    assert job is not None
    log.delete()
    assert not directory.exists()
    assert open_fds() == before + 1  # the job's output (its .log) is still open
    with pytest.raises(OSError):  # its outputs' index files went with the directory
        build_cleaned(job)
    log.abort_clean(job)
    assert open_fds() == before - 2  # the log's two .log fds and the output's are all closed


def test_abort_and_cancel(log: Log, clock: FakeClock) -> None:
    append(log, [(b"a", b"1")])
    seal(log)
    job = log.begin_clean(clock.wall_ms(), EAGER)
    assert job is not None
    assert log.begin_clean(clock.wall_ms(), EAGER) is None  # one at a time
    job.cancel()
    with pytest.raises(CleanCancelledError):
        build_cleaned(job)
    log.abort_clean(job)
    assert leftovers(log.directory) == []
    assert not log.cleaning
    assert clean(log, clock)


# --- crash safety of the swap ----------------------------------------------------------------


class SimulatedCrash(BaseException):
    pass


def _build_log_for_crash(directory: Path, clock: FakeClock) -> Log:
    log = Log.open(directory, LogConfig(retention_ms=-1, segment_bytes=300), clock,
                   clean_shutdown=True)  # fmt: skip
    for round_ in range(3):
        for key in (b"a", b"b", b"c"):
            append(log, [(key, b"%d" % round_ * 20)])
        log.roll()
    append(log, [(b"d", None)])
    append(log, [(b"a", b"x")])
    seal(log)
    append(log, [(b"e", b"1")])
    log.flush()
    return log


Contents = list[tuple[int, bytes | None, bytes | None]]


def _check_no_loss_no_duplicate(got: Contents, before: Contents, after: Contents) -> None:
    offsets = [offset for offset, _, _ in got]
    assert offsets == sorted(set(offsets))
    assert set(after) <= set(got) <= set(before)


def _cleaned_reference(directory: Path, clock: FakeClock) -> tuple[Contents, Contents]:
    """Contents of the crash test's log before and after one clean."""
    log = _build_log_for_crash(directory, clock)
    before = contents(log)
    assert clean(log, clock)
    after = contents(log)
    log.close()
    return before, after


def test_a_crash_at_every_step_of_the_swap_loses_and_duplicates_nothing(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace, real_unlink = os.replace, os.unlink
    budget: list[int] = []  # remaining file operations before the crash; empty = unlimited
    steps = 0

    def counted(real: Callable[..., Any]) -> Callable[..., Any]:
        def operation(*args: Any, **kwargs: Any) -> Any:
            nonlocal steps
            if budget:
                if budget[0] == 0:
                    raise SimulatedCrash
                budget[0] -= 1
            steps += 1
            return real(*args, **kwargs)

        return operation

    monkeypatch.setattr(os, "replace", counted(real_replace))
    monkeypatch.setattr(os, "unlink", counted(real_unlink))

    reference = _build_log_for_crash(tmp_path / "reference", clock)
    before = contents(reference)
    job = reference.begin_clean(clock.wall_ms(), EAGER)
    assert job is not None
    assert len(job.plan.groups) > 1
    result = build_cleaned(job)
    steps = 0
    assert reference.finish_clean(result)
    total = steps
    after = contents(reference)
    assert len(after) < len(before)
    reference.close()

    for crash_at in range(total):
        directory = tmp_path / f"crash-{crash_at}"
        log = _build_log_for_crash(directory, clock)
        job = log.begin_clean(clock.wall_ms(), EAGER)
        assert job is not None
        result = build_cleaned(job)
        budget[:] = [crash_at]
        with pytest.raises(SimulatedCrash):
            log.finish_clean(result)
        budget.clear()
        for output in job.outputs:
            if output not in log._segments:
                output.close_files()
        log._close_files()
        reopened = Log.open(directory, LogConfig(retention_ms=-1), clock, clean_shutdown=False)
        try:
            assert leftovers(directory) == [], crash_at
            _check_no_loss_no_duplicate(contents(reopened), before, after)
            assert reopened.log_end_offset == reference.log_end_offset
            clean(reopened, clock)
            assert contents(reopened) == after, crash_at
        finally:
            reopened.close()


def test_a_crash_before_the_swap_leaves_the_old_segments(directory: Path, clock: FakeClock) -> None:
    log = _build_log_for_crash(directory, clock)
    before = contents(log)
    assert (directory / "00000000000000000000.log").exists()
    job = log.begin_clean(clock.wall_ms(), EAGER)
    assert job is not None
    build_cleaned(job)
    assert leftovers(directory)
    for output in job.outputs:
        output.close_files()
    log._close_files()
    reopened = Log.open(directory, LogConfig(retention_ms=-1), clock, clean_shutdown=False)
    try:
        assert leftovers(directory) == []
        assert contents(reopened) == before
    finally:
        reopened.close()


def test_a_swap_with_a_lost_index_is_completed_and_reindexed(
    tmp_path: Path, directory: Path, clock: FakeClock
) -> None:
    before, after = _cleaned_reference(tmp_path / "reference", clock)
    log = _build_log_for_crash(directory, clock)
    job = log.begin_clean(clock.wall_ms(), EAGER)
    assert job is not None
    build_cleaned(job)
    output = job.outputs[0]
    output.rename_files(".swap")  # committed; the other outputs are not
    output.time_index.path.unlink()
    for segment in job.outputs:
        segment.close_files()
    log._close_files()
    reopened = Log.open(directory, LogConfig(retention_ms=-1), clock, clean_shutdown=True)
    try:
        got = contents(reopened)
        _check_no_loss_no_duplicate(got, before, after)
        assert got != before
        assert leftovers(directory) == []
        assert (directory / "00000000000000000000.timeindex").exists()
    finally:
        reopened.close()


def test_reopening_after_a_clean_serves_the_same(directory: Path, clock: FakeClock) -> None:
    log = _build_log_for_crash(directory, clock)
    assert clean(log, clock)
    after = contents(log)
    log.close()
    for clean_shutdown in (True, False):
        reopened = Log.open(
            directory, LogConfig(retention_ms=-1), clock, clean_shutdown=clean_shutdown
        )
        assert contents(reopened) == after
        assert reopened.recovery_truncated_bytes == 0
        assert reopened.cleaner_checkpoint == log.cleaner_checkpoint
        reopened.close()


# --- LogCleaner ----------------------------------------------------------------------------


def test_log_cleaner_goes_on_after_a_bad_log(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    good = Log.open(tmp_path / "good-0", LogConfig(retention_ms=-1), clock, clean_shutdown=True)
    bad = Log.open(tmp_path / "bad-0", LogConfig(retention_ms=-1), clock, clean_shutdown=True)
    try:
        for log in (bad, good):
            append(log, [(b"a", b"1")])
            append(log, [(b"a", b"2")])
            seal(log)
        # Damage the records of bad's first batch (the header, and so reads, stay intact).
        segment = bad._segments[0]
        os.pwrite(segment.fd, b"\xff" * 8, 61)
        stats = asyncio.run(LogCleaner(clock).clean([(bad, EAGER), (good, EAGER)]))
        assert (stats.logs_cleaned, stats.logs_failed, stats.records_removed) == (1, 1, 1)
        assert "cleaning the log" in caplog.text
        assert contents(good) == [(1, b"a", b"2")]
        assert not bad.cleaning
        assert leftovers(bad.directory) == []
    finally:
        good.close()
        bad.close()


def test_cancelling_the_cleaner_aborts_its_job(log: Log, clock: FakeClock) -> None:
    for number in range(200):
        append(log, [(b"k%d" % (number % 7), b"v" * 100)])
    seal(log)

    async def scenario() -> None:
        task = asyncio.create_task(LogCleaner(clock).clean([(log, EAGER)]))
        for _ in range(100):
            if log.cleaning:
                break
            await asyncio.sleep(0)
        assert log.cleaning
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert not log.cleaning
    assert leftovers(log.directory) == []


# --- configuration -------------------------------------------------------------------------


def test_topic_config_resolves_cleaner_keys() -> None:
    broker = BrokerConfig({"log.cleaner.min.cleanable.ratio": "0.25"})
    config = TopicConfig.resolve(
        broker, {"cleanup.policy": "compact,delete", "min.compaction.lag.ms": "5000"}
    )
    assert config.compacted
    assert config.cleaner_config() == CleanerConfig(
        delete_retention_ms=DAY, min_compaction_lag_ms=5000, min_cleanable_dirty_ratio=0.25
    )
    assert broker["log.cleaner.backoff.ms"] == 15000
    with pytest.raises(ConfigError, match=r"min\.cleanable\.dirty\.ratio"):
        TopicConfig.resolve(broker, {"min.cleanable.dirty.ratio": "1.5"})
    with pytest.raises(ConfigError, match=r"delete\.retention\.ms"):
        TopicConfig.resolve(broker, {"delete.retention.ms": "-1"})
