"""The worker: priority order, bounded concurrency, torch threads restored."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from server.worker import PrioritySlots, Worker

pytestmark = pytest.mark.asyncio


async def test_waiters_are_served_by_priority_then_order():
    slots = PrioritySlots(1)
    await slots.acquire(0)
    order = []

    async def job(priority, name):
        await slots.acquire(priority)
        order.append(name)
        slots.release()

    tasks = [asyncio.create_task(job(p, n)) for p, n in [(3, "late-3"), (0, "first-0"), (3, "later-3"), (1, "one")]]
    await asyncio.sleep(0)
    slots.release()
    await asyncio.gather(*tasks)
    assert order == ["first-0", "one", "late-3", "later-3"]


async def test_a_cancelled_waiter_does_not_leak_its_slot():
    slots = PrioritySlots(1)
    await slots.acquire(0)
    waiter = asyncio.create_task(slots.acquire(0))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    slots.release()
    await asyncio.wait_for(slots.acquire(0), 1)


async def test_worker_runs_off_the_loop_with_bounded_concurrency():
    before = torch.get_num_threads()
    worker = Worker(2, 1)
    assert torch.get_num_threads() == 1
    running, peak, lock = 0, 0, threading.Lock()

    def job():
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        threading.Event().wait(0.02)
        with lock:
            running -= 1
        return threading.get_ident()

    idents = await asyncio.gather(*(worker.run(job) for _ in range(8)))
    worker.close()
    assert peak <= 2 and threading.get_ident() not in idents
    assert torch.get_num_threads() == before


async def test_ended_runs_when_the_job_ends_not_when_its_caller_is_cancelled():
    """What a caller counts for a job (a region decode) must stay counted while the job's thread
    still works: a cancelled caller's count dropped at once, and a client could run many."""
    worker = Worker(threads=1, torch_threads=1)
    release, started, ended = threading.Event(), threading.Event(), []
    try:
        def job():
            started.set()
            release.wait(10)

        task = asyncio.create_task(worker.run(job, ended=lambda: ended.append("job")))
        await asyncio.to_thread(started.wait, 10)
        waiting = asyncio.create_task(worker.run(lambda: None, ended=lambda: ended.append("waiting")))
        await asyncio.sleep(0.05)
        task.cancel()
        waiting.cancel()  # never started: ended at once
        await asyncio.gather(task, waiting, return_exceptions=True)
        assert ended == ["waiting"]
        release.set()
        for _ in range(200):
            if "job" in ended:
                break
            await asyncio.sleep(0.01)
        assert ended == ["waiting", "job"]
    finally:
        release.set()
        worker.close()
