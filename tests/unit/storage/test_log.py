from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from millpond.clock import FakeClock
from millpond.protocol.records import iter_batches
from millpond.storage.log import LOG_START_OFFSET_CHECKPOINT
from millpond.storage.log import RECOVERY_POINT_CHECKPOINT
from millpond.storage.log import AppendResult
from millpond.storage.log import Log
from millpond.storage.log import LogConfig
from millpond.storage.log import OffsetOutOfRangeError
from millpond.storage.segment import LogSegment
from tests.support.batches import DEFAULT_TIMESTAMP
from tests.support.batches import build_batch
from tests.support.batches import concat
from tests.support.batches import headers_of

T0 = DEFAULT_TIMESTAMP


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_ms=T0)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "topic-0"


@pytest.fixture
def log(directory: Path, clock: FakeClock) -> Iterator[Log]:
    opened = Log.open(directory, LogConfig(), clock, clean_shutdown=True)
    yield opened
    opened.close()


def append(log: Log, *batches: bytearray) -> AppendResult:
    records, headers = concat(*batches)
    return log.append(records, headers)


def append_values(log: Log, count: int, *, size: int = 10, per_batch: int = 1) -> None:
    for number in range(count):
        values = [bytes([number % 256]) * size] * per_batch
        append(log, build_batch(values))


def read_all(log: Log, start: int | None = None) -> list[tuple[int, int]]:
    """(base_offset, last_offset) of every batch from `start`, reading segment by segment."""
    offset = log.log_start_offset if start is None else start
    found: list[tuple[int, int]] = []
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 30)
        headers = headers_of(data)
        found += [(h.base_offset, h.last_offset) for h in headers]
        offset = headers[-1].next_offset
    return found


def segment_files(directory: Path, suffix: str = ".log") -> list[Path]:
    return sorted(directory.glob(f"*{suffix}"))


def crash(log: Log) -> None:
    """Drop the fds without flushing or writing anything, as a killed process would."""
    log._close_files()


# --- append and read -------------------------------------------------------------------------


def test_new_log_is_empty(log: Log, directory: Path) -> None:
    assert directory.is_dir()
    assert (log.log_start_offset, log.log_end_offset, log.size_in_bytes) == (0, 0, 0)
    assert log.read(0, 1000) == b""
    assert [p.name for p in segment_files(directory)] == ["00000000000000000000.log"]
    assert log.max_timestamp() is None
    assert log.offset_for_timestamp(0) is None


def test_append_assigns_offsets_and_reads_back_exact_bytes(log: Log) -> None:
    first = build_batch([b"a", b"b", b"c"], timestamps=[T0, T0 + 5, T0 + 2])
    second = build_batch([b"d"], timestamps=[T0 + 1])
    result = append(log, first, second)
    assert result == AppendResult(0, 3, T0 + 5, 0)
    assert log.log_end_offset == 4
    assert append(log, build_batch([b"e", b"f"])) == AppendResult(4, 5, T0, 4)

    data = log.read(0, 1 << 20)
    headers = headers_of(data)  # CRCs still match: offsets are outside the CRC
    assert [(h.base_offset, h.records_count) for h in headers] == [(0, 3), (3, 1), (4, 2)]
    expected = bytearray(first + second)
    expected[len(first) : len(first) + 8] = (3).to_bytes(8, "big")
    assert data[: len(expected)] == expected
    assert log.size_in_bytes == len(data)


def test_read_from_mid_batch_offset_starts_at_containing_batch(log: Log) -> None:
    for _ in range(3):
        append(log, build_batch([b"x"] * 5))
    assert [h.base_offset for h in headers_of(log.read(7, 1 << 20))] == [5, 10]
    assert [h.base_offset for h in headers_of(log.read(14, 1 << 20))] == [10]
    assert log.read(15, 1 << 20) == b""


def test_read_respects_max_bytes_with_whole_batches(log: Log) -> None:
    batch_size = len(build_batch([b"y" * 100]))
    append_values(log, 10, size=100)
    assert len(headers_of(log.read(0, batch_size * 3))) == 3
    assert len(headers_of(log.read(0, batch_size * 3 + batch_size - 1))) == 3
    assert len(headers_of(log.read(2, batch_size * 100))) == 8


def test_first_batch_larger_than_max_bytes(log: Log) -> None:
    append(log, build_batch([b"z" * 1000]))
    append(log, build_batch([b"z"]))
    whole = log.read(0, 10)
    assert [h.base_offset for h in headers_of(whole)] == [0]
    assert log.read(0, 10, min_one_batch=False) == b""
    assert log.read(0, 0)  # still one batch


def test_offset_out_of_range(log: Log) -> None:
    append_values(log, 3)
    with pytest.raises(OffsetOutOfRangeError) as raised:
        log.read(4, 100)
    assert (raised.value.log_start_offset, raised.value.log_end_offset) == (0, 3)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1, 100)
    log.delete_records_before(2)
    with pytest.raises(OffsetOutOfRangeError) as raised:
        log.read(1, 100)
    assert raised.value.log_start_offset == 2
    assert log.read(3, 100) == b""


def test_append_rejects_nothing(log: Log) -> None:
    with pytest.raises(ValueError, match="nothing"):
        log.append(bytearray(), [])


# --- rolling ---------------------------------------------------------------------------------


def test_rolls_by_size_never_leaving_an_empty_segment(directory: Path, clock: FakeClock) -> None:
    batch_size = len(build_batch([b"s" * 50]))
    log = Log.open(directory, LogConfig(segment_bytes=batch_size * 3), clock, clean_shutdown=True)
    append_values(log, 7, size=50)
    assert [p.name for p in segment_files(directory)] == [
        "00000000000000000000.log",
        "00000000000000000003.log",
        "00000000000000000006.log",
    ]
    # One append that spans a roll, and a batch larger than a whole segment.
    append(log, build_batch([b"s" * 50]), build_batch([b"s" * 50]), build_batch([b"s" * 50]))
    append(log, build_batch([b"big" * 200]))
    append_values(log, 1, size=50)
    names = [p.name[:20].lstrip("0") or "0" for p in segment_files(directory)]
    assert names == ["0", "3", "6", "9", "10", "11"]
    assert all(p.stat().st_size > 0 for p in segment_files(directory))
    assert read_all(log) == [(n, n) for n in range(12)]
    log.roll()
    log.roll()  # the new active segment is empty: no second roll
    assert log.segment_count == 7
    log.close()


def test_rolls_by_age(directory: Path, clock: FakeClock) -> None:
    log = Log.open(directory, LogConfig(segment_ms=1000), clock, clean_shutdown=True)
    append_values(log, 2)
    clock.advance(1000)
    append_values(log, 1)
    assert log.segment_count == 1
    clock.advance(1)
    append_values(log, 1)
    assert log.segment_count == 2
    clock.advance(5000)
    assert log.segment_count == 2  # an empty active segment never rolls
    log.close()


# --- indexes ---------------------------------------------------------------------------------


def test_index_lookups_after_many_appends(directory: Path, clock: FakeClock) -> None:
    config = LogConfig(segment_bytes=16 * 1024, index_interval_bytes=512)
    log = Log.open(directory, config, clock, clean_shutdown=True)
    for number in range(600):
        append(log, build_batch([b"%d" % number] * (1 + number % 3)))
    assert log.segment_count > 1
    expected = []
    offset = 0
    for number in range(600):
        expected.append((offset, offset + number % 3))
        offset += 1 + number % 3
    for base, last in expected[::7]:
        for target in (base, last):
            header = headers_of(log.read(target, 1))[0]
            assert (header.base_offset, header.last_offset) == (base, last)
    assert [(h.base_offset, h.last_offset) for h in log.batches(expected[301][0] + 1)] == (
        expected[301:]
    )
    log.close()  # writes out the entries still in memory
    assert all(p.stat().st_size > 0 for p in segment_files(directory, ".index"))


def test_index_is_rebuilt_when_missing_or_corrupt(directory: Path, clock: FakeClock) -> None:
    config = LogConfig(segment_bytes=16 * 1024, index_interval_bytes=256)
    log = Log.open(directory, config, clock, clean_shutdown=True)
    append_values(log, 300, size=40)
    before = read_all(log)
    log.close()
    indexes = segment_files(directory, ".index")
    time_indexes = segment_files(directory, ".timeindex")
    good_index = indexes[0].read_bytes()
    good_time_index = time_indexes[-1].read_bytes()
    indexes[0].unlink()
    indexes[1].write_bytes(indexes[1].read_bytes()[:-3])
    time_indexes[-1].write_bytes(b"\xff" * 24)

    log = Log.open(directory, config, clock, clean_shutdown=True)
    assert read_all(log) == before
    assert indexes[0].read_bytes() == good_index
    assert len(indexes[1].read_bytes()) % 8 == 0
    assert time_indexes[-1].read_bytes() == good_time_index
    assert log.recovery_truncated_bytes == 0
    log.close()


def test_index_pointing_past_the_log_is_rebuilt(directory: Path, clock: FakeClock) -> None:
    config = LogConfig(index_interval_bytes=100)
    log = Log.open(directory, config, clock, clean_shutdown=True)
    append_values(log, 50, size=40)
    log.close()
    index = segment_files(directory, ".index")[0]
    index.write_bytes(
        index.read_bytes() + (10_000).to_bytes(4, "big") + (99_999).to_bytes(4, "big")
    )
    log = Log.open(directory, config, clock, clean_shutdown=True)
    assert read_all(log) == [(n, n) for n in range(50)]
    log.close()


# --- timestamps ------------------------------------------------------------------------------


def test_offset_for_timestamp_finds_exact_record_in_uncompressed_batches(
    directory: Path, clock: FakeClock
) -> None:
    config = LogConfig(segment_bytes=1000, index_interval_bytes=200)
    log = Log.open(directory, config, clock, clean_shutdown=True)
    # Batch n holds offsets 4n..4n+3 with timestamps T0 + 10n + (0, 3, 1, 7).
    for n in range(40):
        append(log, build_batch([b"v"] * 4, timestamps=[T0 + 10 * n + d for d in (0, 3, 1, 7)]))
    assert log.segment_count > 2
    assert log.offset_for_timestamp(0) == (0, T0)
    assert log.offset_for_timestamp(T0 + 2) == (1, T0 + 3)
    assert log.offset_for_timestamp(T0 + 4) == (3, T0 + 7)
    assert log.offset_for_timestamp(T0 + 8) == (4, T0 + 10)
    assert log.offset_for_timestamp(T0 + 10 * 25 + 5) == (4 * 25 + 3, T0 + 10 * 25 + 7)
    assert log.offset_for_timestamp(T0 + 10 * 39 + 7) == (159, T0 + 397)
    assert log.offset_for_timestamp(T0 + 10 * 39 + 8) is None
    assert log.max_timestamp() == (T0 + 397, 159)
    log.delete_records_before(101)
    assert log.offset_for_timestamp(0) == (101, T0 + 253)
    log.close()
    # Same answers from indexes loaded from disk.
    log = Log.open(directory, config, clock, clean_shutdown=True)
    assert log.offset_for_timestamp(T0 + 10 * 30 + 2) == (4 * 30 + 1, T0 + 303)
    assert log.max_timestamp() == (T0 + 397, 159)
    log.close()


def test_offset_for_timestamp_in_compressed_and_log_append_time_batches(log: Log) -> None:
    append(log, build_batch([b"a", b"b"], timestamps=[T0, T0 + 1]))
    append(log, build_batch([b"c", b"d", b"e"], timestamps=[T0 + 9, T0 + 5, T0 + 2], compression=1))
    append(log, build_batch([b"f", b"g"], timestamps=[T0, T0], log_append_time=T0 + 20))
    assert log.offset_for_timestamp(T0 + 1) == (1, T0 + 1)
    assert log.offset_for_timestamp(T0 + 2) == (2, T0 + 9)  # batch precision
    assert log.offset_for_timestamp(T0 + 10) == (5, T0 + 20)
    assert log.max_timestamp() == (T0 + 20, 5)
    append(log, build_batch([b"h", b"i", b"j"], timestamps=[T0 + 21, T0 + 30, T0 + 30]))
    assert log.max_timestamp() == (T0 + 30, 8)


# --- deleting --------------------------------------------------------------------------------


def test_delete_records_before(directory: Path, clock: FakeClock) -> None:
    batch_size = len(build_batch([b"d" * 10] * 2))
    config = LogConfig(segment_bytes=batch_size * 2)
    log = Log.open(directory, config, clock, clean_shutdown=True)
    append_values(log, 6, per_batch=2)  # segments at 0, 4, 8
    assert log.delete_records_before(5) == 5
    assert segment_files(directory)[0].name.startswith("00000000000000000004")
    assert (directory / LOG_START_OFFSET_CHECKPOINT).read_text() == "0\n5\n"
    assert read_all(log, 5) == [(4, 5), (6, 7), (8, 9), (10, 11)]
    assert log.delete_records_before(3) == 5  # never backwards
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(13)
    assert log.delete_records_before(12) == 12
    assert log.segment_count == 1  # the active segment stays
    assert log.read(12, 100) == b""
    log.close()
    log = Log.open(directory, config, clock, clean_shutdown=True)
    assert (log.log_start_offset, log.log_end_offset) == (12, 12)
    append_values(log, 1)
    assert read_all(log) == [(12, 12)]
    log.close()


def test_retention_by_time(directory: Path, clock: FakeClock) -> None:
    batch_size = len(build_batch([b"r" * 10]))
    config = LogConfig(segment_bytes=batch_size * 2, retention_ms=1000)
    log = Log.open(directory, config, clock, clean_shutdown=True)
    for number in range(6):  # timestamps T0, T0+100, ..., segments of two
        append(log, build_batch([b"r" * 10], timestamps=[T0 + 100 * number]))
    assert log.segment_count == 3
    clock.advance(1000 + 150)  # only the first segment (newest T0+100) is past 1000 ms
    assert log.apply_retention() == 1
    assert log.log_start_offset == 2
    assert (directory / LOG_START_OFFSET_CHECKPOINT).read_text() == "0\n2\n"
    clock.advance(10_000)  # everything expired: roll, keep an empty active segment
    assert log.apply_retention() == 2
    assert log.segment_count == 1
    assert (log.log_start_offset, log.log_end_offset, log.size_in_bytes) == (6, 6, 0)
    assert log.apply_retention() == 0
    log.config = replace(config, retention_ms=-1)
    append_values(log, 1)
    clock.advance(10**9)
    assert log.apply_retention() == 0
    log.close()


def test_retention_by_size(directory: Path, clock: FakeClock) -> None:
    batch_size = len(build_batch([b"q" * 10]))
    config = LogConfig(segment_bytes=batch_size * 2, retention_bytes=batch_size * 3)
    log = Log.open(directory, config, clock, clean_shutdown=True)
    append_values(log, 7)  # segments of 2, 2, 2, 1
    assert log.apply_retention() == 2
    assert log.size_in_bytes == batch_size * 3
    assert log.log_start_offset == 4
    log.config = replace(config, retention_bytes=0)
    assert log.apply_retention() == 2
    assert (log.log_start_offset, log.log_end_offset, log.segment_count) == (7, 7, 1)
    log.close()


def test_deleted_segment_fds_wait_for_pending_flush(directory: Path, clock: FakeClock) -> None:
    batch_size = len(build_batch([b"f" * 10]))
    log = Log.open(directory, LogConfig(segment_bytes=batch_size), clock, clean_shutdown=True)
    append_values(log, 3)
    job = log.prepare_flush()
    assert job is not None
    assert job.end_offset == 3
    log.delete_records_before(3)
    assert log.segment_count == 1
    for fd in job.fds:
        os.fdatasync(fd)  # still open, though their files are gone
    log.complete_flush(job)
    assert log.recovery_point == 3
    with pytest.raises(OSError):
        os.fstat(job.fds[0])
    directory_only = log.prepare_flush()  # the deletion changed the directory
    assert directory_only is not None
    assert (len(directory_only.fds), directory_only.segments) == (1, ())
    log.complete_flush(directory_only)
    assert log.prepare_flush() is None
    log.close()


def test_flush_job_covers_only_unflushed_segments(directory: Path, clock: FakeClock) -> None:
    batch_size = len(build_batch([b"g" * 10]))
    log = Log.open(directory, LogConfig(segment_bytes=batch_size), clock, clean_shutdown=True)
    append_values(log, 2)
    log.flush()
    assert log.recovery_point == 2
    assert log.prepare_flush() is None
    append_values(log, 1)
    job = log.prepare_flush()
    assert job is not None
    append_values(log, 1)  # while the job "runs"
    log.complete_flush(job)
    assert log.recovery_point == 3
    job = log.prepare_flush()
    assert job is not None
    assert job.end_offset == 4
    log.complete_flush(job)
    log.close()


# --- reopening and recovery ------------------------------------------------------------------


def test_clean_reopen_trusts_files_without_scanning(
    directory: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = LogConfig(segment_bytes=4000, index_interval_bytes=300)
    log = Log.open(directory, config, clock, clean_shutdown=True)
    for number in range(100):
        append(log, build_batch([b"c" * 30], timestamps=[T0 + number]))
    before = read_all(log)
    log.close()
    assert (directory / RECOVERY_POINT_CHECKPOINT).read_text() == "0\n100\n"

    def no_scan(self: LogSegment, index_interval_bytes: int) -> int:
        raise AssertionError("a clean open must not recover")

    monkeypatch.setattr(LogSegment, "recover", no_scan)
    log = Log.open(directory, config, clock, clean_shutdown=True)
    assert read_all(log) == before
    assert log.log_end_offset == 100
    assert log.max_timestamp() == (T0 + 99, 99)
    assert log.offset_for_timestamp(T0 + 50) == (50, T0 + 50)
    append_values(log, 1)
    assert log.log_end_offset == 101
    log.close()


def test_unclean_reopen_without_damage_keeps_everything(directory: Path, clock: FakeClock) -> None:
    config = LogConfig(segment_bytes=3000, index_interval_bytes=200)
    log = Log.open(directory, config, clock, clean_shutdown=True)
    append_values(log, 80, size=30)
    log.flush()
    append_values(log, 20, size=30)
    before = read_all(log)
    crash(log)
    log = Log.open(directory, config, clock, clean_shutdown=False)
    assert log.recovery_truncated_bytes == 0
    assert read_all(log) == before
    assert log.recovery_point == 100
    log.close()


def test_torn_tail_is_truncated(directory: Path, clock: FakeClock) -> None:
    log = Log.open(directory, LogConfig(), clock, clean_shutdown=True)
    append_values(log, 10, size=30)
    log.flush()
    append_values(log, 5, size=30)
    crash(log)
    segment = segment_files(directory)[0]
    size = segment.stat().st_size
    os.truncate(segment, size - 20)
    log = Log.open(directory, LogConfig(), clock, clean_shutdown=False)
    assert log.log_end_offset == 14
    batch_size = len(build_batch([b"x" * 30]))
    assert log.recovery_truncated_bytes == batch_size - 20
    assert segment.stat().st_size == size - batch_size
    assert read_all(log) == [(n, n) for n in range(14)]
    append_values(log, 1)
    assert log.log_end_offset == 15
    log.close()


def test_bit_flipped_tail_is_truncated_with_later_segments(
    directory: Path, clock: FakeClock
) -> None:
    batch_size = len(build_batch([b"b" * 30]))
    config = LogConfig(segment_bytes=batch_size * 4, index_interval_bytes=1)
    log = Log.open(directory, config, clock, clean_shutdown=True)
    append_values(log, 4, size=30)
    log.flush()
    append_values(log, 8, size=30)  # segments 0, 4, 8
    crash(log)
    segment = segment_files(directory)[1]
    data = bytearray(segment.read_bytes())
    data[batch_size * 2 + 70] ^= 0x10  # inside the third batch's records: offset 6
    segment.write_bytes(data)
    log = Log.open(directory, config, clock, clean_shutdown=False)
    assert log.log_end_offset == 6
    assert log.recovery_truncated_bytes == batch_size * 2 + batch_size * 4
    assert [p.name[:20] for p in segment_files(directory)] == [
        "00000000000000000000",
        "00000000000000000004",
    ]
    assert not (directory / "00000000000000000008.index").exists()
    assert read_all(log) == [(n, n) for n in range(6)]
    log.close()


def test_unclean_open_only_scans_from_recovery_point(
    directory: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_size = len(build_batch([b"p" * 30]))
    config = LogConfig(segment_bytes=batch_size * 4)
    log = Log.open(directory, config, clock, clean_shutdown=True)
    append_values(log, 8, size=30)  # two full segments, at 0 and 4
    log.flush()  # recovery point 8 crosses a segment boundary: checkpointed
    assert (directory / RECOVERY_POINT_CHECKPOINT).read_text() == "0\n8\n"
    append_values(log, 2, size=30)
    crash(log)
    recovered: list[int] = []
    real_recover = LogSegment.recover

    def spy(self: LogSegment, index_interval_bytes: int, trusted_below: int = 0) -> int:
        recovered.append(self.base_offset)
        return real_recover(self, index_interval_bytes, trusted_below)

    monkeypatch.setattr(LogSegment, "recover", spy)
    log = Log.open(directory, config, clock, clean_shutdown=False)
    assert recovered == [8]
    assert log.log_end_offset == 10
    log.close()


def test_unclean_open_reads_only_the_unflushed_tail_of_a_segment(
    directory: Path, clock: FakeClock
) -> None:
    """Batches below the recovery point were fsynced: recovery walks their headers to rebuild
    the indexes but neither reads nor checksums their bodies, so its cost follows the tail."""
    log = Log.open(directory, LogConfig(), clock, clean_shutdown=True)
    append_values(log, 4, size=30)
    log.flush()
    log.checkpoint_recovery_point()
    append_values(log, 2, size=30)
    crash(log)
    segment_file = directory / "00000000000000000000.log"
    data = bytearray(segment_file.read_bytes())
    batch_size = len(data) // 6
    data[batch_size // 2] ^= 0xFF  # inside batch 0's body: below the recovery point
    data[5 * batch_size + batch_size // 2] ^= 0xFF  # inside batch 5: the unflushed tail
    segment_file.write_bytes(bytes(data))
    log = Log.open(directory, LogConfig(), clock, clean_shutdown=False)
    assert log.log_end_offset == 5  # batch 5 failed its CRC and was cut; batch 0 never read
    assert log.recovery_truncated_bytes == batch_size
    log.close()


def test_start_offset_past_surviving_data_starts_empty(directory: Path, clock: FakeClock) -> None:
    log = Log.open(directory, LogConfig(), clock, clean_shutdown=True)
    append_values(log, 3)
    log.flush()
    append_values(log, 3)
    log.delete_records_before(6)
    crash(log)
    os.truncate(segment_files(directory)[0], len(build_batch([b"x" * 10])) * 3)
    log = Log.open(directory, LogConfig(), clock, clean_shutdown=False)
    assert (log.log_start_offset, log.log_end_offset) == (6, 6)
    append_values(log, 1)
    assert read_all(log) == [(6, 6)]
    log.close()


def test_leftovers_are_cleaned_on_open(directory: Path, clock: FakeClock) -> None:
    directory.mkdir()
    (directory / "00000000000000000042.index").write_bytes(b"")
    (directory / "recovery-point.checkpoint.tmp").write_bytes(b"junk")
    (directory / RECOVERY_POINT_CHECKPOINT).write_bytes(b"garbage")
    log = Log.open(directory, LogConfig(), clock, clean_shutdown=False)
    assert sorted(p.name for p in directory.iterdir()) == [
        "00000000000000000000.index",
        "00000000000000000000.log",
        "00000000000000000000.timeindex",
        RECOVERY_POINT_CHECKPOINT,  # the garbage one rewritten; a start at 0 needs no file
    ]
    assert (directory / RECOVERY_POINT_CHECKPOINT).read_text() == "0\n0\n"
    log.close()


def test_batches_iterates_stored_headers(directory: Path, clock: FakeClock) -> None:
    config = LogConfig(segment_bytes=500)
    log = Log.open(directory, config, clock, clean_shutdown=True)
    for number in range(20):
        append(log, build_batch([b"h" * 20] * 2, producer_id=7, base_sequence=2 * number))
    headers = list(log.batches())
    assert [h.base_offset for h in headers] == list(range(0, 40, 2))
    assert [h.base_sequence for h in headers] == list(range(0, 40, 2))
    assert all(h.producer_id == 7 for h in headers)
    assert [h.base_offset for h in log.batches(33)] == [32, 34, 36, 38]
    log.delete_records_before(20)
    assert next(iter(log.batches())).base_offset == 20
    log.close()


def test_delete_removes_the_directory(directory: Path, clock: FakeClock) -> None:
    log = Log.open(directory, LogConfig(), clock, clean_shutdown=True)
    append_values(log, 2)
    log.delete()
    assert not directory.exists()


def test_read_returns_stored_bytes_unchanged_after_reopen(
    directory: Path, clock: FakeClock
) -> None:
    log = Log.open(directory, LogConfig(), clock, clean_shutdown=True)
    records, headers = concat(build_batch([b"k"], keys=[b"key"]), build_batch([b"l", b"m"]))
    log.append(records, headers)
    log.close()
    log = Log.open(directory, LogConfig(), clock, clean_shutdown=False)
    assert log.read(0, 1 << 20) == bytes(records)
    assert [h.base_offset for h in iter_batches(records)] == [0, 1]
    log.close()


def test_aborted_flush_keeps_segments_dirty(directory: Path, clock: FakeClock) -> None:
    batch_size = len(build_batch([b"a" * 10]))
    log = Log.open(directory, LogConfig(segment_bytes=batch_size), clock, clean_shutdown=True)
    append_values(log, 2)
    job = log.prepare_flush()
    assert job is not None
    log.delete_records_before(1)
    log.abort_flush(job)  # as if fdatasync failed
    assert log.recovery_point == 0
    with pytest.raises(OSError):
        os.fstat(job.fds[0])  # the deleted segment's fds were released
    retry = log.prepare_flush()
    assert retry is not None
    assert retry.end_offset == 2
    log.complete_flush(retry)
    assert log.recovery_point == 2
    log.close()


def test_recovery_handles_batches_larger_than_its_read_chunk(
    directory: Path, clock: FakeClock
) -> None:
    log = Log.open(directory, LogConfig(), clock, clean_shutdown=True)
    append(log, build_batch([b"s" * 100]))
    append(log, build_batch([bytes(range(256)) * 6000]))  # ~1.5 MiB
    append(log, build_batch([b"t" * 100]))
    before = log.read(0, 1 << 30)
    crash(log)
    log = Log.open(directory, LogConfig(), clock, clean_shutdown=False)
    assert log.recovery_truncated_bytes == 0
    assert log.read(0, 1 << 30) == before
    assert headers_of(log.read(1, 1 << 30))[0].base_offset == 1
    log.close()


def test_group_commit_skips_active_indexes_until_the_segment_rolls(tmp_path: Path) -> None:
    log = Log.open(
        tmp_path / "p", LogConfig(segment_bytes=10_000), FakeClock(), clean_shutdown=True
    )
    records, headers = concat(build_batch([b"a" * 100]))
    log.append(records, headers)
    job = log.prepare_flush()
    assert job is not None
    active = log.active_segment
    assert job.fds == (active.fd,)  # the log alone: no index, no directory
    assert job.owned_fds == ()
    log.complete_flush(job)
    log.roll()
    job = log.prepare_flush()
    assert job is not None
    # The rolled segment's indexes (fds opened for this job) and the directory (a new segment).
    assert len(job.owned_fds) == 3 and set(job.owned_fds) <= set(job.fds)
    log.complete_flush(job)
    for fd in job.owned_fds:  # closed with the job
        with pytest.raises(OSError):
            os.fstat(fd)
    log.close()


def test_delete_while_a_flush_is_in_flight_defers_closing_fds(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "p", LogConfig(), FakeClock(), clean_shutdown=True)
    records, headers = concat(build_batch([b"a"]))
    log.append(records, headers)
    job = log.prepare_flush()
    assert job is not None
    log.delete()
    assert not (tmp_path / "p").exists()
    for fd in job.fds:
        os.fdatasync(fd)  # still open: no EBADF, no reuse by another file
    log.complete_flush(job)
    with pytest.raises(OSError):
        os.fstat(job.fds[0])
