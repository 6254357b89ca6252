"""Wakes long-polling fetches when a partition they wait on gets new records."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from collections.abc import Iterable


class AppendSignal:
    def __init__(self) -> None:
        self._waiters: dict[Hashable, asyncio.Future[None]] = {}

    def notify(self, key: Hashable) -> None:
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_any(self, keys: Iterable[Hashable], timeout: float) -> None:
        """Return when any of `keys` is notified, or after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        futures = []
        for key in keys:
            waiter = self._waiters.get(key)
            if waiter is None or waiter.done():
                waiter = loop.create_future()
                self._waiters[key] = waiter
            futures.append(waiter)
        if not futures or timeout <= 0:
            return
        await asyncio.wait(futures, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
