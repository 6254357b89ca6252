"""Small durable-file helpers shared by the storage modules, on top of a `FileSystem`.

`atomic_write` replaces a file so that a crash leaves either the old or the new content:
write a sibling `<name>.tmp`, fsync it (when `sync`), rename it over the target, fsync the
directory (when `sync`). Unsynced, the rename is still atomic but may be lost or torn by a
power cut, which readers must detect (a CRC) or tolerate.
"""

from __future__ import annotations

import os
from pathlib import Path

from millpond.storage.fs import REAL_FILE_SYSTEM
from millpond.storage.fs import FileSystem


def fsync_directory(path: Path, fs: FileSystem = REAL_FILE_SYSTEM) -> None:
    """Make the directory's entries (creations, renames, deletions) durable."""
    fs.fsync_directory(path)


def read_file(path: Path, fs: FileSystem = REAL_FILE_SYSTEM) -> bytes:
    """The whole content of `path`; raises OSError (FileNotFoundError if missing)."""
    fd = fs.open(path, os.O_RDONLY)
    try:
        size = fs.file_size(fd)
        return fs.pread(fd, size, 0) if size else b""
    finally:
        fs.close(fd)


def write_all(fs: FileSystem, fd: int, data: bytes | bytearray | memoryview, position: int) -> None:
    """pwrite all of `data` at `position`, however many calls it takes."""
    view = memoryview(data)
    while view:
        written = fs.pwrite(fd, view, position)
        view = view[written:]
        position += written


def atomic_write(
    path: Path, data: bytes, *, sync: bool = True, fs: FileSystem = REAL_FILE_SYSTEM
) -> None:
    """Replace `path` with `data` atomically; raises OSError."""
    temporary = path.with_name(path.name + ".tmp")
    fd = fs.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        write_all(fs, fd, data, 0)
        if sync:
            fs.fsync(fd)
    finally:
        fs.close(fd)
    fs.replace(temporary, path)
    if sync:
        fs.fsync_directory(path.parent)
