"""SingleFlight: callers of one key share one computation, which stops when they all leave."""

from __future__ import annotations

import asyncio

import pytest

from server.storage.singleflight import SingleFlight

pytestmark = pytest.mark.asyncio


class Work:
    """A computation the test finishes by hand, which records how it ended."""

    def __init__(self) -> None:
        self.started = 0
        self.finish = asyncio.Event()
        self.cancelled = 0

    async def __call__(self) -> str:
        self.started += 1
        try:
            await self.finish.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return f"result {self.started}"


async def test_concurrent_callers_share_one_computation():
    flights, work = SingleFlight[str](), Work()
    callers = [asyncio.create_task(flights.run("k", work)) for _ in range(3)]
    await asyncio.sleep(0)
    work.finish.set()
    assert await asyncio.gather(*callers) == ["result 1"] * 3 and work.started == 1 and len(flights) == 0


async def test_a_computation_everyone_left_is_cancelled_and_the_next_caller_starts_afresh():
    flights, work = SingleFlight[str](), Work()
    callers = [asyncio.create_task(flights.run("k", work)) for _ in range(2)]
    await asyncio.sleep(0)
    for caller in callers:
        caller.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    await asyncio.sleep(0)
    assert work.cancelled == 1 and len(flights) == 0
    work.finish.set()
    assert await flights.run("k", work) == "result 2"


async def test_a_computation_someone_still_waits_for_goes_on():
    flights, work = SingleFlight[str](), Work()
    leaving, staying = (asyncio.create_task(flights.run("k", work)) for _ in range(2))
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.gather(leaving, return_exceptions=True)
    work.finish.set()
    assert await staying == "result 1" and work.cancelled == 0


async def test_close_cancels_what_is_still_running():
    flights, work = SingleFlight[str](), Work()
    caller = asyncio.create_task(flights.run("k", work))
    while not work.started:
        await asyncio.sleep(0)
    await flights.close()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert work.cancelled == 1
