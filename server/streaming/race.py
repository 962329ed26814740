"""The race: the same image as a progressive JPEG (quality 90) over the same link.

Every prefix of the JPEG that ends on a scan boundary is decoded as a browser shows
it (``hidenet_core.tools.pjpeg``) and measured against the original. The timeline depends
only on the image, so it is cached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from hidenet_core import png_bytes, psnr, ssim
from hidenet_core.tools.pjpeg import decode_prefix, progressive_jpeg, scan_ends, visible

from ..storage.lru import LRU
from ..storage.singleflight import SingleFlight

__all__ = ["RaceFrame", "RaceTimeline", "progressive_jpeg", "scan_ends", "decode_prefix", "build_race", "RaceCache"]

@dataclass(frozen=True)
class RaceFrame:
    scan: int  # 1-based index of the scan this frame completes
    bytes: int  # JPEG bytes up to the end of this scan (EOI included for the last)
    png: bytes  # the frame to display, full size
    psnr: float  # against the original (alpha dropped)
    ssim: float


@dataclass(frozen=True)
class RaceTimeline:
    jpeg_bytes: int  # size of the whole JPEG file
    frames: tuple[RaceFrame, ...]


def build_race(pixels: np.ndarray, quality: int = 90) -> RaceTimeline:
    """Encode, split at scans, decode each prefix, measure it against the original."""
    reference = visible(pixels)
    jpeg = progressive_jpeg(pixels, quality)
    frames = []
    for i, end in enumerate(scan_ends(jpeg), 1):
        image = decode_prefix(jpeg, end)
        frames.append(RaceFrame(i, end, png_bytes(image), psnr(image, reference), ssim(image, reference)))
    return RaceTimeline(len(jpeg), tuple(frames))


class RaceCache:
    """Race timelines by (image id, quality), built once in the worker however many ask at the same time."""

    def __init__(self, items: int) -> None:
        self._lru = LRU(items)
        self._flights: SingleFlight[RaceTimeline] = SingleFlight()

    def __len__(self) -> int:
        return len(self._lru)

    async def get(self, image_id: str, quality: int, build: Callable[[], Awaitable[RaceTimeline]]) -> RaceTimeline:
        key = (image_id, quality)
        cached = self._lru.get(key)
        if cached is not None:
            return cached  # type: ignore[return-value]

        async def build_and_keep() -> RaceTimeline:
            timeline = await build()
            self._lru.put(key, timeline)
            return timeline

        return await self._flights.run(key, build_and_keep)
