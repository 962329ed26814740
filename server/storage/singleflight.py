"""Concurrent requests for the same thing share one computation, which stops when nobody waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


@dataclass
class _Flight(Generic[T]):
    task: asyncio.Task[T]
    waiters: int = field(default=0)


class SingleFlight(Generic[T]):
    """At most one running task per key; every caller for that key awaits the same one.

    A flight whose callers have all left (cancelled) is cancelled too: work it has queued but
    not started never runs (a worker job already running finishes in its thread, its result
    unused), and the next caller for that key starts a new flight. A flight that ends is kept
    by ``make`` where it fills a cache."""

    def __init__(self) -> None:
        self._pending: dict[Hashable, _Flight[T]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    async def run(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        """The result of ``make()`` for ``key``, started now or already running."""
        flight = self._pending.get(key)
        if flight is None:
            flight = _Flight(asyncio.ensure_future(make()))
            self._pending[key] = flight
            flight.task.add_done_callback(lambda t, f=flight: self._ended(key, f))
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if not flight.waiters and not flight.task.done():  # nobody waits for it any more
                self._forget(key, flight)
                flight.task.cancel()

    def _ended(self, key: Hashable, flight: _Flight[T]) -> None:
        self._forget(key, flight)
        if not flight.task.cancelled():
            flight.task.exception()  # read: a failure nobody awaits is not logged as never retrieved

    def _forget(self, key: Hashable, flight: _Flight[T]) -> None:
        if self._pending.get(key) is flight:
            del self._pending[key]

    async def close(self) -> None:
        """Cancel the tasks still running (at shutdown)."""
        tasks = [flight.task for flight in self._pending.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
