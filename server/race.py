"""The race: the same image as a progressive JPEG (quality 90) over the same link.

A progressive JPEG is a sequence of scans, each starting with an SOS marker (FF DA);
a browser repaints the image after every complete scan. We encode with Pillow, find
where each scan's entropy-coded data ends (the next marker that is neither a stuffed
FF 00 nor a restart marker FF D0..D7), and decode every prefix that ends on a scan
boundary, terminated with EOI, as the browser would show it: coefficients that have
not arrived are zero. The timeline depends only on the image, so it is cached.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from hidenet_core import png_bytes, psnr, ssim

from .store import LRU

__all__ = ["RaceFrame", "RaceTimeline", "progressive_jpeg", "scan_ends", "decode_prefix", "build_race", "RaceCache"]

SOS, EOI = 0xDA, 0xD9
_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8, EOI}  # markers without a length field


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


def _rgb_or_l(pixels: np.ndarray) -> np.ndarray:
    """JPEG has no alpha: RGBA is raced (and compared) as its RGB channels."""
    return pixels[:, :, :3] if pixels.shape[2] == 4 else pixels


def progressive_jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    px = _rgb_or_l(pixels)
    img = Image.fromarray(px[:, :, 0] if px.shape[2] == 1 else px)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, progressive=True, optimize=True)
    return buf.getvalue()


def scan_ends(jpeg: bytes) -> list[int]:
    """The byte offset just past each scan's entropy-coded data; the last one includes EOI."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG (no SOI marker)")
    ends: list[int] = []
    pos, n = 2, len(jpeg)
    while pos + 1 < n:
        if jpeg[pos] != 0xFF:
            raise ValueError(f"expected a marker at offset {pos}")
        marker = jpeg[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == EOI:
            if ends:
                ends[-1] = pos + 2
            return ends
        if marker in _STANDALONE:
            pos += 2
            continue
        length = int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        pos += 2 + length
        if marker == SOS:
            while pos + 1 < n and not (jpeg[pos] == 0xFF and jpeg[pos + 1] != 0 and not 0xD0 <= jpeg[pos + 1] <= 0xD7):
                pos += 1
            ends.append(pos)
    raise ValueError("truncated JPEG: no EOI marker")


def decode_prefix(jpeg: bytes, end: int) -> np.ndarray:
    """The image a browser shows after ``jpeg[:end]``: the prefix closed with EOI, decoded."""
    data = jpeg[:end] if jpeg[end - 2 : end] == b"\xff\xd9" else jpeg[:end] + b"\xff\xd9"
    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(img)
    return arr[:, :, None] if arr.ndim == 2 else arr


def build_race(pixels: np.ndarray, quality: int = 90) -> RaceTimeline:
    """Encode, split at scans, decode each prefix, measure it against the original."""
    reference = _rgb_or_l(pixels)
    jpeg = progressive_jpeg(pixels, quality)
    frames = []
    for i, end in enumerate(scan_ends(jpeg), 1):
        image = decode_prefix(jpeg, end)
        frames.append(RaceFrame(i, end, png_bytes(image), psnr(image, reference), ssim(image, reference)))
    return RaceTimeline(len(jpeg), tuple(frames))


class RaceCache:
    """Race timelines by (image id, quality), built once in the worker."""

    def __init__(self, items: int) -> None:
        self._lru = LRU(items)
        self._pending: dict[tuple[str, int], asyncio.Task[RaceTimeline]] = {}

    def __len__(self) -> int:
        return len(self._lru)

    async def get(self, image_id: str, quality: int, build: Callable[[], "asyncio.Future[RaceTimeline]"]) -> RaceTimeline:
        key = (image_id, quality)
        cached = self._lru.get(key)
        if cached is not None:
            return cached  # type: ignore[return-value]
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(build())
            self._pending[key] = task

            def done(t: asyncio.Task[RaceTimeline]) -> None:
                self._pending.pop(key, None)
                if not t.cancelled() and t.exception() is None:
                    self._lru.put(key, t.result())

            task.add_done_callback(done)
        return await asyncio.shield(task)
