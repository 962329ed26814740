"""One stream: the levels of an image released on the link schedule, and the race.

t = 0 is the moment the server sends ``meta``. Before it, the stream is read from the
cache or encoded, and each contender of the race prepared (``progress`` messages say
so). Level i is released at ``t0 + arrival_ms(link, end of its chunk)``, then decoded
in the worker and sent as a JSON message followed by its PNG frame. Each contender
(``race.Racer``) sends its repaints at their own arrival times on the same link, and
``done`` carries the verdict, computed from the same events the viewer's chart draws.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from hidenet_core import EncodeSettings, ProgressiveDecoder, encode, level_shapes
from hidenet_core.codec.container import StreamLayout
from hidenet_core.tools.contenders import Event, verdict
from hidenet_core.tools.contenders import Racer as VerdictRacer

from ..keys import CACHE, CLOCK, FRAMES, MODEL, MODEL_HASH, RACES, STATS, STORE, WORKER
from ..storage.cache import StreamKey
from ..storage.store import ImageInfo, ImageStore
from .clock import Clock
from .frames import Frame, FrameCache, render_frame
from .links import arrival_ms
from .protocol import StartRequest
from .race import Racer

__all__ = ["Sender", "Progress", "LevelFrames", "run_stream", "stream_key", "load_stream"]

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


#: the format the server streams in (the resolution-only version until the streaming path sends layers)
STREAM_VERSION = 5


def stream_key(app: web.Application, image_id: str, max_error: int, generative_levels: int) -> StreamKey:
    return StreamKey(image_id, app[MODEL_HASH], max_error, generative_levels, STREAM_VERSION)


async def load_stream(app: web.Application, info: ImageInfo, key: StreamKey,
                      on_miss: Callable[[], None] = lambda: None) -> tuple[bytes, StreamLayout]:
    """The encoded stream from the cache, encoding it (once) if needed (``on_miss`` hears that)."""
    worker, store, model, stats = app[WORKER], app[STORE], app[MODEL], app[STATS]

    def make() -> bytes:
        return encode(store.pixels(info.id), model,
                      EncodeSettings(key.max_error, key.generative_levels, version=key.version))

    def count(event: str) -> None:
        attr = {"hit": "cache_hits", "miss": "cache_misses", "corrupt": "cache_corrupt"}[event]
        setattr(stats, attr, getattr(stats, attr) + 1)
        if event == "miss":
            on_miss()

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

    def next(self, piece: bytes, index: int) -> tuple[Frame, bool]:
        """Blocking (worker): the frame after chunk ``index`` (whose bytes are ``piece``); and whether it was shared."""
        self._pending += piece
        frame = self._frames.get(self._key, index, self._preview)
        if frame is not None:
            return frame, True
        decoded = self._decoder.feed(bytes(self._pending))
        self._pending.clear()
        assert decoded and decoded[-1].index == index, f"chunk {index} decoded to {decoded}"
        frame = render_frame(self._decoder, decoded[-1], self._store.pixels(self._info.id), self._preview)
        self._frames.put(self._key, index, self._preview, frame)
        return frame, False


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class Progress:
    """``progress`` messages: what the server is doing while the viewer waits for ``meta``.

    ``{"type": "progress", "racer": "hidenet" or a contender key, "stage": ..., "message": ...,
    "elapsed_ms": ...}``; ``elapsed_ms`` counts from the ``start`` request. More fields may come
    (a step and a step count); clients show ``message`` and ignore what they do not know.
    """

    def __init__(self, send: Sender, clock: Clock, started: float) -> None:
        self.send, self.clock, self.started = send, clock, started
        self.said: set[str] = set()

    async def say(self, racer: str, stage: str, message: str, **extra: object) -> None:
        self.said.add(racer)
        await self.send.json({"type": "progress", "racer": racer, "stage": stage, "message": message,
                              "elapsed_ms": _ms(self.clock.now() - self.started), **extra})


#: say that the server is busy if the stream is not ready after this long (seconds)
WAIT_NOTICE_S = 0.25


async def _prepare_stream(app: web.Application, req: StartRequest, info: ImageInfo, key: StreamKey,
                          progress: Progress) -> tuple[bytes, StreamLayout]:
    """hideNet's stream, saying that it is being encoded (or, if another viewer's encoding is
    awaited, that the server is preparing it)."""
    mode = ("lossless" if req.max_error == 0 else f"max error {req.max_error}") + (
        f", {req.generative_levels} predicted levels" if req.generative_levels else "")
    missed = asyncio.Event()
    task = asyncio.ensure_future(load_stream(app, info, key, on_miss=missed.set))
    try:
        waiter = asyncio.ensure_future(missed.wait())
        done, _ = await asyncio.wait({task, waiter}, timeout=WAIT_NOTICE_S, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task not in done:
            if missed.is_set():
                await progress.say("hidenet", "encode", f"Encoding the hideNet stream ({mode}): the first view of "
                                                        "this image in this mode; later views read the cache")
            else:
                await progress.say("hidenet", "wait", "Waiting for the server to prepare the hideNet stream")
        return await task
    finally:
        if not task.done():
            task.cancel()


async def run_stream(app: web.Application, send: Sender, req: StartRequest, info: ImageInfo) -> None:
    """Stream one image (and its race); returns after ``done``. Cancel the task to stop it."""
    clock, worker, store, stats, frames = app[CLOCK], app[WORKER], app[STORE], app[STATS], app[FRAMES]
    key = stream_key(app, info.id, req.max_error, req.generative_levels)
    progress = Progress(send, clock, clock.now())
    racers = [Racer(spec, slot) for slot, spec in enumerate(req.contenders, 1)]
    # Everything is prepared before the race's clock starts, so that no racer waits for its encoder.
    preparing = [asyncio.ensure_future(_prepare_stream(app, req, info, key, progress))]
    preparing += [asyncio.ensure_future(r.prepare(app[RACES], worker, store, info, progress)) for r in racers]
    try:
        (data, layout), *_ = await asyncio.gather(*preparing)
    finally:
        for task in preparing:  # one failed: the others are of no use (a cache still gets what they finish)
            task.cancel()
    header = layout.header
    plan = [
        {"layer": c.layer, "level": c.level, "part": c.part, "parts": c.parts, "max_error": c.max_error,
         "payload_bytes": c.payload_bytes, "total_bytes": c.end, "arrival_ms": round(arrival_ms(req.link, c.end), 3)}
        for c in layout.chunks
    ]
    # On the unlimited link every byte arrives at t = 0: racers are timed by when they were sent.
    unlimited = req.link.down_kbps is None
    time_of = (lambda arrival, sent: sent) if unlimited else (lambda arrival, sent: arrival)
    t0 = clock.now()
    await send.json({
        "type": "meta", "image": info.to_json(), "width": header.width, "height": header.height,
        "channels": header.channels, "mode": header.mode, "levels": len(layout.chunks), "base_level": header.levels,
        "max_error": req.max_error, "generative_levels": req.generative_levels, "preview": req.preview,
        "race": req.race, "link": req.link.to_json(), "model": header.model_name,
        "header_bytes": layout.header_bytes, "payload_bytes": layout.payload_bytes,
        "total_bytes": layout.total_bytes, "schedule": plan,
        "contenders": [r.schedule(req.link) for r in racers],
        "prepared_ms": _ms(t0 - progress.started), "time": "sent" if unlimited else "arrival",
        "layers": [list(r) for r in header.layers] or [list(header.max_error)],
    })
    tasks = [asyncio.create_task(r.run(send, clock, req.link, t0, time_of)) for r in racers]
    events: list[Event] = []
    try:
        source = LevelFrames(app[MODEL], store, info, frames, key, req.preview)
        shapes = level_shapes(header.height, header.width, header.levels)
        level_frame_bytes, start = 0, 0
        for i, chunk in enumerate(layout.chunks):
            arrival = round(arrival_ms(req.link, chunk.end), 3)  # as sent: the verdict uses what the client sees
            await clock.sleep_until(t0 + arrival / 1000)
            frame, shared = await worker.run(source.next, data[start : chunk.end], i, priority=i)
            stats.frame_hits += shared
            stats.frame_misses += not shared
            start = chunk.end
            h, w = shapes[chunk.level]
            level_frame_bytes += len(frame.png)
            sent = _ms(clock.now() - t0)
            events.append(Event(time_of(arrival, sent), chunk.end, frame.psnr))
            await send.pair({
                "type": "level", "level": chunk.level, "layer": chunk.layer, "part": chunk.part,
                "parts": chunk.parts, "max_error": chunk.max_error, "width": w, "height": h,
                "payload_bytes": chunk.payload_bytes, "total_bytes": chunk.end,
                "arrival_ms": round(arrival, 3), "decode_ms": round(frame.decode_ms, 3), "shared": shared,
                "psnr": frame.psnr, "ssim": frame.ssim,
                "frame_bytes": len(frame.png), "frame_width": frame.width, "frame_height": frame.height,
                "sent_ms": sent, "index": i, "levels": len(layout.chunks),
            }, frame.png)
        summaries = list(await asyncio.gather(*tasks))
        result = verdict([VerdictRacer("hidenet", "hideNet", layout.total_bytes, tuple(events))]
                         + [r.racer() for r in racers])
        await send.json({
            "type": "done", "levels": len(layout.chunks), "payload_bytes": layout.payload_bytes,
            "total_bytes": layout.total_bytes, "arrival_ms": round(arrival_ms(req.link, layout.total_bytes), 3),
            "elapsed_ms": _ms(clock.now() - t0), "frame_bytes": level_frame_bytes,
            "json_bytes": send.json_bytes, "race": summaries[0] if summaries else None, "contenders": summaries,
            "verdict": {**result, "time": "sent" if unlimited else "arrival", "comparable": req.preview or not racers},
        })
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
