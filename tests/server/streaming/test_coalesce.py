"""A viewer's frames keep up with its chunks: frames that would be shown late are skipped."""

from __future__ import annotations

import numpy as np
import pytest

from server.streaming import stream as stream_module
from server.streaming.stream import LATE_TOLERANCE_MS, newest_due, render_horizon
from tests.server.conftest import frame_pixels, receive_stream


def test_the_newest_chunk_due_by_the_horizon_is_rendered_next():
    due = [100.0, 110.0, 120.0, 900.0, 905.0]
    assert newest_due(due.__getitem__, 0, 5, 115.0) == 1
    assert newest_due(due.__getitem__, 0, 5, 50.0) == 0  # nothing after the first is due: render it
    assert newest_due(due.__getitem__, 0, 3, 5000.0) == 2  # only chunks already made count
    assert newest_due(due.__getitem__, 3, 5, 1000.0) == 4


def test_fast_renders_skip_nothing_unless_far_behind_and_slow_ones_look_a_render_ahead():
    assert render_horizon(1000.0, 10.0) == 1000.0 + 20.0 - LATE_TOLERANCE_MS < 1000.0
    assert render_horizon(1000.0, 400.0) == 1000.0 + 800.0 - LATE_TOLERANCE_MS


@pytest.fixture
def slow_renders(monkeypatch, clock):
    """Every frame takes a second to render on the stream's (fake) clock."""
    real = stream_module.LevelFrames.next

    def next_frame(self, piece, index):
        clock.advance(1.0)
        return real(self, piece, index)

    monkeypatch.setattr(stream_module.LevelFrames, "next", next_frame)


def _messages(messages: list) -> tuple[list[dict], list[tuple[dict, bytes]]]:
    """Every chunk's message in order, and the (level, frame) pairs; each frame follows its level message."""
    chunks, frames = [], []
    for i, m in enumerate(messages):
        if isinstance(m, dict) and m["type"] in ("level", "chunk"):
            chunks.append(m)
            if m["type"] == "level":
                assert isinstance(messages[i + 1], bytes)
                frames.append((m, messages[i + 1]))
            else:
                assert not isinstance(messages[i + 1], bytes), "a skipped chunk has no frame"
    return chunks, frames


@pytest.mark.asyncio
async def test_a_viewer_behind_its_chunks_gets_the_newest_frame_and_every_chunk_once(client, slow_renders, rgb,
                                                                                     rgb_id):
    assert await (await client.get(f"/api/images/{rgb_id}/stream.hdn")).read()  # cached: every chunk made at once
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "start", "image": rgb_id, "link": "3g", "frame": {"width": 640, "height": 480}})
    messages = await receive_stream(ws)
    done = messages[-1]
    chunks, frames = _messages(messages)
    assert [m["index"] for m in chunks] == list(range(done["chunks"]))  # every chunk, once, in order
    skipped = [m for m in chunks if m["type"] == "chunk"]
    assert skipped, "renders of a second each, chunks milliseconds apart: frames were skipped"
    shown = {m["index"] for m, _ in frames}
    for m in skipped:  # each is shown by a later chunk's frame
        assert m["superseded_by"] > m["index"] and m["superseded_by"] in shown
        assert m["sent_ms"] >= m["arrival_ms"] and "psnr" not in m
    assert chunks[-1]["type"] == "level" and np.array_equal(frame_pixels(frames[-1][1]), rgb)
    await ws.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("fields", [
    {"frame": "full", "link": "3g"},
    {"frame": {"width": 640, "height": 480}, "link": "unlimited"},
    {"frame": {"width": 30, "height": 20}, "link": "3g", "contenders": ["pjpeg"]},  # the verdict reads every chunk
])
async def test_full_frames_races_and_the_unlimited_link_get_every_frame_however_slow(client, slow_renders, rgb_id,
                                                                                     fields):
    assert await (await client.get(f"/api/images/{rgb_id}/stream.hdn")).read()
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "start", "image": rgb_id, **fields})
    messages = await receive_stream(ws)
    chunks, frames = _messages(messages)
    assert len(frames) == len(chunks) == messages[-1]["chunks"]
    if "contenders" in fields:
        assert all(m["frame_width"] <= 30 for m, _ in frames)
    await ws.close()
