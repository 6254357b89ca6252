"""A partition's log (Kafka's UnifiedLog + LocalLog): ordered segments in one directory.

    <partition directory>/
        00000000000000000000.log         segments, named by base offset (see segment.py);
        00000000000000000000.index       the last one is the active segment, the only one
        00000000000000000000.timeindex   appended to
        00000000000000052817.log / .index / .timeindex
        log-start-offset.checkpoint      b"0\\n<log start offset>\\n"   (format version, value)
        recovery-point.checkpoint        b"0\\n<recovery point>\\n"
        cleaner-offset.checkpoint        b"0\\n<first dirty offset>\\n"  (compacted topics)
        <checkpoint name>.tmp            a checkpoint being replaced (removed on open)
        <segment file>.cleaned           a segment the cleaner is writing (removed on open)
        <segment file>.swap              a cleaned segment committed to replace old ones

Checkpoints are replaced atomically: write the temp file, fsync it, rename it over the old
one, fsync the directory. A missing or unreadable checkpoint reads as 0, which only costs
work: the log start offset is never below the first segment's base offset, and recovery
from 0 rescans everything.

Every file operation goes through the log's `fs` (see fs.py), so crash tests can run it on a
simulated disk.

Durability. Appends are plain writes; `prepare_flush` hands out the fds holding unflushed
bytes (segment logs, and fds it opens for the job alone on index files and, after segments
were created or deleted, the directory) for the broker to fdatasync off the event loop, and
`complete_flush` then moves the recovery point (and closes the job's own fds). Only segment
logs keep an fd open, so a partition usually costs one.
Everything below the recovery point is on disk; an unclean open validates
only the segments from the one holding it.

Fd lifetime. A FlushJob may hold the fds of a segment that retention or DeleteRecords
removes while the fdatasync runs. Such a segment's files are unlinked at once, but its fds
are closed only once no flush job is in flight (at the last `complete_flush` or
`abort_flush`, or at `close`).
Rolled segments keep their fds, as they stay readable. A CleanJob (see cleaner.py) pins
fds the same way: segments deleted or replaced while one is out are closed when it ends.

Compaction swaps segments without readers ever seeing a half-cleaned one. The cleaner writes
each replacement segment (one per group of adjacent old segments, named by the group's first
base offset) as `<name>.cleaned` files and fsyncs them; `finish_clean` then renames them to
`.swap` (indexes first, `.log` last) and fsyncs the directory: a `.log.swap` is the commit
point. It then replaces the segment objects in one step, unlinks the old segments' files,
fsyncs the directory again and renames each `.swap` to its plain name (made durable by the
next flush: until then a crash finds the `.swap`). That is two directory fsyncs and one
checkpoint write on the event loop per clean. `open` finishes what a crash interrupted: it deletes
`.cleaned` files, and for each `.log.swap` (ascending) deletes every segment whose base
offset lies in [its base offset, its next offset), which are exactly the old segments whose
records it holds, then renames it into place; `.swap` indexes without their `.log` are
leftovers of an uncommitted rename and go. An old segment left over past the swap's last
offset (all its records were cleaned away) only brings back superseded records at their
own offsets: nothing is lost or duplicated. Cleaned segments lie wholly below the persisted
recovery point, so an unclean open never re-validates their offset holes.

The recovery point is kept in memory and written to its checkpoint when a completed flush
carries it past a segment boundary (so a crash rescans at most about one segment plus the
unflushed tail, at the cost of one small atomic write per segment), on `close`, after an
unclean open, and on `checkpoint_recovery_point`.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from millpond.clock import Clock
from millpond.protocol.records import BatchHeader
from millpond.protocol.records import set_base_offset
from millpond.storage.cleaner import CLEANED_SUFFIX
from millpond.storage.cleaner import SWAP_SUFFIX
from millpond.storage.cleaner import CleanerConfig
from millpond.storage.cleaner import CleanJob
from millpond.storage.cleaner import CleanResult
from millpond.storage.cleaner import plan_clean
from millpond.storage.files import read_file
from millpond.storage.fs import REAL_FILE_SYSTEM
from millpond.storage.fs import FileSystem
from millpond.storage.index import MAX_POSITION
from millpond.storage.index import MAX_RELATIVE_OFFSET
from millpond.storage.segment import LOG_SUFFIX
from millpond.storage.segment import NO_TIMESTAMP
from millpond.storage.segment import LogSegment
from millpond.storage.segment import segment_file_name

LOG_START_OFFSET_CHECKPOINT = "log-start-offset.checkpoint"
RECOVERY_POINT_CHECKPOINT = "recovery-point.checkpoint"
CLEANER_OFFSET_CHECKPOINT = "cleaner-offset.checkpoint"
_CHECKPOINT_VERSION = 0
_SEGMENT_FILE = re.compile(r"^(\d{20})(\.log|\.index|\.timeindex)$")


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Per-topic storage settings (Kafka's segment.bytes, segment.ms, retention.ms,
    retention.bytes, index.interval.bytes)."""

    segment_bytes: int = 1 << 30
    segment_ms: int = 7 * 24 * 3600 * 1000
    retention_ms: int = 7 * 24 * 3600 * 1000  # -1 = keep forever
    retention_bytes: int = -1  # -1 = no size limit
    index_interval_bytes: int = 4096

    def __post_init__(self) -> None:
        if self.segment_bytes < 1:
            raise ValueError(f"segment_bytes must be positive, not {self.segment_bytes}")
        if self.segment_ms < 1:
            raise ValueError(f"segment_ms must be positive, not {self.segment_ms}")
        if self.index_interval_bytes < 0:
            raise ValueError(
                f"index_interval_bytes must not be negative, not {self.index_interval_bytes}"
            )


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Offsets given to one append. `offset_of_max_timestamp` is the base offset of the
    first appended batch holding `max_timestamp` (batch precision: no record decoding on the
    produce path)."""

    base_offset: int
    last_offset: int
    max_timestamp: int
    offset_of_max_timestamp: int


@dataclass(frozen=True, slots=True)
class FlushJob:
    """What one group-commit fdatasync round must sync for one log.

    Run the log's ``fs.fdatasync(fd)`` (``os.fdatasync`` for the real file system) on every
    fd in `fds` (any thread), then hand the job back to `Log.complete_flush` on the event
    loop. The fds stay open until then.
    """

    fds: tuple[int, ...]
    end_offset: int
    sequence: int
    segments: tuple[LogSegment, ...]
    syncs_directory: bool
    index_segments: tuple[LogSegment, ...] = ()
    # The fds opened for this job alone (indexes, directory), closed when it ends.
    owned_fds: tuple[int, ...] = ()


class OffsetOutOfRangeError(Exception):
    """The offset is outside [log_start_offset, log_end_offset] (Kafka's
    OFFSET_OUT_OF_RANGE)."""

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(f"offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


def _read_checkpoint(path: Path, fs: FileSystem) -> int | None:
    try:
        lines = read_file(path, fs).decode("ascii").split("\n")
        if int(lines[0]) != _CHECKPOINT_VERSION:
            return None
        value = int(lines[1])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    return value if value >= 0 else None


class Log:
    """One partition's log. Not thread-safe: everything but the fdatasync of a FlushJob runs
    on one thread (the event loop)."""

    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        clock: Clock,
        segments: list[LogSegment],
        log_start_offset: int,
        recovery_point: int,
        cleaner_checkpoint: int = 0,
        *,
        fs: FileSystem = REAL_FILE_SYSTEM,
    ) -> None:
        """Use `Log.open`."""
        self.config = config
        self.fs = fs
        self.directory = directory
        self.recovery_truncated_bytes = 0
        self._clock = clock
        self._segments = segments
        self._log_start_offset = log_start_offset
        self._recovery_point = recovery_point
        self._persisted_recovery_point = recovery_point
        self._write_sequence = 0
        self._directory_write_sequence = 0
        self._directory_flushed_sequence = 0
        self._flushes_in_flight = 0
        self._deleted_awaiting_close: list[LogSegment] = []
        self._delete_pending = False
        self._closed = False
        self._clean_job: CleanJob | None = None
        self._cleaner_checkpoint = cleaner_checkpoint

    # --- opening and recovery ---------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        config: LogConfig,
        clock: Clock,
        *,
        clean_shutdown: bool,
        fs: FileSystem = REAL_FILE_SYSTEM,
    ) -> Log:
        """Open the log in `directory`, creating the directory if it is new.

        `clean_shutdown`: trust the files (the last `close` flushed everything) and open
        without reading the logs, checking only each index's shape and the batches after its
        last entry. Otherwise recover from the recovery point: validate every batch of the
        segment holding it and of all later ones, cut the log at the first torn or corrupt
        batch (deleting any later segments) and rebuild their indexes. Either way a segment
        with a missing or inconsistent index is recovered too. `recovery_truncated_bytes`
        says how much was cut off. A clean interrupted by a crash is finished or discarded
        first (see the module notes). Every file operation goes through `fs`.
        """
        fs.mkdir(directory)
        for name in (
            LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT, CLEANER_OFFSET_CHECKPOINT
        ):  # fmt: skip
            fs.unlink(directory / (name + ".tmp"), missing_ok=True)
        _complete_interrupted_swaps(directory, config, clock.wall_ms(), fs)
        files: dict[int, set[str]] = {}
        for name in fs.listdir(directory):
            match = _SEGMENT_FILE.match(name)
            if match:
                files.setdefault(int(match.group(1)), set()).add(match.group(2))
        for base_offset, suffixes in files.items():
            if LOG_SUFFIX not in suffixes:  # an index whose log is gone
                for suffix in suffixes:
                    fs.unlink(directory / segment_file_name(base_offset, suffix))
        checkpointed_start = _read_checkpoint(directory / LOG_START_OFFSET_CHECKPOINT, fs)
        checkpointed_recovery = _read_checkpoint(directory / RECOVERY_POINT_CHECKPOINT, fs)
        now = clock.wall_ms()
        segments = [
            LogSegment.load(directory, base_offset, now, fs=fs)
            for base_offset, suffixes in sorted(files.items())
            if LOG_SUFFIX in suffixes
        ]
        log = cls(
            directory, config, clock, segments, checkpointed_start or 0,
            checkpointed_recovery or 0,
            _read_checkpoint(directory / CLEANER_OFFSET_CHECKPOINT, fs) or 0, fs=fs,
        )  # fmt: skip
        log._load(clean_shutdown=clean_shutdown)
        # A brand-new log (no segment, no checkpoint) starts at 0, which is also what a missing
        # checkpoint reads as: it needs neither file, only its directory synced, so that its
        # first segment (and the removal of whatever a deleted topic of the same name left
        # there) survives a crash. One fsync instead of four per new partition.
        fresh = not files and checkpointed_start is None and checkpointed_recovery is None
        if fresh and log._log_start_offset == 0 and log._recovery_point == 0:
            log._sync_directory()
            return log

        # A missing checkpoint reads as 0: a log still at 0 needs none written. Writing one
        # syncs the directory too; after a crash the directory is synced regardless, since a
        # segment file an interrupted recovery made may not be durable yet (crash seed 2544).
        def stale(name: str, checkpointed: int | None, value: int) -> bool:
            if checkpointed is None:  # missing, or unreadable (then rewritten)
                return value != 0 or fs.exists(directory / name)
            return value != checkpointed

        synced = False
        if stale(LOG_START_OFFSET_CHECKPOINT, checkpointed_start, log._log_start_offset):
            log._write_checkpoint(LOG_START_OFFSET_CHECKPOINT, log._log_start_offset)
            synced = True
        if stale(RECOVERY_POINT_CHECKPOINT, checkpointed_recovery, log._recovery_point):
            log.checkpoint_recovery_point()
            synced = True
        if not clean_shutdown and not synced:
            log._sync_directory()
        return log

    def _load(self, *, clean_shutdown: bool) -> None:
        segments = self._segments
        recover_from = len(segments)
        if not clean_shutdown and segments:
            recover_from = max(0, self._segment_index(self._recovery_point))
        recovered: list[LogSegment] = []
        for index, segment in enumerate(segments):
            if index < recover_from and not segment.needs_recovery:
                continue
            truncated = segment.recover(
                self.config.index_interval_bytes,
                trusted_below=0 if clean_shutdown else self._recovery_point,
            )
            if truncated or segment.size:  # an empty, uncut segment has nothing to make durable
                recovered.append(segment)
            self.recovery_truncated_bytes += truncated
            following = segments[index + 1 :]
            # Offsets run on across segments: if this one now stops short of the next one's
            # base offset, the file lost its tail to the crash and the later segments hang
            # past a hole, so they go too. (Only an unclean open checks this, and only from
            # the segment holding the recovery point: the ones before it were flushed whole,
            # and the holes the cleaner leaves are all there.)
            if following and (
                truncated
                or (
                    not clean_shutdown
                    and index >= recover_from
                    and following[0].base_offset != segment.next_offset
                )
            ):
                for later in following:
                    self.recovery_truncated_bytes += later.size
                    later.close_files()
                    later.unlink_files()
                del segments[index + 1 :]
                break
        now = self._clock.wall_ms()
        if not segments:
            segments.append(
                LogSegment.create(self.directory, self._log_start_offset, now, fs=self.fs)
            )
        # Segments wholly below a persisted log start offset are what a crash left of a
        # deletion (the start is persisted before the unlinks): finish it.
        stale = 0
        while (
            stale + 1 < len(segments) and segments[stale + 1].base_offset <= self._log_start_offset
        ):
            stale += 1
        for segment in segments[:stale]:
            segment.close_files()
            segment.unlink_files()
            if segment in recovered:
                recovered.remove(segment)
        del segments[:stale]
        self._log_start_offset = max(self._log_start_offset, segments[0].base_offset)
        if self._log_start_offset > self.log_end_offset:
            # DeleteRecords moved the start past what survived the crash: nothing below it
            # may be served, so start over empty there.
            #
            # The first segment goes last, after a directory fsync. Crash simulation
            # (REGRESSION_SEEDS in tests/unit/storage/test_crash_simulation.py) found that
            # unlinking it unsynced along with the later segments (here or in the hole check
            # above) let a crash keep a later segment while the first one, the only evidence
            # that the later ones hang past a hole, was gone: the next recovery then served
            # the records after the hole and moved log_start_offset up to them. A file
            # system may persist unsynced unlinks in any order; the fsync makes the later
            # segments go first.
            for segment in [*segments[1:], segments[0]]:
                if segment is segments[0]:
                    self._sync_directory()
                self.recovery_truncated_bytes += segment.size
                segment.close_files()
                segment.unlink_files()
            segments[:] = [
                LogSegment.create(self.directory, self._log_start_offset, now, fs=self.fs)
            ]
            recovered = []
        for segment in recovered:
            segment.sync_files()
        if recovered or stale or self.recovery_truncated_bytes:
            self._sync_directory()
        self._recovery_point = self.log_end_offset

    # --- state ------------------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        """The first offset a consumer may read."""
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        """The offset the next appended record gets."""
        return self._segments[-1].next_offset

    @property
    def recovery_point(self) -> int:
        """Offsets below this are on disk (fdatasync'd)."""
        return self._recovery_point

    @property
    def size_in_bytes(self) -> int:
        """Bytes in all `.log` files (indexes not counted, as in Kafka's `size`)."""
        return sum(segment.size for segment in self._segments)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def active_segment(self) -> LogSegment:
        return self._segments[-1]

    def _segment_index(self, offset: int) -> int:
        """Index of the last segment whose base offset is <= `offset` (-1 if none)."""
        return bisect.bisect_right(self._segments, offset, key=lambda s: s.base_offset) - 1

    # --- appending --------------------------------------------------------------------------

    def append(self, records: bytearray | memoryview, batches: list[BatchHeader]) -> AppendResult:
        """Assign offsets to `batches` (whole, validated batches in `records`, as returned by
        `iter_batches(records)`), patching each base_offset in place, and write them.

        Rolls first when the active segment is older than segment_ms, and before any batch
        that would take it past segment_bytes (a segment is never left empty, so a batch
        larger than segment_bytes goes alone in a new segment). Raises ValueError if
        `batches` is empty.
        """
        if not batches:
            raise ValueError("nothing to append")
        config = self.config
        active = self._segments[-1]
        if active.size and self._clock.wall_ms() - active.created_ms > config.segment_ms:
            self.roll()
            active = self._segments[-1]
        offset = self.log_end_offset
        first_offset = offset
        max_timestamp = NO_TIMESTAMP
        offset_of_max_timestamp = offset
        run_start = 0
        run_bytes = 0
        base_offsets: list[int] = []
        for number, batch in enumerate(batches):
            used = active.size + run_bytes
            if used and (
                used + batch.size > config.segment_bytes
                or used + batch.size > MAX_POSITION
                or offset + batch.last_offset_delta - active.base_offset > MAX_RELATIVE_OFFSET
            ):
                if run_bytes:
                    self._write(
                        active, records, batches[run_start:number], base_offsets[run_start:]
                    )
                self.roll()
                active = self._segments[-1]
                run_start = number
                run_bytes = 0
            set_base_offset(records, batch.position, offset)
            base_offsets.append(offset)
            if batch.max_timestamp > max_timestamp:
                max_timestamp = batch.max_timestamp
                offset_of_max_timestamp = offset
            offset += batch.last_offset_delta + 1
            run_bytes += batch.size
        self._write(active, records, batches[run_start:], base_offsets[run_start:])
        return AppendResult(first_offset, offset - 1, max_timestamp, offset_of_max_timestamp)

    def _write(
        self,
        segment: LogSegment,
        records: bytearray | memoryview,
        batches: list[BatchHeader],
        base_offsets: list[int],
    ) -> None:
        segment.append(records, batches, base_offsets, self.config.index_interval_bytes)
        self._mark_written(segment)

    def _mark_written(self, segment: LogSegment) -> None:
        self._write_sequence += 1
        segment.last_write_sequence = self._write_sequence

    def _mark_directory_changed(self) -> None:
        self._write_sequence += 1
        self._directory_write_sequence = self._write_sequence

    def roll(self) -> None:
        """Start a new active segment at log_end_offset, unless the active one is empty."""
        active = self._segments[-1]
        if not active.size:
            return
        if active.on_become_inactive():
            self._mark_written(active)
        segment = LogSegment.create(
            self.directory, self.log_end_offset, self._clock.wall_ms(), fs=self.fs
        )
        self._segments.append(segment)
        self._mark_directory_changed()

    # --- reading ----------------------------------------------------------------------------

    def _check_range(self, offset: int) -> None:
        if not self._log_start_offset <= offset <= self.log_end_offset:
            raise OffsetOutOfRangeError(offset, self._log_start_offset, self.log_end_offset)

    def read(self, offset: int, max_bytes: int, *, min_one_batch: bool = True) -> bytes:
        """Whole stored batches, starting with the first whose last offset is >= `offset` (the
        one holding it, or after compaction possibly a later one, or one whose remaining
        records all lie below it: batches keep their offset span), from one segment,
        at most `max_bytes` of them; if the first batch alone is larger, that batch anyway when
        `min_one_batch` (KIP-74), else b"". b"" at log_end_offset.

        Raises OffsetOutOfRangeError outside [log_start_offset, log_end_offset].
        """
        self._check_range(offset)
        if offset == self.log_end_offset:
            return b""
        for segment in self._segments[max(0, self._segment_index(offset)) :]:
            data = segment.read(offset, max_bytes, min_one_batch=min_one_batch)
            if data is not None:
                return data
        return b""

    def batches(self, from_offset: int = 0) -> Iterator[BatchHeader]:
        """Headers of the stored batches from the one holding max(from_offset,
        log_start_offset) to the end; each `position` is the batch's place in its segment
        file. Do not append or delete while iterating."""
        start = max(from_offset, self._log_start_offset)
        for segment in self._segments[max(0, self._segment_index(start)) :]:
            yield from segment.iter_batches(start)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the earliest record at or after log_start_offset whose
        timestamp is >= `timestamp_ms` (ListOffsets by time), or None if there is none.

        Exact for uncompressed CreateTime batches; for compressed or LogAppendTime batches it is
        the batch's base offset (or log_start_offset) and max timestamp.
        """
        for segment in self._segments:
            if segment.next_offset <= self._log_start_offset:
                continue
            found = segment.find_offset_by_timestamp(timestamp_ms, self._log_start_offset)
            if found is not None:
                return found
        return None

    def max_timestamp(self) -> tuple[int, int] | None:
        """(timestamp, offset) of the record with the largest timestamp (the earliest such),
        with offset_for_timestamp's precision; None if the log holds no timestamped record."""
        best: LogSegment | None = None
        for segment in self._segments:
            if segment.max_timestamp > (NO_TIMESTAMP if best is None else best.max_timestamp):
                best = segment
        return None if best is None else best.exact_max_timestamp()

    # --- deleting ---------------------------------------------------------------------------

    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: raise log_start_offset to `offset`, persist it, and delete the
        segments wholly below it (never the active one). Returns the new log_start_offset.

        Raises OffsetOutOfRangeError if `offset` is negative or past log_end_offset.
        """
        if not 0 <= offset <= self.log_end_offset:
            raise OffsetOutOfRangeError(offset, self._log_start_offset, self.log_end_offset)
        if offset > self._log_start_offset:
            self._log_start_offset = offset
            self._write_checkpoint(LOG_START_OFFSET_CHECKPOINT, offset)
            segments = self._segments
            count = 0
            while count + 1 < len(segments) and segments[count + 1].base_offset <= offset:
                count += 1
            self._delete_segments(count)
        return self._log_start_offset

    def apply_retention(self) -> int:
        """Delete the oldest segments past retention: first those whose largest timestamp is
        more than retention_ms old, then while the log without its oldest segment is still at
        least retention_bytes. If every segment goes, the active one is rolled first, so the
        log keeps an (empty) active segment. Returns how many segments were deleted."""
        config = self.config
        deleted = 0
        if config.retention_ms >= 0:
            now = self._clock.wall_ms()

            def expired(segment: LogSegment) -> bool:
                newest = segment.max_timestamp
                if newest == NO_TIMESTAMP:
                    newest = segment.created_ms
                return now - newest > config.retention_ms

            deleted += self._delete_oldest_while(expired)
        if config.retention_bytes >= 0:
            excess = self.size_in_bytes - config.retention_bytes

            def over_size(segment: LogSegment) -> bool:
                nonlocal excess
                if excess - segment.size < 0:
                    return False
                excess -= segment.size
                return True

            deleted += self._delete_oldest_while(over_size)
        return deleted

    def _delete_oldest_while(self, predicate: Callable[[LogSegment], bool]) -> int:
        count = 0
        active = self._segments[-1]
        for segment in self._segments:
            # An inactive segment may be empty once the cleaner removed all its records.
            if (segment is active and not segment.size) or not predicate(segment):
                break
            count += 1
        if count == len(self._segments):
            self.roll()
        self._delete_segments(count)
        return count

    def _delete_segments(self, count: int) -> None:
        """Move log_start_offset up past the `count` oldest segments (never all), persist it,
        and only then delete them.

        Crash simulation (tests/unit/storage/test_crash_simulation.py, REGRESSION_SEEDS)
        found the opposite order unsafe: the unlinks were issued first and a file system
        may persist unsynced directory operations in any order, so a crash could keep an
        older segment whose younger neighbour was gone, and the log served a hole below a
        log_start_offset that had not moved yet. With the start persisted first, whatever
        subset of the unlinks survives lies below it (and `open` finishes the deletion).
        """
        if not count:
            return
        start = self._segments[count].base_offset
        if start > self._log_start_offset:
            self._log_start_offset = start
            self._write_checkpoint(LOG_START_OFFSET_CHECKPOINT, start)
        doomed = self._segments[:count]
        del self._segments[:count]
        for segment in doomed:
            segment.unlink_files()
            self._retire(segment)
        self._mark_directory_changed()

    # --- compaction -------------------------------------------------------------------------

    @property
    def cleaner_checkpoint(self) -> int:
        """The first dirty offset: everything below it was compacted by an earlier clean."""
        return self._cleaner_checkpoint

    @property
    def cleaning(self) -> bool:
        """Whether a CleanJob is out."""
        return self._clean_job is not None

    def begin_clean(self, now_ms: int, config: CleanerConfig) -> CleanJob | None:
        """Start compacting the inactive segments (see cleaner.py for the rules): pin them,
        create the empty `.cleaned` output segments and return the job for `build_cleaned`;
        None if a clean is already out, the log is closed or nothing is due.

        Every CleanJob must end in `finish_clean` or `abort_clean`. Raises OSError if the
        output files cannot be created (none are left behind).
        """
        if self._closed or self._delete_pending or self._clean_job is not None:
            return None
        plan = plan_clean(
            self._segments,
            first_dirty_offset=max(self._cleaner_checkpoint, self._log_start_offset),
            recovery_point=self._persisted_recovery_point,
            now_ms=now_ms,
            config=config,
            segment_bytes=self.config.segment_bytes,
        )
        if plan is None:
            return None
        outputs: list[LogSegment] = []
        try:
            for group in plan.groups:
                created_ms = min(segment.created_ms for segment in group)
                outputs.append(
                    LogSegment.create(
                        self.directory,
                        group[0].base_offset,
                        created_ms,
                        CLEANED_SUFFIX,
                        fs=self.fs,
                    )
                )
        except OSError:
            _discard_segments(outputs)
            raise
        job = CleanJob(plan, tuple(outputs), now_ms, config, self.config.index_interval_bytes)
        self._clean_job = job
        return job

    def abort_clean(self, job: CleanJob) -> None:
        """Forget `job` (its build failed or was cancelled; it no longer runs): delete its
        output files and release the segments it pinned."""
        if self._clean_job is not job:
            return
        self._clean_job = None
        _discard_segments(job.outputs)
        self._release_fds()

    def finish_clean(self, result: CleanResult) -> bool:
        """Swap the cleaned segments of a finished `build_cleaned` in for the ones they
        replace (see the module notes for the order of renames), and move the cleaner
        checkpoint to the cleaning point. Returns False, discarding the result, if the log
        changed under the job (retention or DeleteRecords deleted some of its segments, or
        the log was closed or deleted). Raises OSError if a rename or fsync fails; before
        the commit point the old segments then stay, after it `open` finishes the swap.
        """
        job = result.job
        if self._clean_job is not job:
            raise ValueError("finish_clean of a job this log did not begin or already ended")
        self._clean_job = None
        old = job.segments
        count = len(old)
        unchanged = len(self._segments) > count and all(
            current is segment for current, segment in zip(self._segments, old, strict=False)
        )
        if self._closed or self._delete_pending or not unchanged:
            _discard_segments(job.outputs)
            self._release_fds()
            return False
        try:
            for output in job.outputs:
                output.rename_files(SWAP_SUFFIX)
            self._sync_directory()
        except OSError:
            _discard_segments(job.outputs)
            self._release_fds()
            raise
        self._segments[:count] = job.outputs
        try:
            for segment in old:
                segment.unlink_files()
            # Durable before any plain name reappears: else a crash could keep a renamed
            # segment next to an old one it replaced, their offsets overlapping.
            self._sync_directory()
            for output in job.outputs:
                output.rename_files("")
        finally:
            for segment in old:
                self._retire(segment)
            self._mark_directory_changed()
            self._release_fds()
        self._cleaner_checkpoint = job.plan.end_offset
        self._write_checkpoint(CLEANER_OFFSET_CHECKPOINT, job.plan.end_offset)
        return True

    # --- durability -------------------------------------------------------------------------

    def prepare_flush(self, *, include_active_indexes: bool = False) -> FlushJob | None:
        """The fds holding bytes not yet covered by a completed flush, and the offset they
        cover up to (log_end_offset now); None if there are none.

        The active segment's index files are left out unless `include_active_indexes`:
        recovery after a crash rebuilds the indexes of every segment from the one holding the
        recovery point, which is never before the active one's predecessor, so they need to
        be durable only once the segment has rolled. That keeps a group-commit round to one
        fdatasync per partition on the hot path instead of three.
        """
        segments = self._segments
        dirty = tuple(s for s in segments if s.last_write_sequence > s.flushed_sequence)
        indexed = segments if include_active_indexes else segments[:-1]
        index_dirty = tuple(
            s for s in indexed if s.last_write_sequence > s.indexes_flushed_sequence
        )
        syncs_directory = self._directory_write_sequence > self._directory_flushed_sequence
        if not dirty and not index_dirty and not syncs_directory:
            return None
        fds = [segment.fd for segment in dirty]
        owned: list[int] = []
        try:
            for segment in index_dirty:
                owned += segment.open_index_fds()
            if syncs_directory:
                owned.append(self._open_directory())
        except OSError:
            for fd in owned:
                self.fs.close(fd)
            raise
        fds += owned
        self._flushes_in_flight += 1
        return FlushJob(
            tuple(fds),
            self.log_end_offset,
            self._write_sequence,
            dirty,
            syncs_directory,
            index_dirty,
            tuple(owned),
        )

    def complete_flush(self, job: FlushJob) -> None:
        """After every fd of `job` was fdatasync'd: advance the recovery point to
        job.end_offset, and close the fds of segments deleted meanwhile once no job holds them.
        """
        self._end_flush(job)
        if self._delete_pending:
            return
        for segment in job.segments:
            segment.flushed_sequence = max(segment.flushed_sequence, job.sequence)
        for segment in job.index_segments:
            segment.indexes_flushed_sequence = max(segment.indexes_flushed_sequence, job.sequence)
        if job.syncs_directory:
            self._directory_flushed_sequence = max(self._directory_flushed_sequence, job.sequence)
        if job.end_offset > self._recovery_point:
            self._recovery_point = job.end_offset
            if any(
                self._persisted_recovery_point < s.base_offset <= job.end_offset
                for s in self._segments
            ):
                self.checkpoint_recovery_point()

    def abort_flush(self, job: FlushJob) -> None:
        """The fdatasync of `job` failed: forget the job without moving the recovery point
        (its segments stay dirty, so the next prepare_flush offers them again)."""
        self._end_flush(job)

    def _end_flush(self, job: FlushJob) -> None:
        for fd in job.owned_fds:
            self.fs.close(fd)
        self._flushes_in_flight -= 1
        self._release_fds()

    def _fds_in_use(self) -> bool:
        """Whether a FlushJob or a CleanJob may be using fds in another thread."""
        return bool(self._flushes_in_flight) or self._clean_job is not None

    def _retire(self, segment: LogSegment) -> None:
        """Close a segment gone from the log now, or once no job holds its fds."""
        if self._fds_in_use():
            self._deleted_awaiting_close.append(segment)
        else:
            segment.close_files()

    def _release_fds(self) -> None:
        """A job ended: close what waited for the last one (everything after `delete`)."""
        if self._fds_in_use():
            return
        if self._delete_pending:
            if not self._closed:
                self._close_files()
            return
        for segment in self._deleted_awaiting_close:
            segment.close_files()
        self._deleted_awaiting_close.clear()

    def flush(self) -> None:
        """prepare_flush (active indexes included), fdatasync and complete_flush, synchronously."""
        job = self.prepare_flush(include_active_indexes=True)
        if job is not None:
            try:
                for fd in job.fds:
                    self.fs.fdatasync(fd)
            except OSError:
                self.abort_flush(job)
                raise
            self.complete_flush(job)

    def checkpoint_recovery_point(self) -> None:
        """Persist the recovery point now (the broker may call this periodically)."""
        self._write_checkpoint(RECOVERY_POINT_CHECKPOINT, self._recovery_point)
        self._persisted_recovery_point = self._recovery_point

    def _open_directory(self) -> int:
        return self.fs.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)

    def _sync_directory(self) -> None:
        """fsync the directory (new, renamed or removed files durable), through an fd of its
        own: no fd stays open per partition for this."""
        fd = self._open_directory()
        try:
            self.fs.fsync(fd)
        finally:
            self.fs.close(fd)

    def _write_checkpoint(self, name: str, value: int) -> None:
        path = self.directory / name
        temporary = path.with_name(name + ".tmp")
        fs = self.fs
        fd = fs.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            fs.write(fd, f"{_CHECKPOINT_VERSION}\n{value}\n".encode("ascii"))
            fs.fsync(fd)
        finally:
            fs.close(fd)
        fs.replace(temporary, path)
        self._sync_directory()

    # --- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Flush, persist the recovery point and close every fd. Call with no FlushJob or
        CleanJob in flight (await the running ones first: a cancelled `LogCleaner.clean`
        aborts its job before it returns). The next open may pass clean_shutdown=True."""
        if self._closed:
            return
        active = self._segments[-1]
        if active.on_become_inactive():
            self._mark_written(active)
        self.flush()
        if self._persisted_recovery_point != self._recovery_point:
            self.checkpoint_recovery_point()
        self._close_files()

    def _close_files(self) -> None:
        """Close every fd without flushing (what a crash does)."""
        self._closed = True
        for segment in self._segments + self._deleted_awaiting_close:
            segment.close_files()
        self._deleted_awaiting_close.clear()

    def close_without_flush(self) -> None:
        """Close every fd, flushing nothing (a log about to be removed)."""
        if not self._closed and not self._fds_in_use():
            self._close_files()

    def delete(self) -> None:
        """Remove the whole directory (topic deletion) and close every fd without flushing.

        If a group-commit round or a clean still holds this log's fds, they are closed when
        it ends (complete_flush, abort_flush, finish_clean, abort_clean), never under a
        running fdatasync or cleaner thread.
        """
        if not self._closed:
            if self._fds_in_use():
                self._delete_pending = True
            else:
                self._close_files()  # first: removing a tree needs descriptors of its own
        self.fs.rmtree(self.directory)


def _discard_segments(segments: Iterable[LogSegment]) -> None:
    """Close and delete segments that never joined a log (a clean's outputs)."""
    for segment in segments:
        segment.close_files()
        segment.unlink_files()


def _complete_interrupted_swaps(
    directory: Path, config: LogConfig, now: int, fs: FileSystem
) -> None:
    """Finish the segment swaps a crash interrupted, and delete uncommitted cleaner files."""
    swaps: list[int] = []
    for name in fs.listdir(directory):
        if name.endswith(CLEANED_SUFFIX):
            fs.unlink(directory / name)
        elif name.endswith(LOG_SUFFIX + SWAP_SUFFIX):
            match = _SEGMENT_FILE.match(name.removesuffix(SWAP_SUFFIX))
            if match:
                swaps.append(int(match.group(1)))
    changed = False
    for base_offset in sorted(swaps):
        swapped = LogSegment.load(directory, base_offset, now, SWAP_SUFFIX, fs=fs)
        try:
            if swapped.needs_recovery:
                swapped.recover(config.index_interval_bytes)
                swapped.sync_files()
            for name in fs.listdir(directory):
                match = _SEGMENT_FILE.match(name)
                if match and base_offset <= int(match.group(1)) < swapped.next_offset:
                    fs.unlink(directory / name)
            swapped.rename_files("")
        finally:
            swapped.close_files()
        changed = True
    for name in fs.listdir(directory):
        if name.endswith(SWAP_SUFFIX):  # an index renamed before a crash, its .log not
            fs.unlink(directory / name)
            changed = True
    if changed:
        fs.fsync_directory(directory)
