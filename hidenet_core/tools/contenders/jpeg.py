"""Baseline (sequential) JPEG: a browser draws it top-down while it loads.

Encoded by Pillow (libjpeg, 4:2:0, optimised Huffman tables, no restart markers: the
file a web page usually serves). A prefix is decoded by libjpeg, which turns missing
entropy-coded data into zeros; the rows a browser paints are those the prefix alone
determines: decoded alike whatever follows the prefix (we try two different
continuations). The rest of the picture is not painted yet.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFile

from ...imageio import to_pil
from .base import Contender, Cut, QualityRange, Shown, visible
from .topdown import topdown_cuts

__all__ = ["BaselineJpeg", "decode_jpeg_prefix"]

EOI = b"\xff\xd9"
# an arbitrary continuation without 0xFF bytes (no marker), to tell determined rows from guessed ones
_GARBAGE = bytes((37 * i + 11) % 255 for i in range(509))


def decode_jpeg_prefix(data: bytes) -> np.ndarray:
    """libjpeg's decoding of a JPEG cut anywhere (missing data decodes as zeros), (H, W, C)."""
    ImageFile.LOAD_TRUNCATED_IMAGES, saved = True, ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        with Image.open(io.BytesIO(data)) as img:
            arr = np.asarray(img.convert("L" if img.mode == "L" else "RGB"))
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
    return arr[:, :, None] if arr.ndim == 2 else arr


def _determined(a: np.ndarray, b: np.ndarray) -> int:
    """The number of leading rows on which two decodings agree."""
    same = (a == b).all(axis=(1, 2))
    return len(same) if same.all() else int(np.argmin(same))


class BaselineJpeg(Contender):
    id = "jpeg"
    name = "Baseline JPEG"
    lossless = False
    quality = QualityRange(90, 1, 95)
    max_side = 65500  # libjpeg's limit
    repaints = "as its bytes arrive, top-down (we repaint every 1/16 of the file)"

    def encode(self, pixels: np.ndarray, quality: int | None) -> bytes:
        buf = io.BytesIO()
        to_pil(visible(pixels)).save(buf, "JPEG", quality=quality or self.quality.default, optimize=True)
        return buf.getvalue()

    def cuts(self, data: bytes) -> list[Cut]:
        height = _shape(data)[0]
        return topdown_cuts(len(data), height, lambda end: self.shown(data, end).rows)

    def shown(self, data: bytes, end: int) -> Shown:
        if end >= len(data):
            image = decode_jpeg_prefix(data)
            return Shown(image, image.shape[0])
        prefix = data[:end]
        try:
            a = decode_jpeg_prefix(prefix + EOI)
            b = decode_jpeg_prefix(prefix + _GARBAGE + EOI)
        except (OSError, SyntaxError, ValueError):  # the headers have not all arrived: nothing to paint
            return Shown(np.zeros(_shape(data), np.uint8), 0)
        return Shown(a, _determined(a, b))


def _shape(data: bytes) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.height, img.width, 1 if img.mode == "L" else 3
