"""Log compaction (Kafka's LogCleaner) for topics with cleanup.policy=compact.

A clean of one log runs in three steps, so that the expensive middle one can go to a worker
thread while the event loop keeps appending and serving reads:

    Log.begin_clean(now_ms, config) -> CleanJob | None     event loop: pick the segments,
                                                            create the `.cleaned` files
    build_cleaned(job) -> CleanResult                       any thread: read the pinned
                                                            segments, write and fsync the
                                                            `.cleaned` files
    Log.finish_clean(result) / Log.abort_clean(job)         event loop: swap them in, or not

`LogCleaner.clean` drives the three for a list of logs.

What a clean keeps (Kafka's rules). The cleanable part of a log is the run of inactive
segments from the first one up to, not including, the first segment that is active, not yet
wholly below the persisted recovery point, or (when dirty) holds a record newer than
`min_compaction_lag_ms`; its end is the *cleaning point*. The *first dirty offset* (the
`cleaner-offset.checkpoint`) splits it into a clean part, already compacted by an earlier
clean, and a dirty part. A log is cleaned when dirty bytes / cleanable bytes reaches
`min_cleanable_dirty_ratio`. Then every record of the cleanable part is kept unless:
  - its key is null (a compacted topic refuses them; any left are dropped), or
  - a record with the same key sits at a higher offset in the dirty part (the key map is
    built from the dirty part only: the clean part holds one record per key already), or
  - it is a tombstone (null value) in the clean part, i.e. it survived one clean already, and
    its timestamp is more than `delete_retention_ms` before now. This is the simple rule,
    not Kafka's per-segment "last cleaned" time: a tombstone is kept for at least one clean
    and, after that, for delete.retention.ms past its own timestamp (the batch's
    max_timestamp for LogAppendTime batches).
Offsets never change: a rewritten batch keeps its base offset and offset span
(last_offset_delta), its codec, timestamp type, partition leader epoch and producer
id/epoch/base sequence, so reads see holes between offsets, never moved records. The last
batch of each producer id within the cleanable part is kept even when no record of it
survives (as an empty batch: v2 header, no records, uncompressed), so producer state rebuilt
by replaying the log still knows the producer's last sequence. Control and transactional
batches are kept whole. Adjacent segments are merged while their total size stays within
segment.bytes (Kafka's groupSegmentsBySize).

The key map holds every distinct key of the dirty part in memory (Kafka bounds it with
`log.cleaner.dedupe.buffer.size`; this does not).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
import threading
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING

from crc32c import crc32c

from millpond.protocol.record_codec import NewRecord
from millpond.protocol.record_codec import Record
from millpond.protocol.record_codec import encode_batch
from millpond.protocol.record_codec import iter_records
from millpond.protocol.records import BATCH_HEADER_SIZE
from millpond.protocol.records import COMPRESSION_MASK
from millpond.protocol.records import CURRENT_MAGIC
from millpond.protocol.records import TIMESTAMP_TYPE_MASK
from millpond.protocol.records import BatchHeader
from millpond.protocol.records import InvalidRecordError
from millpond.protocol.records import read_header
from millpond.storage.index import MAX_POSITION
from millpond.storage.index import MAX_RELATIVE_OFFSET
from millpond.storage.segment import NO_TIMESTAMP
from millpond.storage.segment import LogSegment

if TYPE_CHECKING:
    from millpond.clock import Clock
    from millpond.storage.log import Log

logger = logging.getLogger(__name__)

CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
_READ_CHUNK = 1 << 20
_WRITE_CHUNK = 1 << 20
_LEADER_EPOCH = struct.Struct(">i")
_LEADER_EPOCH_OFFSET = 12
_AFTER_CRC = struct.Struct(">hiqqqhii")
_BEFORE_CRC = struct.Struct(">qiibI")


@dataclass(frozen=True, slots=True)
class CleanerConfig:
    """A compacted topic's cleaning settings (Kafka's delete.retention.ms,
    min.compaction.lag.ms, min.cleanable.dirty.ratio)."""

    delete_retention_ms: int = 86_400_000
    min_compaction_lag_ms: int = 0
    min_cleanable_dirty_ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.delete_retention_ms < 0:
            raise ValueError(
                f"delete_retention_ms must not be negative: {self.delete_retention_ms}"
            )
        if self.min_compaction_lag_ms < 0:
            raise ValueError(
                f"min_compaction_lag_ms must not be negative: {self.min_compaction_lag_ms}"
            )
        if not 0 <= self.min_cleanable_dirty_ratio <= 1:
            raise ValueError(
                f"min_cleanable_dirty_ratio must be in [0, 1]: {self.min_cleanable_dirty_ratio}"
            )


class CleanCancelledError(Exception):
    """`CleanJob.cancel` was called while `build_cleaned` ran."""


@dataclass(frozen=True, slots=True)
class CleanPlan:
    """Which segments one clean rewrites: `groups` of adjacent segments, each replaced by one
    new segment, covering [first segment's base offset, `end_offset`)."""

    groups: tuple[tuple[LogSegment, ...], ...]
    first_dirty_offset: int
    end_offset: int
    dirty_bytes: int
    cleanable_bytes: int


@dataclass(frozen=True, slots=True)
class CleanJob:
    """One clean in progress: the pinned input segments (grouped), their `.cleaned` outputs
    (created empty by `Log.begin_clean`), and what decides which records stay."""

    plan: CleanPlan
    outputs: tuple[LogSegment, ...]
    now_ms: int
    config: CleanerConfig
    index_interval_bytes: int
    _cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def segments(self) -> tuple[LogSegment, ...]:
        """Every input segment, oldest first."""
        return tuple(segment for group in self.plan.groups for segment in group)

    def cancel(self) -> None:
        """Ask a running `build_cleaned` to stop soon (it raises CleanCancelledError)."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()


@dataclass(frozen=True, slots=True)
class CleanResult:
    """A finished `build_cleaned`: the job (its outputs written and fsynced) and counts."""

    job: CleanJob
    records_read: int
    records_removed: int
    bytes_read: int
    bytes_written: int


@dataclass(frozen=True, slots=True)
class CleanerStats:
    """What one `LogCleaner.clean` pass did."""

    logs_cleaned: int = 0
    logs_discarded: int = 0
    logs_failed: int = 0
    records_removed: int = 0
    bytes_read: int = 0
    bytes_written: int = 0


# --- planning (event loop) -------------------------------------------------------------------


def plan_clean(
    segments: Sequence[LogSegment],
    *,
    first_dirty_offset: int,
    recovery_point: int,
    now_ms: int,
    config: CleanerConfig,
    segment_bytes: int,
) -> CleanPlan | None:
    """The clean to run on a log with these `segments` (the last one active), or None when
    nothing is cleanable or the dirty ratio is below `config.min_cleanable_dirty_ratio`.

    Only segments wholly below `recovery_point` are cleanable (an unclean open re-validates
    the segments from the one holding the recovery point, and checks that their offsets run
    on; cleaned segments must stay out of that), and a dirty segment holding a record newer
    than `now_ms - min_compaction_lag_ms` ends the cleanable part.
    """
    lag = config.min_compaction_lag_ms
    cleanable: list[LogSegment] = []
    dirty_bytes = 0
    for segment, following in itertools.pairwise(segments):
        if following.base_offset > recovery_point:
            break
        dirty = following.base_offset > first_dirty_offset
        if dirty and lag:
            newest = segment.max_timestamp
            if newest == NO_TIMESTAMP:
                newest = segment.created_ms
            if newest > now_ms - lag:
                break
        cleanable.append(segment)
        if dirty:
            dirty_bytes += segment.size
    if not cleanable or not dirty_bytes:
        return None
    cleanable_bytes = sum(segment.size for segment in cleanable)
    if dirty_bytes < config.min_cleanable_dirty_ratio * cleanable_bytes:
        return None
    end_offset = segments[len(cleanable)].base_offset
    groups: list[tuple[LogSegment, ...]] = []
    group: list[LogSegment] = []
    group_bytes = 0
    for number, segment in enumerate(cleanable):
        last_offset = segments[number + 1].base_offset - 1
        if group and (
            group_bytes + segment.size > min(segment_bytes, MAX_POSITION)
            or last_offset - group[0].base_offset > MAX_RELATIVE_OFFSET
        ):
            groups.append(tuple(group))
            group = []
            group_bytes = 0
        group.append(segment)
        group_bytes += segment.size
    groups.append(tuple(group))
    return CleanPlan(
        tuple(groups), min(first_dirty_offset, end_offset), end_offset, dirty_bytes,
        cleanable_bytes,
    )  # fmt: skip


# --- building (any thread) -------------------------------------------------------------------


def _segment_batches(segment: LogSegment) -> Iterator[tuple[bytes, BatchHeader]]:
    """(buffer, header) of every batch of an inactive segment, `header.position` being the
    batch's place in `buffer`; reads through the segment's fd in large chunks."""
    size = segment.size
    position = 0
    while position < size:
        chunk = segment.fs.pread(segment.fd, min(_READ_CHUNK, size - position), position)
        used = 0
        while len(chunk) - used >= BATCH_HEADER_SIZE:
            header = read_header(chunk, used)
            if used + header.size > len(chunk):
                break
            yield chunk, header
            used += header.size
        if not used:  # one batch larger than the chunk
            header = read_header(chunk)
            if position + header.size > size:
                raise InvalidRecordError(f"batch at {position} of {segment.log_path} is torn")
            yield segment.fs.pread(segment.fd, header.size, position), header
            used = header.size
        position += used


def _record_timestamp(header: BatchHeader, record: Record) -> int:
    return header.max_timestamp if header.attributes & TIMESTAMP_TYPE_MASK else record.timestamp


def _empty_batch(header: BatchHeader) -> bytes:
    """`header`'s batch with no records (Kafka's writeEmptyHeader): same offsets, timestamps,
    producer fields and leader epoch, uncompressed."""
    after_crc = _AFTER_CRC.pack(
        header.attributes & ~COMPRESSION_MASK, header.last_offset_delta, header.base_timestamp,
        header.max_timestamp, header.producer_id, header.producer_epoch, header.base_sequence, 0,
    )  # fmt: skip
    batch_length = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, then the rest
    prefix = _BEFORE_CRC.pack(
        header.base_offset, batch_length, header.partition_leader_epoch, CURRENT_MAGIC,
        crc32c(after_crc),
    )  # fmt: skip
    return prefix + after_crc


def _rebuilt_batch(header: BatchHeader, records: list[Record]) -> bytes:
    """`header`'s batch holding only `records`, at their original offsets, recompressed with
    its codec."""
    log_append_time = bool(header.attributes & TIMESTAMP_TYPE_MASK)
    batch = encode_batch(
        [
            NewRecord(record.key, record.value, _record_timestamp(header, record), record.headers)
            for record in records
        ],
        base_offset=header.base_offset,
        offset_deltas=[record.offset - header.base_offset for record in records],
        last_offset_delta=header.last_offset_delta,
        compression=header.attributes & COMPRESSION_MASK,
        log_append_time=log_append_time,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
    )
    _LEADER_EPOCH.pack_into(batch, _LEADER_EPOCH_OFFSET, header.partition_leader_epoch)
    return bytes(batch)


class _Cleaning:
    """The key map and the rules of one job."""

    def __init__(self, job: CleanJob) -> None:
        self.job = job
        self.first_dirty = job.plan.first_dirty_offset
        self.tombstone_horizon = job.now_ms - job.config.delete_retention_ms
        self.latest: dict[bytes, int] = {}
        self.producer_last_batch: dict[int, int] = {}
        self.records_read = 0
        self.records_removed = 0

    def check_cancelled(self) -> None:
        if self.job.cancelled:
            raise CleanCancelledError("clean cancelled")

    def build_map(self) -> None:
        """Latest offset of each key in the dirty part, and the base offset of each producer's
        last batch in the cleanable part."""
        first_dirty = self.first_dirty
        latest = self.latest
        for segment in self.job.segments:
            for buffer, header in _segment_batches(segment):
                self.check_cancelled()
                if header.has_producer_id and not header.is_control:
                    self.producer_last_batch[header.producer_id] = header.base_offset
                if header.last_offset < first_dirty or header.is_control:
                    continue
                for record in iter_records(buffer, header):
                    if record.key is not None and record.offset >= first_dirty:
                        latest[record.key] = record.offset

    def retains(self, header: BatchHeader, record: Record) -> bool:
        if record.key is None:
            return False
        latest = self.latest.get(record.key)
        if latest is not None and latest > record.offset:
            return False
        return not (
            record.value is None
            and record.offset < self.first_dirty
            and _record_timestamp(header, record) < self.tombstone_horizon
        )

    def clean_batch(self, buffer: bytes, header: BatchHeader) -> bytes | None:
        """What of the batch stays: its bytes unchanged, a rebuilt batch, or None."""
        whole = buffer[header.position : header.position + header.size]
        if header.is_control or header.is_transactional:
            return whole
        records = list(iter_records(buffer, header))
        kept = [record for record in records if self.retains(header, record)]
        self.records_read += len(records)
        self.records_removed += len(records) - len(kept)
        last_of_producer = (
            header.has_producer_id
            and self.producer_last_batch.get(header.producer_id) == header.base_offset
        )
        if len(kept) == len(records) and (records or last_of_producer):
            return whole
        if not kept:
            return _empty_batch(header) if last_of_producer else None
        return _rebuilt_batch(header, kept)


class _SegmentWriter:
    """Appends batches to a `.cleaned` segment in large writes, indexing them."""

    def __init__(self, segment: LogSegment, index_interval_bytes: int) -> None:
        self.segment = segment
        self.index_interval_bytes = index_interval_bytes
        self.buffer = bytearray()
        self.headers: list[BatchHeader] = []

    def add(self, batch: bytes) -> None:
        position = len(self.buffer)
        self.buffer += batch
        self.headers.append(read_header(self.buffer, position))
        if len(self.buffer) >= _WRITE_CHUNK:
            self._write()

    def _write(self) -> None:
        if self.headers:
            offsets = [header.base_offset for header in self.headers]
            self.segment.append(self.buffer, self.headers, offsets, self.index_interval_bytes)
        self.buffer = bytearray()
        self.headers = []

    def finish(self) -> None:
        """Write what is buffered, record the largest timestamp, fsync the three files."""
        self._write()
        self.segment.on_become_inactive()
        self.segment.sync_files()


def build_cleaned(job: CleanJob) -> CleanResult:
    """Write and fsync the job's `.cleaned` segments. Runs in any thread: it reads only the
    job's input segments (immutable once rolled; their fds stay open while the job is out)
    and writes only its outputs. Raises InvalidRecordError on undecodable batches, OSError,
    and CleanCancelledError after `job.cancel()`; then hand the job to `Log.abort_clean`."""
    cleaning = _Cleaning(job)
    cleaning.build_map()
    bytes_read = 0
    for group, output in zip(job.plan.groups, job.outputs, strict=True):
        writer = _SegmentWriter(output, job.index_interval_bytes)
        for segment in group:
            bytes_read += segment.size
            for buffer, header in _segment_batches(segment):
                cleaning.check_cancelled()
                kept = cleaning.clean_batch(buffer, header)
                if kept is not None:
                    writer.add(kept)
        writer.finish()
    return CleanResult(
        job, cleaning.records_read, cleaning.records_removed, bytes_read,
        sum(output.size for output in job.outputs),
    )  # fmt: skip


def batch_has_null_key(buffer: bytes | bytearray | memoryview, header: BatchHeader) -> bool:
    """Whether any record of the batch has a null key (a compacted topic refuses the batch:
    Kafka answers INVALID_RECORD). Raises InvalidRecordError if the records do not decode."""
    return any(record.key is None for record in iter_records(buffer, header))


# --- driving (event loop) --------------------------------------------------------------------


class LogCleaner:
    """Cleans compacted logs one at a time, the heavy part in a worker thread."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def clean(self, logs: Iterable[tuple[Log, CleanerConfig]]) -> CleanerStats:
        """Clean every log that is due (see `plan_clean`). A failure on one log is logged and
        counted, never raised. If cancelled, the running worker is told to stop and waited
        for, its job aborted, then CancelledError propagates: after this returns or raises,
        no clean holds any log's files (so the logs may be closed)."""
        cleaned = discarded = failed = removed = read = written = 0
        for log, config in logs:
            try:
                result = await self._clean_log(log, config)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("cleaning the log in %s failed", log.directory)
                failed += 1
                continue
            if result is None:
                continue
            if result[1]:
                cleaned += 1
                removed += result[0].records_removed
                read += result[0].bytes_read
                written += result[0].bytes_written
            else:
                discarded += 1
        return CleanerStats(cleaned, discarded, failed, removed, read, written)

    async def _clean_log(self, log: Log, config: CleanerConfig) -> tuple[CleanResult, bool] | None:
        job = log.begin_clean(self._clock.wall_ms(), config)
        if job is None:
            return None
        worker = asyncio.ensure_future(asyncio.to_thread(build_cleaned, job))
        try:
            result = await asyncio.shield(worker)
        except asyncio.CancelledError:
            job.cancel()
            await asyncio.wait([worker])
            if not worker.cancelled():
                worker.exception()  # retrieved: it is the cancellation, or moot now
            log.abort_clean(job)
            raise
        except BaseException:
            log.abort_clean(job)
            raise
        return result, log.finish_clean(result)
