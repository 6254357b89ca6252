"""A simulated disk for crash tests: a `FileSystem` (millpond.storage.fs) kept in memory that
knows what is durable and what a power cut may still take.

    fs = SimulatedFileSystem()
    fs.crash_after(120)            # the 121st mutating operation raises SimulatedCrash
    ... drive storage with fs ...  # until SimulatedCrash
    fs.crash(rng)                  # the disk as the next boot finds it

Model. Each file (inode) has durable bytes, the bytes processes see now, and the list of
writes and truncates made since its last fsync/fdatasync. Each directory has durable entries,
current entries, and the creations, renames and unlinks made since it was last fsynced. A
sync moves everything pending to durable. A crash keeps, per directory, a random prefix of its
pending entry operations (a journal: a create, rename or unlink not followed by a directory
fsync may vanish, with all that came after it) or, less often, any subset of them (POSIX
promises no order without a directory fsync), and per file one of: nothing pending, everything, a
prefix of the pending operations whose last write is torn at a 512-byte sector boundary, or a
random subset of the sectors of every pending write (unsynced writes landing out of order,
with zeros in the holes that a later-landing write opens past the old end). Files no durable
entry names are gone.

Not modelled: directories are created durable (mkdir) and never removed; metadata other than
size (mode, times); a sync that fails (EIO) or a full disk; bit flips in synced data; torn
writes inside a sector; renames across directories.
"""

from __future__ import annotations

import errno
import os
import random
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

SECTOR = 512


class SimulatedCrash(BaseException):
    """The power went out. A BaseException, so storage code's `except OSError` and `except
    Exception` do not swallow it."""


@dataclass
class _Inode:
    durable: bytearray = field(default_factory=bytearray)
    current: bytearray = field(default_factory=bytearray)
    # ("write", offset, data) or ("truncate", length, b"")
    pending: list[tuple[str, int, bytes]] = field(default_factory=list)


@dataclass
class _Directory:
    durable: dict[str, int] = field(default_factory=dict)
    current: dict[str, int] = field(default_factory=dict)
    # ("link", name, inode, ""), ("unlink", name, 0, ""), ("rename", source, inode, target)
    pending: list[tuple[str, str, int, str]] = field(default_factory=list)


@dataclass
class _OpenFile:
    inode: int  # -1 for a directory
    directory: str  # the directory itself, for a directory fd
    writable: bool
    append: bool
    position: int = 0


def _apply_write(content: bytearray, offset: int, data: bytes) -> None:
    if offset > len(content):
        content.extend(bytes(offset - len(content)))
    content[offset : offset + len(data)] = data


def _apply_truncate(content: bytearray, length: int) -> None:
    if length < len(content):
        del content[length:]
    else:
        content.extend(bytes(length - len(content)))


def _sectors(offset: int, data: bytes) -> list[tuple[int, bytes]]:
    """`data` written at `offset`, cut at sector boundaries of the file."""
    pieces = []
    start = 0
    while start < len(data):
        end = min(len(data), start + SECTOR - (offset + start) % SECTOR)
        pieces.append((offset + start, data[start:end]))
        start = end
    return pieces


class SimulatedFileSystem:
    """An in-memory `FileSystem` that keeps unsynced writes apart (see the module notes)."""

    def __init__(self) -> None:
        self._inodes: dict[int, _Inode] = {}
        self._directories: dict[str, _Directory] = {}
        self._fds: dict[int, _OpenFile] = {}
        self._next_inode = 1
        self._next_fd = 1000  # never reused: a stale fd after a crash fails loudly
        self.operations = 0
        self._crash_at: int | None = None
        self.crashed = False

    # --- the crash ---------------------------------------------------------------------------

    def crash_after(self, operations: int | None) -> None:
        """Raise SimulatedCrash instead of performing mutating operation number
        `operations` + 1, counted from now (None: never)."""
        self.operations = 0
        self._crash_at = operations

    def _step(self) -> None:
        if self.crashed:
            raise SimulatedCrash
        if self._crash_at is not None and self.operations >= self._crash_at:
            self.crashed = True
            raise SimulatedCrash
        self.operations += 1

    def _check_alive(self) -> None:
        if self.crashed:
            raise SimulatedCrash

    def crash(self, rng: random.Random, *, journal_order: bool | None = None) -> None:
        """Lose power now: keep what is durable plus a random part of what is pending (see
        the module notes), close every fd, and start again with nothing pending.

        `journal_order` forces a prefix (True) or any subset (False) of each directory's
        pending operations; None picks one at random, the prefix three times in four."""
        survivors: set[int] = set()
        for directory in self._directories.values():
            entries = dict(directory.durable)
            pending = directory.pending
            in_order = rng.random() < 0.75 if journal_order is None else journal_order
            if in_order:  # a journal: the operations persist in order
                pending = pending[: rng.randint(0, len(pending))]
            else:  # no ordering promise without a directory fsync: any subset
                pending = [operation for operation in pending if rng.random() < 0.5]
            for kind, name, inode, target in pending:
                if kind == "link":
                    entries[name] = inode
                elif kind == "unlink":
                    entries.pop(name, None)
                else:
                    entries.pop(name, None)
                    entries[target] = inode
            directory.durable = entries
            directory.current = dict(entries)
            directory.pending.clear()
            survivors.update(entries.values())
        inodes: dict[int, _Inode] = {}
        for number in survivors:
            content = self._surviving_content(self._inodes[number], rng)
            inodes[number] = _Inode(bytearray(content), bytearray(content))
        self._inodes = inodes
        self._fds.clear()
        self._crash_at = None
        self.crashed = False
        self.operations = 0

    @staticmethod
    def _surviving_content(inode: _Inode, rng: random.Random) -> bytearray:
        content = bytearray(inode.durable)
        pending = inode.pending
        if not pending:
            return content
        mode = rng.choice(("none", "all", "torn prefix", "torn prefix", "reordered"))
        if mode == "none":
            return content
        if mode == "all":
            return bytearray(inode.current)
        if mode == "torn prefix":
            kept = rng.randint(0, len(pending))
            for kind, offset, data in pending[:kept]:
                if kind == "write":
                    _apply_write(content, offset, data)
                else:
                    _apply_truncate(content, offset)
            if kept < len(pending) and pending[kept][0] == "write":
                _, offset, data = pending[kept]
                pieces = _sectors(offset, data)
                for piece_offset, piece in pieces[: rng.randint(0, len(pieces))]:
                    _apply_write(content, piece_offset, piece)
            return content
        # Reordered: each sector of each pending write lands or not, independently.
        for kind, offset, data in pending:
            if kind == "truncate":
                _apply_truncate(content, offset)
                continue
            for piece_offset, piece in _sectors(offset, data):
                if rng.random() < 0.5:
                    _apply_write(content, piece_offset, piece)
        return content

    # --- inspection for tests ----------------------------------------------------------------

    def durable_names(self, path: Path) -> list[str]:
        """The entries of directory `path` that survive any crash."""
        return sorted(self._directories[str(path)].durable)

    def open_fd_count(self) -> int:
        return len(self._fds)

    # --- FileSystem ----------------------------------------------------------------------------

    def _directory(self, path: Path) -> _Directory:
        try:
            return self._directories[str(path)]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path)) from None

    def _file(self, fd: int) -> _OpenFile:
        try:
            return self._fds[fd]
        except KeyError:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF)) from None

    def _writable_inode(self, fd: int) -> tuple[_OpenFile, _Inode]:
        handle = self._file(fd)
        if handle.inode < 0 or not handle.writable:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return handle, self._inodes[handle.inode]

    def open(self, path: Path, flags: int, mode: int = 0o777, /) -> int:
        self._check_alive()
        path = Path(path)
        if flags & os.O_DIRECTORY:
            self._directory(path)
            fd = self._next_fd
            self._next_fd += 1
            self._fds[fd] = _OpenFile(-1, str(path), writable=False, append=False)
            return fd
        directory = self._directory(path.parent)
        if str(path) in self._directories:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        number = directory.current.get(path.name)
        if number is None:
            if not flags & os.O_CREAT:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
            self._step()
            number = self._next_inode
            self._next_inode += 1
            self._inodes[number] = _Inode()
            directory.current[path.name] = number
            directory.pending.append(("link", path.name, number, ""))
        access = flags & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
        writable = access in (os.O_WRONLY, os.O_RDWR)
        if flags & os.O_TRUNC and writable:
            self._step()
            inode = self._inodes[number]
            _apply_truncate(inode.current, 0)
            inode.pending.append(("truncate", 0, b""))
        fd = self._next_fd
        self._next_fd += 1
        self._fds[fd] = _OpenFile(
            number, str(path.parent), writable=writable, append=bool(flags & os.O_APPEND)
        )
        return fd

    def close(self, fd: int, /) -> None:
        self._fds.pop(fd, None)

    def write(self, fd: int, data: bytes | bytearray | memoryview, /) -> int:
        self._check_alive()
        handle, inode = self._writable_inode(fd)
        position = len(inode.current) if handle.append else handle.position
        self._step()
        payload = bytes(data)
        _apply_write(inode.current, position, payload)
        inode.pending.append(("write", position, payload))
        handle.position = position + len(payload)
        return len(payload)

    def pwrite(self, fd: int, data: bytes | bytearray | memoryview, offset: int, /) -> int:
        self._check_alive()
        _, inode = self._writable_inode(fd)
        self._step()
        payload = bytes(data)
        _apply_write(inode.current, offset, payload)
        inode.pending.append(("write", offset, payload))
        return len(payload)

    def pread(self, fd: int, size: int, offset: int, /) -> bytes:
        self._check_alive()
        handle = self._file(fd)
        if handle.inode < 0:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        return bytes(self._inodes[handle.inode].current[offset : offset + size])

    def fdatasync(self, fd: int, /) -> None:
        self._check_alive()
        handle = self._file(fd)
        self._step()
        if handle.inode < 0:
            directory = self._directories[handle.directory]
            directory.durable = dict(directory.current)
            directory.pending.clear()
            return
        inode = self._inodes[handle.inode]
        inode.durable = bytearray(inode.current)
        inode.pending.clear()

    fsync = fdatasync

    def ftruncate(self, fd: int, length: int, /) -> None:
        self._check_alive()
        _, inode = self._writable_inode(fd)
        self._step()
        _apply_truncate(inode.current, length)
        inode.pending.append(("truncate", length, b""))

    def file_size(self, fd: int) -> int:
        self._check_alive()
        handle = self._file(fd)
        if handle.inode < 0:
            return 0
        return len(self._inodes[handle.inode].current)

    def replace(self, source: Path, target: Path) -> None:
        self._check_alive()
        source, target = Path(source), Path(target)
        if source.parent != target.parent:
            raise OSError(errno.EXDEV, "the simulated disk renames within a directory only")
        directory = self._directory(source.parent)
        number = directory.current.get(source.name)
        if number is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(source))
        self._step()
        del directory.current[source.name]
        directory.current[target.name] = number
        directory.pending.append(("rename", source.name, number, target.name))

    def unlink(self, path: Path, *, missing_ok: bool = False) -> None:
        self._check_alive()
        path = Path(path)
        directory = self._directory(path.parent)
        if path.name not in directory.current:
            if missing_ok:
                return
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
        self._step()
        del directory.current[path.name]
        directory.pending.append(("unlink", path.name, 0, ""))

    def exists(self, path: Path) -> bool:
        self._check_alive()
        path = Path(path)
        if str(path) in self._directories:
            return True
        directory = self._directories.get(str(path.parent))
        return directory is not None and path.name in directory.current

    def listdir(self, path: Path) -> list[str]:
        self._check_alive()
        names = set(self._directory(Path(path)).current)
        names.update(
            Path(other).name for other in self._directories if str(Path(other).parent) == str(path)
        )
        names.discard("")
        return sorted(names)

    def mkdir(self, path: Path) -> None:
        self._check_alive()
        path = Path(path)
        for directory in (*reversed(path.parents), path):
            if str(directory) not in self._directories:
                self._step()
                self._directories[str(directory)] = _Directory()

    def fsync_directory(self, path: Path) -> None:
        self._check_alive()
        directory = self._directory(Path(path))
        self._step()
        directory.durable = dict(directory.current)
        directory.pending.clear()

    def rmtree(self, path: Path) -> None:
        self._check_alive()
        directory = self._directory(Path(path))
        for name in list(directory.current):
            self.unlink(Path(path) / name)

    # --- helpers for tests -------------------------------------------------------------------

    def read_bytes(self, path: Path) -> bytes:
        """The current content of `path` (what a process sees), without counting an operation."""
        directory = self._directory(Path(path).parent)
        number = directory.current.get(Path(path).name)
        if number is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
        return bytes(self._inodes[number].current)
