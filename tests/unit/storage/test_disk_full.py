"""ENOSPC mid-append: the partial write is cut, the error surfaces, reads and later writes work."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from millpond.clock import FakeClock
from millpond.storage.fs import RealFileSystem
from millpond.storage.log import Log
from millpond.storage.log import LogConfig
from tests.support.batches import build_batch
from tests.support.batches import concat
from tests.support.batches import headers_of


class FillingDisk(RealFileSystem):
    """The real file system, except that while `full` a pwrite lands 10 bytes, then fails."""

    def __init__(self) -> None:
        self.full = False

    def pwrite(self, fd: int, data: bytes | memoryview, position: int) -> int:  # type: ignore[override]
        if self.full and len(data) > 10:
            os.pwrite(fd, bytes(data[:10]), position)
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.pwrite(fd, data, position)


def append(log: Log, value: bytes) -> int:
    records, headers = concat(build_batch([value]))
    return log.append(records, headers).base_offset


def test_a_full_disk_refuses_the_append_and_leaves_the_log_whole(tmp_path: Path) -> None:
    disk = FillingDisk()
    log = Log.open(tmp_path / "p", LogConfig(), FakeClock(), clean_shutdown=True, fs=disk)
    assert append(log, b"first") == 0
    size = log.size_in_bytes
    disk.full = True
    with pytest.raises(OSError) as raised:
        append(log, b"second" * 100)
    assert raised.value.errno == errno.ENOSPC
    assert log.log_end_offset == 1 and log.size_in_bytes == size
    segment = next((tmp_path / "p").glob("*.log"))
    assert segment.stat().st_size == size, "the torn part was cut"
    assert [h.base_offset for h in headers_of(log.read(0, 1 << 20))] == [0]
    disk.full = False
    assert append(log, b"third") == 1, "writes resume once space returns"
    log.close()
    reopened = Log.open(tmp_path / "p", LogConfig(), FakeClock(), clean_shutdown=True)
    assert [h.base_offset for h in headers_of(reopened.read(0, 1 << 20))] == [0, 1]
    reopened.close()
