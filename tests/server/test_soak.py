"""Soak: many rapid start/cancel cycles against a real server process leave nothing counted."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import numpy as np
import pytest

from hidenet_core import load_image, sample_paths
from server.clients.loadtest import stream_once
from server.clients.process import start_server, stop_server
from server.storage.store import image_id
from tests.server.conftest import frame_pixels

pytestmark = pytest.mark.slow

SOCKETS, CYCLES = 10, 20  # 200 start/cancel cycles


async def churn(session: aiohttp.ClientSession, url: str, iid: str) -> int:
    """CYCLES starts, each cancelled at once, on one socket; returns the 'cancelled' answers."""
    async with session.ws_connect(url.replace("http", "ws") + "/ws") as ws:
        for _ in range(CYCLES):
            await ws.send_json({"type": "start", "image": iid, "link": "2g"})
            await ws.send_json({"type": "cancel"})
        cancelled = 0
        while cancelled < CYCLES:
            msg = await asyncio.wait_for(ws.receive(), 30)
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                assert data["type"] in ("progress", "meta", "cancelled"), data
                cancelled += data["type"] == "cancelled"
        return cancelled


async def stats(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(f"{url}/api/stats") as resp:
        return await resp.json()


def test_200_rapid_start_cancel_cycles_leave_no_stream_running(tmp_path):
    sample = sample_paths()[0]
    original = load_image(sample).pixels
    # one client with a stream on each of its sockets: its per-client stream cap raised to that
    server = start_server(tmp_path, "interp", extra=["--images", str(sample.parent),
                                                     "--max-client-streams", str(SOCKETS)])

    async def scenario() -> None:
        iid = image_id(original)
        async with aiohttp.ClientSession() as session:
            answers = await asyncio.gather(*(churn(session, server.url, iid) for _ in range(SOCKETS)))
            assert answers == [CYCLES] * SOCKETS
            deadline = time.monotonic() + 10
            while (s := await stats(session, server.url))["sockets"] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert (s["streams_running"], s["sockets"], s["streams_refused"], s["clients"]) == (0, 0, 0, 0), s
            assert s["streams_started"] == SOCKETS * CYCLES == s["streams_cancelled"] + s["streams_completed"]
            levels: list = []
            fresh = await stream_once(session, server.url, iid, preview=False, on_frame=levels.append)
            assert fresh["error"] is None and fresh["levels"] == fresh["chunks"] > 5
            assert np.array_equal(frame_pixels(levels[-1]), original)

    try:
        asyncio.run(scenario())
    finally:
        assert stop_server(server) == 0
    assert "Traceback" not in server.log_tail(100_000)
