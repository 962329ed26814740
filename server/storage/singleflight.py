"""Concurrent requests for the same thing share one computation, which finishes even if they all leave."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """At most one running task per key; every caller for that key awaits the same one."""

    def __init__(self) -> None:
        self._pending: dict[Hashable, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    async def run(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        """The result of ``make()`` for ``key``, started now or already running. The task is its own:
        it runs to the end (and ``make`` may fill a cache) even if every caller is cancelled."""
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(make())
            self._pending[key] = task
            # forget it once done; reading the exception keeps a failure nobody awaits from being logged
            task.add_done_callback(lambda t: (self._pending.pop(key, None), t.cancelled() or t.exception()))
        return await asyncio.shield(task)

    async def close(self) -> None:
        """Cancel the tasks still running (at shutdown)."""
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
