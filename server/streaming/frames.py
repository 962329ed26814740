"""Turning a decoded level into what the browser is sent: a PNG frame and its quality.

The frame is the level itself at its own size, or with ``preview`` the full-size image
predicted from it, in either case as the viewer is to show it (``hidenet_core.display``:
the grid of exact pixels among predicted ones softened). Quality is measured on the frame
as shown, against the original: the full image for a preview, the original subsampled to
the level's grid (``x[::2**k, ::2**k]``, the pyramid's even pixels) otherwise. A frame
depends only on the stream, the level and ``preview`` (decoding is bit-exact, checked by
CRC), so rendered frames are cached.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from hidenet_core import DecodedLevel, ProgressiveDecoder, display_frame, png_bytes, psnr, ssim

from ..storage.cache import StreamKey
from ..storage.lru import LRU

__all__ = ["Frame", "FrameCache", "level_reference", "render_frame", "finite"]


@dataclass(frozen=True)
class Frame:
    png: bytes
    width: int
    height: int
    psnr: float | None  # dB; None when the frame equals the original (infinite PSNR)
    ssim: float
    render_ms: float  # preview + PNG + metrics, when it was rendered
    decode_ms: float  # the decoder's time for this level, when it was decoded


def finite(value: float) -> float | None:
    """JSON has no infinity: an infinite PSNR (identical images) is sent as null."""
    return None if math.isinf(value) else round(value, 3)


def level_reference(original: np.ndarray, level: int) -> np.ndarray:
    """The original's pixels on level ``level``'s grid."""
    step = 1 << level
    return original[::step, ::step]


def render_frame(decoder: ProgressiveDecoder, level: DecodedLevel, original: np.ndarray, preview: bool) -> Frame:
    """Blocking: call in the worker."""
    t0 = time.perf_counter()
    if preview:
        image, reference = decoder.preview(), original
    else:
        image, reference = level.image, level_reference(original, level.level)
    # a preview is of the finest level decoded so far (a layered stream may be refining a coarser one)
    shown = decoder.current_level if preview else level.level
    image = display_frame(image, shown, decoder.header.generative_levels, preview)
    png = png_bytes(image)
    p, s = psnr(image, reference), ssim(image, reference)
    h, w = image.shape[:2]
    render_ms = (time.perf_counter() - t0) * 1000
    return Frame(png, w, h, finite(p), round(s, 5), render_ms, level.decode_seconds * 1000)


class FrameCache:
    """Rendered frames by (stream, level, preview), bounded by their total PNG bytes."""

    def __init__(self, max_bytes: int) -> None:
        self._lru = LRU(max_bytes, weigh=lambda frame: len(frame.png) + 256)  # type: ignore[attr-defined]

    def get(self, key: StreamKey, level: int, preview: bool) -> Frame | None:
        return self._lru.get((key, level, preview))  # type: ignore[return-value]

    def put(self, key: StreamKey, level: int, preview: bool, frame: Frame) -> None:
        self._lru.put((key, level, preview), frame)
