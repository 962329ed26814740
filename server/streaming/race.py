"""The race: the same image as other formats, each released on the same simulated link.

A contender (``hidenet_core.tools.contenders``: progressive or baseline JPEG, interlaced
PNG, WebP, JPEG 2000) is encoded once per image and quality, cut where a browser
repaints, and each repaint decoded as the browser shows it and measured against the
original. Here that timeline becomes frames and is cached per (image, contender, display
size); ``Racer.run`` sends each frame when its last byte would have arrived.

Each repaint is measured at full size, like hideNet's frames in a race (``FrameSpec.full_quality``),
and sent as the viewer shows it: shrunk to its display, as hideNet's frames are
(``frames.frame_image``: a JPEG of high quality, a PNG where a top-down format has not
painted yet, transparent there), or at full size for a client that asks for that (``hidenet
fetch``, the bench) or an image that fits its display. At 12 MP a repaint was a 6-11 MB
PNG and the race took nearly two minutes to prepare.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hidenet_core.metrics import frame_ssim
from hidenet_core.tools.contenders import BuildCancelled, Event, Spec, build_timeline
from hidenet_core.tools.contenders import Racer as VerdictRacer

from ..storage.lru import LRU
from ..storage.singleflight import SingleFlight
from .clock import Clock
from .frames import finite, frame_image, image_format, resize_to
from .links import Link, arrival_ms

if TYPE_CHECKING:
    from ..storage.store import ImageInfo, ImageStore
    from ..worker import Worker
    from .stream import Progress, Sender

__all__ = ["RaceFrame", "RaceTimeline", "build_race", "RaceCache", "Racer"]


@dataclass(frozen=True)
class RaceFrame:
    index: int  # 1-based
    bytes: int  # the file's bytes up to this repaint (the whole file for the last)
    label: str  # what has arrived ("scan 3 of 10", "pass 2 of 7", "rows 1-144 of 512")
    rows: int  # painted rows from the top, of the full-size image (its height when complete)
    data: bytes  # the frame to display (a PNG, or a JPEG where shrunk and complete); transparent below ``rows``
    psnr: float | None  # against the original's visible channels (unpainted rows as grey); None: identical
    ssim: float
    width: int  # the frame's size: the image's, or shrunk to a display
    height: int

    @property
    def format(self) -> str:
        """Of ``data``: "png", or "jpeg" for a complete repaint shrunk to a display."""
        return image_format(self.data)


@dataclass(frozen=True)
class RaceTimeline:
    key: str  # "pjpeg:90"
    label: str  # "Progressive JPEG q90"
    lossless: bool
    file_bytes: int  # the whole file
    frames: tuple[RaceFrame, ...]

    @property
    def weight(self) -> int:
        return sum(len(f.data) for f in self.frames) + 1024


def build_race(pixels: np.ndarray, spec: Spec, cancelled: Callable[[], bool] = lambda: False,
               size: tuple[int, int] | None = None) -> RaceTimeline:
    """Blocking (worker): encode, cut, decode and measure every repaint (at full size), and
    render the frames, shrunk to ``size`` (width, height: ``frames.shown_size``; None: full size); raises
    ``BuildCancelled`` soon after ``cancelled()`` returns True (between repaints)."""
    timeline = build_timeline(spec, pixels, cancelled, frame_ssim)  # SSIM as hideNet's frames are measured
    frames = []
    for f in timeline.frames:
        if cancelled():
            raise BuildCancelled(f"the {spec.key} race was no longer wanted")
        picture = f.shown.image if f.shown.complete else f.shown.rgba()
        shown = picture if size is None else resize_to(picture, size)
        frames.append(RaceFrame(f.index, f.bytes, f.label, f.shown.rows, frame_image(shown, shown is not picture),
                                finite(f.psnr), round(f.ssim, 5), shown.shape[1], shown.shape[0]))
    frames = tuple(frames)
    return RaceTimeline(spec.key, spec.label, spec.contender.lossless, timeline.file_bytes, frames)


class RaceCache:
    """Race timelines by (image id, contender, frame size), built once however many ask at the
    same time; bounded by the bytes of their frames."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lru = LRU(max_bytes, weigh=lambda timeline: timeline.weight)  # type: ignore[attr-defined]
        self._flights: SingleFlight[RaceTimeline] = SingleFlight()

    def __len__(self) -> int:
        return len(self._lru)

    def cached(self, image_id: str, key: str, size: tuple[int, int] | None = None) -> RaceTimeline | None:
        return self._lru.get((image_id, key, size))  # type: ignore[return-value]

    async def get(self, image_id: str, key: str, build: Callable[[], Awaitable[RaceTimeline]],
                  size: tuple[int, int] | None = None) -> RaceTimeline:
        cached = self.cached(image_id, key, size)
        if cached is not None:
            return cached

        async def build_and_keep() -> RaceTimeline:
            timeline = await build()
            if timeline.weight <= self.max_bytes:  # one larger than the whole cache is not kept: it would evict all
                self._lru.put((image_id, key, size), timeline)
            return timeline

        return await self._flights.run((image_id, key, size), build_and_keep)

    async def close(self) -> None:
        """Cancel the builds still under way (at shutdown)."""
        await self._flights.close()


class Racer:
    """One contender in one stream: its timeline, then its frames sent on the link schedule."""

    def __init__(self, spec: Spec, slot: int, size: tuple[int, int] | None = None) -> None:
        self.spec, self.slot = spec, slot  # slot: 1..3, the contender's place in the viewer
        self.size = size  # the frames' (width, height) on the viewer's display (``frames.shown_size``); None: full
        self.timeline: RaceTimeline | None = None
        self.events: list[Event] = []
        self.frame_bytes = 0

    async def prepare(self, races: RaceCache, worker: Worker, store: ImageStore, info: ImageInfo,
                      progress: Progress) -> None:
        """The timeline, from the cache or built now (saying so: it takes a while)."""
        key = self.spec.key
        if races.cached(info.id, key, self.size) is None:
            await progress.say(key, "prepare", f"Preparing {self.spec.label}: encoding it once for this image, "
                                               "then decoding each repaint as a browser shows it")

        async def build() -> RaceTimeline:
            pixels = await worker.run(store.pixels, info.id, priority=8)
            stop = threading.Event()  # a build under way in the worker stops between repaints
            try:
                return await worker.run(build_race, pixels, self.spec, stop.is_set, self.size, priority=8)
            except asyncio.CancelledError:  # nobody waits for it any more, or the server stops
                stop.set()
                raise

        self.timeline = await races.get(info.id, key, build, self.size)

    def schedule(self, link: Link) -> dict:
        """The contender as ``meta`` describes it: its file and when each repaint will arrive."""
        t = self.timeline
        assert t is not None
        return {**self.spec.to_json(), "slot": self.slot, "file_bytes": t.file_bytes, "frames": len(t.frames),
                "frame": None if self.size is None else {"width": self.size[0], "height": self.size[1]},
                "schedule": [{"frame": f.index, "step": f.label, "bytes": f.bytes,
                              "arrival_ms": round(arrival_ms(link, f.bytes), 3)} for f in t.frames]}

    async def run(self, send: Sender, clock: Clock, link: Link, t0: float, time_of: Callable[[float, float], float]
                  ) -> dict:
        """Send each frame when its last byte would have arrived; returns the summary for ``done``."""
        t = self.timeline
        assert t is not None
        compat = {"scans": len(t.frames)} if self.spec.contender.id == "pjpeg" else None
        for f in t.frames:
            arrival = round(arrival_ms(link, f.bytes), 3)  # as sent: the verdict uses what the client sees
            await clock.sleep_until(t0 + arrival / 1000)
            sent = round((clock.now() - t0) * 1000, 3)
            self.frame_bytes += len(f.data)
            message = {
                "type": "race", "contender": t.key, "slot": self.slot, "frame": f.index, "frames": len(t.frames),
                "step": f.label, "bytes": f.bytes, "total_bytes": t.file_bytes, "rows": f.rows,
                "arrival_ms": round(arrival, 3), "psnr": f.psnr, "ssim": f.ssim, "frame_bytes": len(f.data),
                "frame_width": f.width, "frame_height": f.height, "frame_format": f.format,
                "sent_ms": sent,
            }
            if compat:  # what clients of ``"race": true`` read
                message.update(scan=f.index, **compat)
            self.events.append(Event(time_of(arrival, sent), f.bytes, f.psnr))
            await send.pair(message, f.data)
        return {"contender": t.key, "label": t.label, "slot": self.slot, "frames": len(t.frames),
                "bytes": t.file_bytes, "arrival_ms": round(arrival_ms(link, t.file_bytes), 3),
                "frame_bytes": self.frame_bytes, **({"scans": len(t.frames)} if compat else {})}

    def racer(self) -> VerdictRacer:
        t = self.timeline
        assert t is not None
        return VerdictRacer(t.key, t.label, t.file_bytes, tuple(self.events))
