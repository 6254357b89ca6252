"""One segment of a partition log: a ``.log`` file of record batches and its two indexes.

    <base offset, 20 digits>.log        v2 record batches back to back, stored exactly as
                                        appended (after offset assignment); no file header,
                                        no padding, no trailer:

        position 0                   batch: base_offset int64, batch_length int32, ... (61-byte
                                            header, then records; see protocol/records.py)
        position 12 + batch_length   next batch
        ...                          up to `size`

    <base offset, 20 digits>.index      OffsetIndex (see index.py)
    <base offset, 20 digits>.timeindex  TimeIndex (see index.py)

The log cleaner writes a replacement segment under the same names plus `.cleaned`, then
renames it to `.swap` and finally to the plain names (see log.py).

A segment only ever holds whole batches with increasing offsets, all at or above its base
offset; only a crash can leave a torn or corrupt tail, which `recover` cuts off. Reads go
through pread on the segment's fd, so a read copies the bytes once and never builds
per-record objects.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from millpond.protocol.records import BATCH_HEADER_SIZE
from millpond.protocol.records import COMPRESSION_MASK
from millpond.protocol.records import CURRENT_MAGIC
from millpond.protocol.records import LOG_OVERHEAD
from millpond.protocol.records import TIMESTAMP_TYPE_MASK
from millpond.protocol.records import BatchHeader
from millpond.protocol.records import InvalidRecordError
from millpond.protocol.records import crc_matches
from millpond.protocol.records import iter_record_offsets_and_timestamps
from millpond.protocol.records import read_header
from millpond.storage.files import write_all
from millpond.storage.fs import REAL_FILE_SYSTEM
from millpond.storage.fs import FileSystem
from millpond.storage.index import MAX_POSITION
from millpond.storage.index import MAX_RELATIVE_OFFSET
from millpond.storage.index import OffsetIndex
from millpond.storage.index import TimeIndex

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
NO_TIMESTAMP = -1

# base_offset, batch_length, partition_leader_epoch, magic, crc, attributes, last_offset_delta:
# enough of a batch to step over it and to know its last offset.
_PREFIX = struct.Struct(">qiibIhi")
_MIN_BATCH_LENGTH = BATCH_HEADER_SIZE - LOG_OVERHEAD
_RECOVERY_CHUNK = 1 << 20


def segment_file_name(base_offset: int, suffix: str) -> str:
    """``00000000000000000042.log`` and friends."""
    return f"{base_offset:020d}{suffix}"


class LogSegment:
    """A `.log` file with its offset and time indexes, owning their three fds.

    Attributes the log reads: `base_offset`, `size` (bytes in the .log), `next_offset` (one past
    the last stored offset; `base_offset` when empty), `max_timestamp` and
    `offset_of_max_timestamp` (base offset of the first batch that holds it), `created_ms`
    (per the log's clock, when this process created or opened the segment) and
    `needs_recovery` (set by `load` when the indexes or the tail cannot be trusted).
    """

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        created_ms: int,
        file_suffix: str = "",
        *,
        fs: FileSystem = REAL_FILE_SYSTEM,
    ) -> None:
        self.base_offset = base_offset
        self.file_suffix = file_suffix
        self.fs = fs
        self.log_path = directory / (segment_file_name(base_offset, LOG_SUFFIX) + file_suffix)
        self.fd = fs.open(self.log_path, os.O_RDWR | os.O_CREAT, 0o644)
        self.offset_index = OffsetIndex(
            directory / (segment_file_name(base_offset, INDEX_SUFFIX) + file_suffix),
            base_offset,
            fs=fs,
        )
        self.time_index = TimeIndex(
            directory / (segment_file_name(base_offset, TIME_INDEX_SUFFIX) + file_suffix),
            base_offset,
            fs=fs,
        )
        self.created_ms = created_ms
        self.size = fs.file_size(self.fd)
        self.next_offset = base_offset
        self.max_timestamp = NO_TIMESTAMP
        self.offset_of_max_timestamp = base_offset
        self.needs_recovery = False
        self._bytes_since_last_index_entry = 0
        # Group-commit bookkeeping, driven by the log: the log's write sequence number at this
        # segment's last write, and the one its last completed flush covered.
        self.last_write_sequence = 0
        self.flushed_sequence = 0
        self.indexes_flushed_sequence = 0

    @classmethod
    def create(
        cls,
        directory: Path,
        base_offset: int,
        created_ms: int,
        file_suffix: str = "",
        *,
        fs: FileSystem = REAL_FILE_SYSTEM,
    ) -> LogSegment:
        """A new empty segment; stale files with the same names are removed first.

        `file_suffix` is appended to each file name (the cleaner writes `.log.cleaned` and
        friends, which a log never lists as segments)."""
        for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            fs.unlink(
                directory / (segment_file_name(base_offset, suffix) + file_suffix), missing_ok=True
            )
        return cls(directory, base_offset, created_ms, file_suffix, fs=fs)

    @classmethod
    def load(
        cls,
        directory: Path,
        base_offset: int,
        created_ms: int,
        file_suffix: str = "",
        *,
        fs: FileSystem = REAL_FILE_SYSTEM,
    ) -> LogSegment:
        """Open an existing segment trusting its files, without reading the whole log.

        Loads both indexes, checks them for sanity (whole entries, increasing, last offset
        index entry pointing at a batch with that base offset) and walks the few batches after
        the last offset index entry to find `next_offset`. Sets `needs_recovery` when any of
        that fails, or when an index is missing for a non-empty log.
        """
        segment = cls(directory, base_offset, created_ms, file_suffix, fs=fs)
        segment.needs_recovery = not segment._load_state()
        return segment

    def _load_state(self) -> bool:
        offset_index = self.offset_index
        time_index = self.time_index
        if offset_index.corrupt or time_index.corrupt:
            return False
        if self.size == 0:
            return not offset_index and not time_index
        if offset_index.created or time_index.created:
            return False
        start = 0
        last_entry = offset_index.last_entry
        if last_entry is not None:
            start = last_entry[1]
            if (
                start + BATCH_HEADER_SIZE > self.size
                or self._read_prefix(start)[0] != last_entry[0]
            ):
                return False
        next_offset = self._walk_to_end(start)
        if next_offset is None:
            return False
        self.next_offset = next_offset
        time_entry = time_index.last_entry
        if time_entry is not None:
            if time_entry[1] >= next_offset:
                return False
            self.max_timestamp, self.offset_of_max_timestamp = time_entry
        self._bytes_since_last_index_entry = self.size - start
        return True

    def _walk_to_end(self, position: int) -> int | None:
        """Step over batch prefixes from `position` to the end; the next offset, or None if
        the prefixes do not add up to whole v2 batches with increasing offsets."""
        next_offset = self.base_offset
        while position < self.size:
            if self.size - position < BATCH_HEADER_SIZE:
                return None
            base_offset, batch_length, _, magic, _, _, last_offset_delta = _PREFIX.unpack(
                self.fs.pread(self.fd, _PREFIX.size, position)
            )
            if (
                magic != CURRENT_MAGIC
                or batch_length < _MIN_BATCH_LENGTH
                or position + LOG_OVERHEAD + batch_length > self.size
                or base_offset < next_offset
                or last_offset_delta < 0
            ):
                return None
            next_offset = base_offset + last_offset_delta + 1
            position += LOG_OVERHEAD + batch_length
        return next_offset

    def recover(self, index_interval_bytes: int, trusted_below: int = 0) -> int:
        """Validate every batch (length, magic, CRC-32C, increasing offsets), rebuild both
        indexes from them, and truncate the file at the first bad batch.

        Batches wholly below `trusted_below` (the log's recovery point: fsynced before the crash)
        are only walked, header by header, to rebuild the indexes; their bodies are neither read
        nor checksummed. So recovery reads the unflushed tail, not the whole segment.

        Returns how many bytes were cut off (0 if the whole file was good).
        """
        self.offset_index.reset()
        self.time_index.reset()
        self.max_timestamp = NO_TIMESTAMP
        self.offset_of_max_timestamp = self.base_offset
        self._bytes_since_last_index_entry = 0
        file_size = self.fs.file_size(self.fd)
        next_offset = self.base_offset
        position = 0
        chunk = b""
        chunk_start = 0
        while file_size - position >= BATCH_HEADER_SIZE:
            if position + BATCH_HEADER_SIZE > chunk_start + len(chunk):
                walking = next_offset < trusted_below
                chunk = self.fs.pread(
                    self.fd, BATCH_HEADER_SIZE if walking else _RECOVERY_CHUNK, position
                )
                chunk_start = position
            try:
                header = read_header(chunk, position - chunk_start)
            except InvalidRecordError:
                break
            if position + header.size > file_size:
                break
            trusted = header.last_offset < trusted_below
            if not trusted and position + header.size > chunk_start + len(chunk):
                chunk = self.fs.pread(self.fd, max(_RECOVERY_CHUNK, header.size), position)
                chunk_start = position
                header = read_header(chunk, 0)
            if (
                (not trusted and not crc_matches(chunk, header))
                or header.base_offset < next_offset
                or header.last_offset - self.base_offset > MAX_RELATIVE_OFFSET
                or position > MAX_POSITION
            ):
                break
            self._index_batch(
                header.base_offset, header.max_timestamp, position, header.size,
                index_interval_bytes,
            )  # fmt: skip
            next_offset = header.next_offset
            position += header.size
        self.next_offset = next_offset
        self.size = position
        self.on_become_inactive()  # harmless if it stays active: entries only need to grow
        truncated = file_size - position
        if truncated:
            self.fs.ftruncate(self.fd, position)
        self.needs_recovery = False
        return truncated

    def _index_batch(
        self, base_offset: int, max_timestamp: int, position: int, size: int, interval: int
    ) -> None:
        # As Kafka's LogSegment.append: an index entry for the first batch after
        # `interval` bytes, and a time index entry with it if the largest timestamp grew.
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
            self.offset_of_max_timestamp = base_offset
        if self._bytes_since_last_index_entry > interval:
            self.offset_index.append(base_offset, position)
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
            self._bytes_since_last_index_entry = 0
        self._bytes_since_last_index_entry += size

    def append(
        self,
        records: bytearray | memoryview,
        batches: list[BatchHeader],
        base_offsets: list[int],
        index_interval_bytes: int,
    ) -> None:
        """Write `batches` (consecutive in `records`, offsets already patched to
        `base_offsets`) at the end of the log, and index them."""
        first = batches[0].position
        last = batches[-1]
        end = last.position + last.size
        try:
            write_all(self.fs, self.fd, memoryview(records)[first:end], self.size)
        except OSError:
            # Disk full (ENOSPC) or an I/O error mid-write: cut what part of the batch made it,
            # so the file stays whole batches, and let the producer hear KAFKA_STORAGE_ERROR.
            # The next append writes at the same place once space returns.
            self._cut_to_size()
            raise
        saved = (
            self.max_timestamp,
            self.offset_of_max_timestamp,
            self._bytes_since_last_index_entry,
        )
        try:
            for batch, base_offset in zip(batches, base_offsets, strict=True):
                self._index_batch(
                    base_offset, batch.max_timestamp, self.size + batch.position - first,
                    batch.size, index_interval_bytes,
                )  # fmt: skip
        except OSError:
            # An index write failed after the data landed: undo the data too, and start the
            # sparse indexes afresh (empty is valid, only slower) rather than half-written.
            self._cut_to_size()
            self.max_timestamp, self.offset_of_max_timestamp = saved[0], saved[1]
            self._bytes_since_last_index_entry = saved[2]
            self.offset_index.reset()
            self.time_index.reset()
            raise
        self.size += end - first
        self.next_offset = base_offsets[-1] + last.last_offset_delta + 1

    def _cut_to_size(self) -> None:
        # If even this fails, reads still stop at self.size and the next append overwrites it.
        with contextlib.suppress(OSError):
            self.fs.ftruncate(self.fd, self.size)

    def on_become_inactive(self) -> bool:
        """Record the segment's largest timestamp as the time index's last entry (on roll
        and close), so a reopen knows it without a scan. Returns whether anything was written."""
        before = len(self.time_index)
        if self.max_timestamp != NO_TIMESTAMP:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
        return len(self.time_index) != before

    def _read_prefix(self, position: int) -> tuple[int, int, int]:
        """(base_offset, size, last_offset_delta) of the batch at `position`."""
        base_offset, batch_length, _, _, _, _, last_offset_delta = _PREFIX.unpack(
            self.fs.pread(self.fd, _PREFIX.size, position)
        )
        return base_offset, LOG_OVERHEAD + batch_length, last_offset_delta

    def find_batch(self, offset: int) -> tuple[int, int] | None:
        """(position, size) of the first batch whose last offset is >= `offset`, found via the
        offset index and a scan of batch prefixes; None if the segment has none."""
        _, position = self.offset_index.lookup(offset)
        while position < self.size:
            base_offset, size, last_offset_delta = self._read_prefix(position)
            if base_offset + last_offset_delta >= offset:
                return position, size
            position += size
        return None

    def read(self, offset: int, max_bytes: int, *, min_one_batch: bool) -> bytes | None:
        """Whole batches from the one holding `offset`, at most `max_bytes` of them (but the
        first one whatever its size if `min_one_batch`). None if the segment holds nothing at
        or after `offset`; b"" if the first batch is too big and not `min_one_batch`."""
        found = self.find_batch(offset)
        if found is None:
            return None
        start, first_size = found
        limit = start + max(max_bytes, 0)
        if limit >= self.size:
            end = self.size
        else:
            # Batches between `start` and an indexed position at or below `limit` all fit:
            # only the stretch after it needs walking.
            end = max(start, self.offset_index.position_at_or_below(limit))
            while True:
                size = self._read_prefix(end)[1]
                if end + size > limit:
                    break
                end += size
            if end == start:
                if not min_one_batch:
                    return b""
                end = start + first_size
        return self.fs.pread(self.fd, end - start, start)

    def read_header_at(self, position: int) -> BatchHeader:
        """The header of the batch at `position`, with `position` set to that file position."""
        header = read_header(self.fs.pread(self.fd, BATCH_HEADER_SIZE, position))
        return dataclasses.replace(header, position=position)

    def iter_batches(self, from_offset: int) -> Iterator[BatchHeader]:
        """Headers of the batches from the one holding `from_offset` to the end."""
        found = self.find_batch(from_offset)
        if found is None:
            return
        position = found[0]
        while position < self.size:
            header = self.read_header_at(position)
            yield header
            position += header.size

    def _first_record_at_or_after(
        self, header: BatchHeader, timestamp: int, min_offset: int
    ) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record in the batch with offset >= `min_offset`
        and timestamp >= `timestamp`: exact for uncompressed CreateTime batches, the batch's
        (base offset, max timestamp) otherwise."""
        if header.max_timestamp < timestamp or header.last_offset < min_offset:
            return None
        if not header.attributes & (COMPRESSION_MASK | TIMESTAMP_TYPE_MASK):
            data = self.fs.pread(self.fd, header.size, header.position)
            try:
                for offset, record_timestamp in iter_record_offsets_and_timestamps(
                    data, dataclasses.replace(header, position=0)
                ):
                    if offset >= min_offset and record_timestamp >= timestamp:
                        return offset, record_timestamp
            except InvalidRecordError:
                pass
            else:
                return None
        return max(header.base_offset, min_offset), header.max_timestamp

    def find_offset_by_timestamp(self, timestamp: int, min_offset: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the earliest record at or after `min_offset` whose timestamp
        is >= `timestamp` (see `_first_record_at_or_after` for the precision), or None."""
        if self.max_timestamp < timestamp:
            return None
        start = max(self.time_index.lookup(timestamp), min_offset)
        found = self.find_batch(start)
        if found is None:
            return None
        position = found[0]
        while position < self.size:
            header = self.read_header_at(position)
            result = self._first_record_at_or_after(header, timestamp, min_offset)
            if result is not None:
                return result
            position += header.size
        return None

    def exact_max_timestamp(self) -> tuple[int, int] | None:
        """(timestamp, offset) of the record holding the segment's largest timestamp (exact for
        uncompressed CreateTime batches, else the batch's base offset); None if no timestamps."""
        if self.max_timestamp == NO_TIMESTAMP:
            return None
        found = self.find_batch(self.offset_of_max_timestamp)
        if found is None:
            return None
        header = self.read_header_at(found[0])
        result = self._first_record_at_or_after(header, header.max_timestamp, 0)
        if result is None:
            return header.max_timestamp, header.base_offset
        return result[1], result[0]

    def open_index_fds(self) -> tuple[int, int]:
        """New fds on the offset and time indexes, for a flush to sync; the caller closes them."""
        offset_fd = self.offset_index.open_for_sync()
        try:
            return offset_fd, self.time_index.open_for_sync()
        except OSError:
            self.fs.close(offset_fd)
            raise

    def sync_files(self) -> None:
        """fdatasync the log and both indexes."""
        self.fs.fdatasync(self.fd)
        fds = self.open_index_fds()
        try:
            for fd in fds:
                self.fs.fdatasync(fd)
        finally:
            for fd in fds:
                self.fs.close(fd)

    def close_files(self) -> None:
        self.fs.close(self.fd)

    def unlink_files(self) -> None:
        """Remove the three files; the fds stay usable until `close_files`."""
        self.fs.unlink(self.log_path, missing_ok=True)
        self.fs.unlink(self.offset_index.path, missing_ok=True)
        self.fs.unlink(self.time_index.path, missing_ok=True)

    def rename_files(self, file_suffix: str) -> None:
        """Rename the three files to carry `file_suffix` ("" for the segment's own names);
        the fds stay open. The indexes go first, so a `.log` under the new name implies its
        indexes were renamed too (what a crash in between can leave is a `.log` under the old
        name with indexes under the new, which recovery treats as a missing index)."""
        for holder in (self.offset_index, self.time_index):
            target = _with_suffix(holder.path, self.file_suffix, file_suffix)
            self.fs.replace(holder.path, target)
            holder.path = target
        target = _with_suffix(self.log_path, self.file_suffix, file_suffix)
        self.fs.replace(self.log_path, target)
        self.log_path = target
        self.file_suffix = file_suffix


def _with_suffix(path: Path, old: str, new: str) -> Path:
    name = path.name.removesuffix(old) if old else path.name
    return path.with_name(name + new)
