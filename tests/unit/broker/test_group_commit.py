"""Group commit with real fsyncs: one round for many waiters, fail-stop on a failed fsync."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from millpond.broker.group_commit import GroupCommit
from millpond.broker.group_commit import StorageError
from millpond.clock import FakeClock
from millpond.storage.log import FlushJob
from millpond.storage.log import Log
from millpond.storage.log import LogConfig
from tests.support.batches import build_batch
from tests.support.batches import concat


def open_log(path: Path) -> Log:
    return Log.open(path, LogConfig(), FakeClock(), clean_shutdown=True)


def append(log: Log) -> None:
    records, headers = concat(build_batch([b"x"]))
    log.append(records, headers)


class BrokenDisk:
    """Wraps a log so its flush job names an fd whose fdatasync fails (EBADF, a real OSError)."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.directory = log.directory
        read, write = os.pipe()
        os.close(write)
        os.close(read)
        self.dead_fd = read
        self.aborted = 0

    def prepare_flush(self) -> FlushJob | None:
        job = self.log.prepare_flush()
        assert job is not None
        return FlushJob(
            (*job.fds, self.dead_fd), job.end_offset, job.sequence, job.segments,
            job.syncs_directory,
        )  # fmt: skip

    def abort_flush(self, job: FlushJob) -> None:
        self.aborted += 1
        self.log.abort_flush(job)

    def complete_flush(self, job: FlushJob) -> None:  # pragma: no cover - must not happen
        raise AssertionError("a failed fsync must never complete")


def test_many_waiters_share_rounds(tmp_path: Path) -> None:
    async def scenario() -> None:
        commit = GroupCommit()
        logs = [open_log(tmp_path / f"p{n}") for n in range(4)]
        for log in logs:
            append(log)
        await asyncio.gather(*(commit.sync([log]) for log in logs for _ in range(10)))
        assert commit.rounds <= 2
        assert all(log.recovery_point == log.log_end_offset for log in logs)
        for log in logs:
            log.close()

    asyncio.run(scenario())


def test_a_failed_fsync_is_fail_stop_for_that_log_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        commit = GroupCommit()
        healthy = open_log(tmp_path / "healthy")
        sick_log = open_log(tmp_path / "sick")
        sick: Any = BrokenDisk(sick_log)
        append(healthy)
        append(sick_log)
        results = await asyncio.gather(
            commit.sync([healthy]), commit.sync([sick]), return_exceptions=True
        )
        assert results[0] is None
        assert isinstance(results[1], StorageError)
        assert "fsync of" in str(results[1])
        assert sick.aborted == 1
        assert sick_log.recovery_point < sick_log.log_end_offset, "never counted as durable"
        with pytest.raises(StorageError):
            commit.check_writable(sick)
        with pytest.raises(StorageError):
            await commit.sync([sick])  # no retried fsync
        append(healthy)
        await commit.sync([healthy])
        await commit.flush_all([healthy, sick])  # the periodic flush skips the failed log
        assert sick.aborted == 1
        healthy.close()
        sick_log.close()

    asyncio.run(scenario())
