"""The file-system seam: every byte storage/ reads or writes goes through a `FileSystem`.

Production uses `RealFileSystem`, whose hot-path methods (pwrite, write, pread, fdatasync,
fsync) are the os functions themselves, so the seam costs one attribute lookup. Tests pass
a simulated disk (tests/support/simulated_disk.py) that keeps unsynced writes apart and can
drop, tear or reorder them at a chosen crash point.

The interface is fd-based like os: files are opened with `open(path, flags, mode)` (os.O_*
flags; storage uses O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND, O_DIRECTORY) and
written with `pwrite` (at an offset) or `write` (at the end, for O_APPEND files). A directory
opened with O_DIRECTORY may be passed to `fsync`/`fdatasync` to make its entries (creations,
renames, deletions) durable. Errors are OSError as from os (FileNotFoundError for a missing
name).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Protocol


class FileSystem(Protocol):
    """What storage/ needs of a file system."""

    def open(self, path: Path, flags: int, mode: int = 0o777, /) -> int:
        """An fd for `path` opened with os.O_* `flags` (os.open)."""
        ...

    def close(self, fd: int, /) -> None: ...

    def write(self, fd: int, data: bytes | bytearray | memoryview, /) -> int:
        """Write at the fd's position (the end, for O_APPEND); returns bytes written."""
        ...

    def pwrite(self, fd: int, data: bytes | bytearray | memoryview, offset: int, /) -> int:
        """Write at `offset`; returns bytes written (possibly fewer than asked)."""
        ...

    def pread(self, fd: int, size: int, offset: int, /) -> bytes:
        """Up to `size` bytes from `offset` (fewer at the end of the file)."""
        ...

    def fdatasync(self, fd: int, /) -> None: ...

    def fsync(self, fd: int, /) -> None: ...

    def ftruncate(self, fd: int, length: int, /) -> None: ...

    def file_size(self, fd: int) -> int:
        """The size of the open file."""
        ...

    def replace(self, source: Path, target: Path) -> None:
        """Rename `source` over `target` atomically (os.replace)."""

    def unlink(self, path: Path, *, missing_ok: bool = False) -> None: ...

    def exists(self, path: Path) -> bool: ...

    def listdir(self, path: Path) -> list[str]:
        """The names in directory `path`."""
        ...

    def mkdir(self, path: Path) -> None:
        """Create `path` and missing parents; no error if it exists."""

    def fsync_directory(self, path: Path) -> None:
        """Make the directory's entries (creations, renames, deletions) durable."""

    def rmtree(self, path: Path) -> None:
        """Remove a directory and everything under it."""


class RealFileSystem:
    """The operating system's file system (what production uses)."""

    # Plain aliases: no wrapper call on the append, read and flush paths.
    open = staticmethod(os.open)
    close = staticmethod(os.close)
    write = staticmethod(os.write)
    pwrite = staticmethod(os.pwrite)
    pread = staticmethod(os.pread)
    fdatasync = staticmethod(os.fdatasync)
    fsync = staticmethod(os.fsync)
    ftruncate = staticmethod(os.ftruncate)

    def file_size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    # Through pathlib, which looks os.replace and os.unlink up at call time, so a test
    # wrapping them still sees the calls.
    def replace(self, source: Path, target: Path) -> None:
        source.replace(target)

    def unlink(self, path: Path, *, missing_ok: bool = False) -> None:
        path.unlink(missing_ok=missing_ok)

    def exists(self, path: Path) -> bool:
        return path.exists()

    def listdir(self, path: Path) -> list[str]:
        return [entry.name for entry in path.iterdir()]

    def mkdir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)

    def fsync_directory(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rmtree(self, path: Path) -> None:
        shutil.rmtree(path)


# Stateless, so one instance serves as every default argument.
REAL_FILE_SYSTEM = RealFileSystem()
