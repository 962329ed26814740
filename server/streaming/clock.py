"""The time source of the link schedule, injectable so that tests need no real sleeps."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "MonotonicClock", "FakeClock"]


@runtime_checkable
class Clock(Protocol):
    """Seconds on a monotonic scale, and a way to wait for a moment on it."""

    def now(self) -> float: ...

    async def sleep_until(self, t: float) -> None: ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class FakeClock:
    """A clock that jumps: ``sleep_until`` records the deadline and moves time to it at once.

    Every wait is logged in ``waits`` so that a test can check the schedule exactly.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.waits: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep_until(self, t: float) -> None:
        self.waits.append(t)
        self.t = max(self.t, t)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.t += seconds
