"""Server fixtures: a small image set, the fast ``interp`` model, a fake clock, a client."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from aiohttp import WSMsgType
from PIL import Image

from server import ServerConfig, create_app
from server.storage.store import image_id
from server.streaming.clock import FakeClock
from tests.conftest import smooth_image


class HoldClock(FakeClock):
    """A fake clock whose waits block until the test calls ``release()``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def sleep_until(self, t: float) -> None:
        self.waits.append(t)
        await self.gate.wait()
        self.t = max(self.t, t)

    def release(self) -> None:
        self.gate.set()


def png_of(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def rgb() -> np.ndarray:
    return smooth_image(40, 56, 3, seed=1)


@pytest.fixture
def grey() -> np.ndarray:
    return smooth_image(33, 21, 1, seed=2)


@pytest.fixture
def images_dir(tmp_path: Path, rgb: np.ndarray, grey: np.ndarray) -> Path:
    d = tmp_path / "images"
    d.mkdir()
    (d / "colour.png").write_bytes(png_of(rgb))
    (d / "grey.png").write_bytes(png_of(grey))
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.fixture
def rgb_id(rgb) -> str:
    return image_id(rgb)


@pytest.fixture
def config(tmp_path: Path, images_dir: Path) -> ServerConfig:
    return ServerConfig(model="interp", data_dir=tmp_path / "data", images_dir=images_dir, workers=1, heartbeat_s=5)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def client(aiohttp_client, config, clock):
    return await aiohttp_client(create_app(config, clock=clock))


async def receive_stream(ws, until: str = "done", timeout: float = 30) -> list:
    """Messages up to and including ``until``: JSON as dicts, frames as bytes."""
    out: list = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), timeout)
        if msg.type == WSMsgType.TEXT:
            out.append(json.loads(msg.data))
            if out[-1]["type"] in (until, "error") and until != "never":
                return out
        elif msg.type == WSMsgType.BINARY:
            out.append(msg.data)
        else:
            out.append(msg)
            return out


async def receive_meta(ws, timeout: float = 30) -> dict:
    """The next message that is not ``progress`` (``meta``, unless something went wrong)."""
    while True:
        msg = await asyncio.wait_for(ws.receive_json(), timeout)
        if msg["type"] != "progress":
            return msg


def frame_pixels(png: bytes) -> np.ndarray:
    arr = np.asarray(Image.open(io.BytesIO(png)))
    return arr[:, :, None] if arr.ndim == 2 else arr


class SlowDisk:
    """A data directory on a slow (network) file system, for the upload spool: each write of a spool
    file waits until ``release`` is set (at most 5 s, then ``timed_out`` is set); ``entered`` is set
    once a write waits; ``closed_under_write``: the file was closed while a write waited.
    Patches ``server.storage.spool``'s ``tempfile.TemporaryFile``."""

    def __init__(self, monkeypatch) -> None:
        from server.storage import spool

        self.entered, self.release = threading.Event(), threading.Event()
        self.timed_out = self.closed_under_write = False
        real, disk = spool.tempfile.TemporaryFile, self

        class File:
            def __init__(self, *args, **kwargs) -> None:
                self._file = real(*args, **kwargs)

            def write(self, data) -> int:
                disk.entered.set()
                if not disk.release.wait(5):
                    disk.timed_out = True
                disk.closed_under_write |= self._file.closed
                return self._file.write(data)

            def __getattr__(self, name):
                return getattr(self._file, name)

        monkeypatch.setattr(spool.tempfile, "TemporaryFile", File)

    async def wait_entered(self, timeout: float = 10) -> None:
        for _ in range(int(timeout / 0.01)):
            if self.entered.is_set():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("no spool write began")
