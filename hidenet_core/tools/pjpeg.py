"""The progressive JPEG that hideNet is raced and benchmarked against.

A progressive JPEG is a sequence of scans, each starting with an SOS marker (FF DA);
a browser repaints the image after every complete scan. We encode with Pillow
(quality 90, libjpeg's standard progressive scan script, 4:2:0), find where each
scan's entropy-coded data ends (the next marker that is neither a stuffed FF 00 nor a
restart marker FF D0..D7), and decode a prefix that ends on a scan boundary, closed
with EOI, as the browser shows it: coefficients that have not arrived are zero.
The server's race and ``hidenet bench`` both use this module, so they agree.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..imageio import to_pil

__all__ = ["JPEG_QUALITY", "visible", "progressive_jpeg", "scan_ends", "decode_prefix"]

JPEG_QUALITY = 90
SOS, EOI = 0xDA, 0xD9
_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8, EOI}  # markers without a length field


def visible(pixels: np.ndarray) -> np.ndarray:
    """The channels a JPEG carries and the quality metrics compare: alpha is dropped."""
    return pixels[:, :, :3] if pixels.shape[2] == 4 else pixels


def progressive_jpeg(pixels: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """A progressive JPEG of an (H, W, C) uint8 image's visible channels."""
    buf = io.BytesIO()
    to_pil(visible(pixels)).save(buf, "JPEG", quality=quality, progressive=True, optimize=True)
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
    """The (H, W, C) image a browser shows after ``jpeg[:end]`` (``end`` from ``scan_ends``)."""
    data = jpeg[:end] if jpeg[end - 2 : end] == b"\xff\xd9" else jpeg[:end] + b"\xff\xd9"
    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(img.convert("L" if img.mode == "L" else "RGB"))
    return arr[:, :, None] if arr.ndim == 2 else arr
