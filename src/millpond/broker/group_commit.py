"""Group commit: one fdatasync round makes every append waiting at that moment durable.

A produce with acks=all appends, then awaits `sync(log)`. The first waiter starts a round; every
log dirtied before the round takes its snapshot rides along; waiters that arrive while a round
is in the worker thread wait for the next one. All the fds of a round go to the thread pool as a
single job, which measured faster than one job per file.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable

from millpond.storage.log import FlushJob
from millpond.storage.log import Log

logger = logging.getLogger(__name__)


class StorageError(Exception):
    """An fsync failed; what was appended may not be durable."""


def _fdatasync_all(fds: list[int]) -> None:
    for fd in fds:
        os.fdatasync(fd)


class GroupCommit:
    def __init__(self) -> None:
        self._dirty: set[Log] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._round: asyncio.Task[None] | None = None
        self.rounds = 0

    async def sync(self, logs: Iterable[Log]) -> None:
        """Return once everything appended to `logs` so far is on disk; raises StorageError."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._dirty.update(logs)
        self._waiters.append(waiter)
        if self._round is None:
            self._round = loop.create_task(self._run())
        await waiter

    async def wait_idle(self) -> None:
        """Wait until no round is running (logs may be closed only then)."""
        while self._round is not None:
            await asyncio.shield(self._round)

    async def flush_all(self, logs: Iterable[Log]) -> None:
        """Bound how long acks=0/1 data stays unsynced (log.flush.interval.ms)."""
        await self.sync(logs)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiters:
                dirty, waiters = self._dirty, self._waiters
                self._dirty, self._waiters = set(), []
                jobs: list[tuple[Log, FlushJob]] = []
                for log in dirty:
                    job = log.prepare_flush()
                    if job is not None:
                        jobs.append((log, job))
                error: BaseException | None = None
                if jobs:
                    fds = [fd for _log, job in jobs for fd in job.fds]
                    try:
                        await loop.run_in_executor(None, _fdatasync_all, fds)
                    except Exception as failure:
                        logger.error("fsync failed: %s", failure)
                        error = StorageError(str(failure))
                        for log, job in jobs:
                            log.abort_flush(job)
                    else:
                        for log, job in jobs:
                            log.complete_flush(job)
                    self.rounds += 1
                for waiter in waiters:
                    if waiter.done():
                        continue
                    if error is None:
                        waiter.set_result(None)
                    else:
                        waiter.set_exception(error)
        finally:
            self._round = None
