"""One stream: the levels of an image released on the link schedule, and the race.

t = 0 is the moment the server sends ``meta`` (the stream is encoded or read from the
cache before that). Level i is released at ``t0 + arrival_ms(link, end of its chunk)``,
then decoded in the worker and sent as a JSON message followed by its PNG frame. The
race sends each progressive-JPEG scan at its own arrival time on the same link.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

from aiohttp import web

from hidenet_core import EncodeSettings, ProgressiveDecoder, encode, level_shapes
from hidenet_core.codec.container import StreamLayout

from ..keys import CACHE, CLOCK, CONFIG, FRAMES, MODEL, MODEL_HASH, RACES, STATS, STORE, WORKER
from ..storage.cache import StreamKey
from ..storage.store import ImageInfo, ImageStore
from .frames import Frame, FrameCache, finite, render_frame
from .links import arrival_ms
from .protocol import StartRequest
from .race import RaceTimeline, build_race

__all__ = ["Sender", "LevelFrames", "run_stream", "stream_key", "load_stream"]

log = logging.getLogger(__name__)

@dataclass
class Sender:
    """Sends on one websocket; a JSON message and its frame always go out back to back."""

    ws: web.WebSocketResponse
    json_bytes: int = 0
    frame_bytes: int = 0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def json(self, message: dict) -> None:
        text = json.dumps(message, separators=(",", ":"))
        async with self._lock:
            await self.ws.send_str(text)
        self.json_bytes += len(text)

    async def pair(self, message: dict, frame: bytes) -> None:
        text = json.dumps(message, separators=(",", ":"))
        async with self._lock:
            await self.ws.send_str(text)
            await self.ws.send_bytes(frame)
        self.json_bytes += len(text)
        self.frame_bytes += len(frame)


def stream_key(app: web.Application, image_id: str, max_error: int, generative_levels: int) -> StreamKey:
    return StreamKey(image_id, app[MODEL_HASH], max_error, generative_levels)


async def load_stream(app: web.Application, info: ImageInfo, key: StreamKey) -> tuple[bytes, StreamLayout]:
    """The encoded stream from the cache, encoding it (once) if needed."""
    worker, store, model, stats = app[WORKER], app[STORE], app[MODEL], app[STATS]

    def make() -> bytes:
        return encode(store.pixels(info.id), model, EncodeSettings(key.max_error, key.generative_levels))

    def count(event: str) -> None:
        attr = {"hit": "cache_hits", "miss": "cache_misses", "corrupt": "cache_corrupt"}[event]
        setattr(stats, attr, getattr(stats, attr) + 1)

    return await app[CACHE].get(key, lambda fn, *a: worker.run(fn, *a), make, count)


class LevelFrames:
    """The frames of one stream, decoding chunks only when a frame is not cached.

    Decoding is deterministic and checked by CRC, so a level's frame is the same for
    every stream of the same (image, mode); concurrent viewers of a cached image share
    the frames the first one decoded. When a frame is missing (first view, or evicted),
    the decoder catches up on every chunk received so far and renders it.
    """

    def __init__(self, model, store: ImageStore, info: ImageInfo, frames: FrameCache, key: StreamKey, preview: bool):
        self._decoder = ProgressiveDecoder(model)
        self._pending = bytearray()
        self._store, self._info, self._frames, self._key, self._preview = store, info, frames, key, preview

    def next(self, piece: bytes, level: int) -> tuple[Frame, bool]:
        """Blocking (worker): the frame of ``level`` whose chunk is ``piece``; and whether it was shared."""
        self._pending += piece
        frame = self._frames.get(self._key, level, self._preview)
        if frame is not None:
            return frame, True
        decoded = self._decoder.feed(bytes(self._pending))
        self._pending.clear()
        assert decoded and decoded[-1].level == level, f"chunk for level {level} decoded to {decoded}"
        frame = render_frame(self._decoder, decoded[-1], self._store.pixels(self._info.id), self._preview)
        self._frames.put(self._key, level, self._preview, frame)
        return frame, False


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


async def run_stream(app: web.Application, send: Sender, req: StartRequest, info: ImageInfo) -> None:
    """Stream one image; returns after ``done``. Cancel the task to stop it."""
    clock, worker, store, stats, frames = app[CLOCK], app[WORKER], app[STORE], app[STATS], app[FRAMES]
    key = stream_key(app, info.id, req.max_error, req.generative_levels)
    data, layout = await load_stream(app, info, key)
    header = layout.header
    plan = [
        {"level": c.level, "payload_bytes": c.payload_bytes, "total_bytes": c.end,
         "arrival_ms": round(arrival_ms(req.link, c.end), 3)}
        for c in layout.chunks
    ]
    t0 = clock.now()
    await send.json({
        "type": "meta", "image": info.to_json(), "width": header.width, "height": header.height,
        "channels": header.channels, "mode": header.mode, "levels": len(layout.chunks), "base_level": header.levels,
        "max_error": req.max_error, "generative_levels": req.generative_levels, "preview": req.preview,
        "race": req.race, "link": req.link.to_json(), "model": header.model_name,
        "header_bytes": layout.header_bytes, "payload_bytes": layout.payload_bytes,
        "total_bytes": layout.total_bytes, "schedule": plan,
    })
    race = asyncio.create_task(_run_race(app, send, req, info, t0)) if req.race else None
    try:
        source = LevelFrames(app[MODEL], store, info, frames, key, req.preview)
        shapes = level_shapes(header.height, header.width, header.levels)
        level_frame_bytes, start = 0, 0
        for i, chunk in enumerate(layout.chunks):
            arrival = arrival_ms(req.link, chunk.end)
            await clock.sleep_until(t0 + arrival / 1000)
            frame, shared = await worker.run(source.next, data[start : chunk.end], chunk.level, priority=i)
            stats.frame_hits += shared
            stats.frame_misses += not shared
            start = chunk.end
            h, w = shapes[chunk.level]
            level_frame_bytes += len(frame.png)
            await send.pair({
                "type": "level", "level": chunk.level, "width": w, "height": h,
                "payload_bytes": chunk.payload_bytes, "total_bytes": chunk.end,
                "arrival_ms": round(arrival, 3), "decode_ms": round(frame.decode_ms, 3), "shared": shared,
                "psnr": frame.psnr, "ssim": frame.ssim,
                "frame_bytes": len(frame.png), "frame_width": frame.width, "frame_height": frame.height,
                "sent_ms": _ms(clock.now() - t0), "index": i, "levels": len(layout.chunks),
            }, frame.png)
        race_summary = await race if race is not None else None
        await send.json({
            "type": "done", "levels": len(layout.chunks), "payload_bytes": layout.payload_bytes,
            "total_bytes": layout.total_bytes, "arrival_ms": round(arrival_ms(req.link, layout.total_bytes), 3),
            "elapsed_ms": _ms(clock.now() - t0), "frame_bytes": level_frame_bytes,
            "json_bytes": send.json_bytes, "race": race_summary,
        })
    finally:
        if race is not None and not race.done():
            race.cancel()
            await asyncio.gather(race, return_exceptions=True)


async def _run_race(app: web.Application, send: Sender, req: StartRequest, info: ImageInfo, t0: float) -> dict:
    clock, worker, store, quality = app[CLOCK], app[WORKER], app[STORE], app[CONFIG].race_quality

    async def build() -> RaceTimeline:
        pixels = await worker.run(store.pixels, info.id, priority=8)
        return await worker.run(build_race, pixels, quality, priority=8)

    timeline = await app[RACES].get(info.id, quality, build)
    frame_bytes = 0
    for f in timeline.frames:
        arrival = arrival_ms(req.link, f.bytes)
        await clock.sleep_until(t0 + arrival / 1000)
        frame_bytes += len(f.png)
        await send.pair({
            "type": "race", "scan": f.scan, "scans": len(timeline.frames), "bytes": f.bytes,
            "total_bytes": timeline.jpeg_bytes, "arrival_ms": round(arrival, 3),
            "psnr": finite(f.psnr), "ssim": round(f.ssim, 5), "frame_bytes": len(f.png),
            "sent_ms": _ms(clock.now() - t0),
        }, f.png)
    return {
        "scans": len(timeline.frames), "bytes": timeline.jpeg_bytes,
        "arrival_ms": round(arrival_ms(req.link, timeline.jpeg_bytes), 3), "frame_bytes": frame_bytes,
    }
