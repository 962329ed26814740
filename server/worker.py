"""All CPU work (decoding, encoding, PNG, metrics) runs here, never on the event loop.

A fixed pool of threads; jobs wait for a free thread in *priority* order, so that the
first level of a newly started stream overtakes the fine levels of streams already
running (time to first level stays low under load). Torch's intra-op threads are capped
while the worker is open and restored when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

__all__ = ["Worker", "PrioritySlots"]

T = TypeVar("T")


class PrioritySlots:
    """A semaphore whose waiters are served lowest priority number first, FIFO within one."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for *_, f in self._waiters if not f.done())

    async def acquire(self, priority: int) -> None:
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # woken and cancelled at once: pass the slot on
                self.release()
            raise

    def release(self) -> None:
        while self._waiters:
            *_, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1


class Worker:
    """A thread pool with bounded concurrency and priorities."""

    def __init__(self, threads: int, torch_threads: int) -> None:
        self._previous_torch_threads = torch.get_num_threads()
        torch.set_num_threads(torch_threads)
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hidenet-worker")
        self._slots = PrioritySlots(threads)

    async def run(self, fn: Callable[..., T], *args: object, priority: int = 0,
                  ended: Callable[[], None] | None = None) -> T:
        """Run ``fn(*args)`` on a worker thread. Cancelling the caller does not stop a job
        already running, but its thread stays counted until the job ends. ``ended`` is called on
        the event loop once the job has ended (or at once if it never started): what the caller
        counted for the job is held exactly as long as its thread, however the caller ends."""
        loop = asyncio.get_running_loop()
        try:
            await self._slots.acquire(priority)
        except BaseException:
            if ended is not None:
                ended()
            raise
        try:
            cf: Future[T] = self._executor.submit(fn, *args)
        except BaseException:
            self._slots.release()
            if ended is not None:
                ended()
            raise

        def done(_: Future[T]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(self._slots.release)
                if ended is not None:
                    loop.call_soon_threadsafe(ended)

        cf.add_done_callback(done)
        return await asyncio.wrap_future(cf)

    @property
    def queued(self) -> int:
        return self._slots.waiting

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(self._previous_torch_threads)
