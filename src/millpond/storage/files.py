"""Small durable-file helpers shared by the storage modules.

`atomic_write` replaces a file so that a crash leaves either the old or the new content:
write a sibling `<name>.tmp`, fsync it (when `sync`), rename it over the target, fsync the
directory (when `sync`). Unsynced, the rename is still atomic but may be lost or torn by a
power cut, which readers must detect (a CRC) or tolerate.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_directory(path: Path) -> None:
    """Make the directory's entries (creations, renames, deletions) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Replace `path` with `data` atomically; raises OSError."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as file:
        file.write(data)
        if sync:
            file.flush()
            os.fsync(file.fileno())
    temporary.replace(path)
    if sync:
        fsync_directory(path.parent)
