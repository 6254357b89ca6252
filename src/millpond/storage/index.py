"""The sparse offset and time indexes of one log segment, as Kafka lays them out.

Offset index, ``<base offset>.index``: one 8-byte entry per `index_interval_bytes` of log.

    offset  size  field
    0       4     relative_offset  uint32  base offset of a batch - segment base offset
    4       4     position         uint32  byte position of that batch in the segment's .log

Time index, ``<base offset>.timeindex``: one 12-byte entry, written alongside an offset index
entry when the segment's largest timestamp has grown since the last one, and once more when the
segment stops being active (roll, close) so that its last entry holds the segment's largest
timestamp.

    offset  size  field
    0       8     timestamp        int64   largest timestamp in the segment up to this point
    8       4     relative_offset  uint32  base offset of the batch that holds it - base offset

Big-endian, like the log. Both files are written append-only with plain writes and read whole
into arrays on open. No fd stays open between writes: new entries wait in memory and are written
through a file opened for them, every PENDING_ENTRIES entries and whenever the index is about to
be synced (a segment's roll, a flush of its indexes, close). So a partition costs one fd, its
active segment's log, and 10,000 partitions fit under a 20,000-file limit. Entries not yet
written are lost in a crash, which is harmless: recovery rebuilds the indexes of every segment
it may have to (the active one included) from the log.
In the offset index both fields strictly increase; in the time index the
timestamp strictly increases. Unlike Kafka, entries name the *base* offset of a batch, so a
lookup lands on the start of the batch without a scan.
"""

from __future__ import annotations

import bisect
import os
import struct
import sys
from array import array
from pathlib import Path

from millpond.storage.fs import REAL_FILE_SYSTEM
from millpond.storage.fs import FileSystem

OFFSET_ENTRY_SIZE = 8
TIME_ENTRY_SIZE = 12
MAX_RELATIVE_OFFSET = 0xFFFFFFFF
MAX_POSITION = 0xFFFFFFFF

_OFFSET_ENTRY = struct.Struct(">II")
_TIME_ENTRY = struct.Struct(">qI")


class CorruptIndexError(Exception):
    """An index file cannot be right: its length is not a whole number of entries, or its
    entries go backwards."""


def _read_or_create(fs: FileSystem, path: Path) -> tuple[bytes, bool]:
    """The index file's bytes, creating it empty if missing; also say whether it was new."""
    existed = fs.exists(path)
    fd = fs.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = fs.file_size(fd)
        return (fs.pread(fd, size, 0) if size else b""), not existed
    finally:
        fs.close(fd)


def _append_to(fs: FileSystem, path: Path, entry: bytes) -> None:
    fd = fs.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        fs.write(fd, entry)
    finally:
        fs.close(fd)


def _truncate(fs: FileSystem, path: Path) -> None:
    fd = fs.open(path, os.O_WRONLY)
    try:
        fs.ftruncate(fd, 0)
    finally:
        fs.close(fd)


def open_for_sync(fs: FileSystem, path: Path) -> int:
    """A new fd on the index file, for an fdatasync; the caller closes it."""
    return fs.open(path, os.O_RDONLY)


# Entries kept in memory before they are written out: one open/write/close per this many.
PENDING_ENTRIES = 64


def _strictly_increasing(values: array[int]) -> bool:
    # sorted() and set() run in C: a clean open of a full 1 GiB segment's index stays ~ms.
    as_list = values.tolist()
    return as_list == sorted(as_list) and len(set(as_list)) == len(as_list)


def _non_decreasing(values: array[int]) -> bool:
    as_list = values.tolist()
    return as_list == sorted(as_list)


class _IndexFile:
    """What both indexes share: the file, loaded whole on open, appended to through entries
    kept in memory (see the module notes), truncated for a rebuild."""

    def __init__(self, path: Path, base_offset: int, *, fs: FileSystem = REAL_FILE_SYSTEM) -> None:
        """Open the index at `path`, creating an empty one if it does not exist.

        Never raises for bad contents: `created` says the file was missing and `corrupt` that
        its entries cannot be right (they are then dropped; the owner rebuilds the index).
        """
        self.path = path
        self.base_offset = base_offset
        self.fs = fs
        data, self.created = _read_or_create(fs, path)
        self._pending: list[bytes] = []
        self._clear()
        self.corrupt = False
        try:
            self._load(data)
        except CorruptIndexError:
            self.corrupt = True
            self._clear()

    def _clear(self) -> None:
        raise NotImplementedError

    def _load(self, data: bytes) -> None:
        raise NotImplementedError

    def _add(self, entry: bytes) -> None:
        self._pending.append(entry)
        if len(self._pending) >= PENDING_ENTRIES:
            self.write_pending()

    def reset(self) -> None:
        """Drop every entry (before a rebuild)."""
        _truncate(self.fs, self.path)
        self._pending = []
        self._clear()

    def write_pending(self) -> None:
        """Write the entries still in memory to the file."""
        if self._pending:
            _append_to(self.fs, self.path, b"".join(self._pending))
            self._pending = []

    def open_for_sync(self) -> int:
        """Write what is pending, then open a new fd for an fdatasync (the caller closes it)."""
        self.write_pending()
        return open_for_sync(self.fs, self.path)


class OffsetIndex(_IndexFile):
    """Maps offsets to byte positions in a segment's log, sparsely."""

    def _clear(self) -> None:
        self._relative_offsets: array[int] = array("I")
        self._positions: array[int] = array("I")

    def _load(self, data: bytes) -> None:
        path = self.path
        if len(data) % OFFSET_ENTRY_SIZE:
            raise CorruptIndexError(f"{path.name}: {len(data)} bytes is not whole entries")
        flat = array("I")
        flat.frombytes(data)
        if sys.byteorder == "little":
            flat.byteswap()
        self._relative_offsets = flat[0::2]
        self._positions = flat[1::2]
        if not (
            _strictly_increasing(self._relative_offsets) and _strictly_increasing(self._positions)
        ):
            raise CorruptIndexError(f"{path.name}: entries are not increasing")

    def __len__(self) -> int:
        return len(self._positions)

    @property
    def last_entry(self) -> tuple[int, int] | None:
        """(offset, position) of the last entry, or None if the index is empty."""
        if not self._positions:
            return None
        return self.base_offset + self._relative_offsets[-1], self._positions[-1]

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the last entry at or below `offset`; (base_offset, 0) if none."""
        index = bisect.bisect_right(self._relative_offsets, offset - self.base_offset) - 1
        if index < 0:
            return self.base_offset, 0
        return self.base_offset + self._relative_offsets[index], self._positions[index]

    def position_at_or_below(self, position: int) -> int:
        """The last indexed batch position at or below `position` (0 if none)."""
        index = bisect.bisect_right(self._positions, position) - 1
        return self._positions[index] if index >= 0 else 0

    def append(self, offset: int, position: int) -> None:
        """Add an entry; `offset` and `position` must exceed those of the last entry."""
        relative = offset - self.base_offset
        if not 0 <= relative <= MAX_RELATIVE_OFFSET or position > MAX_POSITION:
            raise ValueError(f"offset {offset} / position {position} do not fit the index")
        if self._positions and (
            relative <= self._relative_offsets[-1] or position <= self._positions[-1]
        ):
            raise ValueError(f"index entry ({offset}, {position}) does not move forward")
        self._add(_OFFSET_ENTRY.pack(relative, position))
        self._relative_offsets.append(relative)
        self._positions.append(position)


class TimeIndex(_IndexFile):
    """Maps timestamps to the offsets where the segment's largest timestamp grew, sparsely."""

    def _clear(self) -> None:
        self._timestamps: array[int] = array("q")
        self._relative_offsets: array[int] = array("I")

    def _load(self, data: bytes) -> None:
        path = self.path
        if len(data) % TIME_ENTRY_SIZE:
            raise CorruptIndexError(f"{path.name}: {len(data)} bytes is not whole entries")
        for timestamp, relative in _TIME_ENTRY.iter_unpack(data):
            self._timestamps.append(timestamp)
            self._relative_offsets.append(relative)
        if not _strictly_increasing(self._timestamps):
            raise CorruptIndexError(f"{path.name}: timestamps are not increasing")
        if not _non_decreasing(self._relative_offsets):
            raise CorruptIndexError(f"{path.name}: offsets go backwards")

    def __len__(self) -> int:
        return len(self._timestamps)

    @property
    def last_entry(self) -> tuple[int, int] | None:
        """(timestamp, offset) of the last entry, or None if the index is empty."""
        if not self._timestamps:
            return None
        return self._timestamps[-1], self.base_offset + self._relative_offsets[-1]

    def lookup(self, timestamp: int) -> int:
        """The offset of the last entry whose timestamp is <= `timestamp` (base_offset if none).

        No batch before that offset holds a timestamp >= `timestamp`, so a scan for the first
        such record can start at the batch there.
        """
        index = bisect.bisect_right(self._timestamps, timestamp) - 1
        if index < 0:
            return self.base_offset
        return self.base_offset + self._relative_offsets[index]

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add an entry if `timestamp` is larger than the last entry's."""
        if self._timestamps and timestamp <= self._timestamps[-1]:
            return
        relative = offset - self.base_offset
        if not 0 <= relative <= MAX_RELATIVE_OFFSET:
            raise ValueError(f"offset {offset} does not fit the time index")
        if self._relative_offsets and relative < self._relative_offsets[-1]:
            raise ValueError(f"time index entry at offset {offset} goes backwards")
        self._add(_TIME_ENTRY.pack(timestamp, relative))
        self._timestamps.append(timestamp)
        self._relative_offsets.append(relative)
