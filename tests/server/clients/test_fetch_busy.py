"""``hidenet fetch`` and a busy server: the wait a server asks for is bounded, and nonsense is ignored."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.server import serve

from hidenet_core.cli import CliError
from server.clients import fetch as fetch_module

pytestmark = pytest.mark.asyncio


async def _server(replies: list[dict], starts: list[float]):
    """A websocket server answering each ``start`` with the next of ``replies``."""

    async def handler(ws):
        async for message in ws:
            if json.loads(message).get("type") == "start":
                starts.append(asyncio.get_running_loop().time())
                await ws.send(json.dumps(replies[len(starts) - 1]))

    return await serve(handler, "127.0.0.1", 0)


@pytest.mark.parametrize("retry_ms", [10**12, -5, "soon", None])
async def test_a_busy_server_s_wait_is_bounded_and_nonsense_is_the_default(monkeypatch, retry_ms):
    monkeypatch.setattr(fetch_module, "BUSY_WAIT_MAX_S", 0.2)
    busy = {"type": "error", "code": "busy", "message": "server busy: test", "retry_ms": retry_ms}
    starts: list[float] = []
    waits: list[float] = []
    srv = await _server([busy, {"type": "error", "code": "not_found", "message": "gone"}], starts)
    port = srv.sockets[0].getsockname()[1]
    try:
        with pytest.raises(CliError, match="server: gone"):
            await fetch_module.fetch(f"http://127.0.0.1:{port}", "0" * 32, busy_retries=3,
                                     on_busy=lambda message, seconds, attempt: waits.append(seconds))
    finally:
        srv.close()
        await srv.wait_closed()
    assert len(starts) == 2 and waits == [0.2]  # the huge wait and the default 3 s, both cut to the bound
    assert starts[1] - starts[0] < 1.0
