"""Interlaced PNG (Adam7): a browser shows each pass as blocks, then refines them.

Adam7 sends the pixels in seven passes over 8x8 blocks: first one pixel per block, last
every odd row. Pillow reads interlaced PNGs but does not write them, so ``encode_adam7``
writes one: per row the filter with the smallest sum of absolute values (libpng's
heuristic), zlib level 9, IDAT chunks of 8 KB (libpng's size). A pass is complete once
the deflate stream's prefix inflates to all of its filtered rows; a browser reads IDAT
data as it arrives, without waiting for the chunk's end. A prefix is decoded by Pillow
(its own PNG decoder, with the IDAT data received so far) and each pixel not yet sent
is drawn with the value of the pixel that starts its block, as Chromium draws it
(seen in headless Chromium: 8x8 blocks after the first pass).
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageFile

from .base import Contender, Cut, Shown, visible

__all__ = ["InterlacedPng", "encode_adam7", "PASSES"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Adam7: (x0, y0, dx, dy) of each pass
PASSES = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
#: after pass p, every pixel is known on a grid of (block width, block height)
_BLOCKS = ((8, 8), (4, 8), (4, 4), (2, 4), (2, 2), (1, 2), (1, 1))
IDAT_SIZE = 8192
_COLOUR_TYPE = {1: 0, 3: 2}  # grey, RGB


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a.astype(np.int16) + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c)).astype(np.uint8)


def _filtered(image: np.ndarray) -> bytes:
    """The rows of an (h, w, c) image, each with the PNG filter of least absolute sum."""
    h, w, c = image.shape
    rows = image.reshape(h, w * c)
    zero_col = np.zeros((h, c), np.uint8)
    up = np.vstack([np.zeros((1, w * c), np.uint8), rows[:-1]])
    left = np.hstack([zero_col, rows[:, :-c]])
    up_left = np.hstack([zero_col, up[:, :-c]])
    candidates = [rows, rows - left, rows - up, rows - ((left.astype(np.uint16) + up) // 2).astype(np.uint8),
                  rows - _paeth(left, up, up_left)]
    cost = np.stack([np.abs(f.view(np.int8).astype(np.int32)).sum(axis=1) for f in candidates])
    best = cost.argmin(axis=0)
    out = np.empty((h, w * c + 1), np.uint8)
    out[:, 0] = best
    for kind, f in enumerate(candidates):
        out[best == kind, 1:] = f[best == kind]
    return out.tobytes()


def encode_adam7(pixels: np.ndarray) -> tuple[bytes, list[int]]:
    """An interlaced PNG of a grey or RGB (H, W, C) uint8 image, and each pass's filtered length."""
    h, w, c = pixels.shape
    passes = [pixels[y0::dy, x0::dx] for x0, y0, dx, dy in PASSES]
    raw = [_filtered(p) if p.size else b"" for p in passes]  # an empty pass has no rows at all
    stream = zlib.compress(b"".join(raw), 9)
    out = [SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, _COLOUR_TYPE[c], 0, 0, 1))]
    out += [_chunk(b"IDAT", stream[i : i + IDAT_SIZE]) for i in range(0, len(stream), IDAT_SIZE)]
    out.append(_chunk(b"IEND", b""))
    return b"".join(out), [len(r) for r in raw]


class _Layout:
    """Where the deflate stream lies in a PNG file, and what each pass needs of it."""

    def __init__(self, data: bytes) -> None:
        if data[:8] != SIGNATURE:
            raise ValueError("not a PNG (no signature)")
        pos, self.spans, self.head = 8, [], b""
        stream = bytearray()
        while pos + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[pos : pos + 8])
            if kind == b"IDAT":
                self.spans.append((pos + 8, len(stream), length))  # (file offset, stream offset, length)
                stream += data[pos + 8 : pos + 8 + length]
            elif not self.spans and kind != b"IEND":
                self.head += data[pos : pos + 12 + length]  # IHDR and anything before the image data
            pos += 12 + length
        self.stream = bytes(stream)
        w, h = struct.unpack(">II", self.head[8:16])
        channels = {0: 1, 2: 3}[self.head[17]]
        self.shape = (h, w, channels)
        sizes = [0 if (w <= x0 or h <= y0) else ((h - y0 + dy - 1) // dy) * (1 + ((w - x0 + dx - 1) // dx) * channels)
                 for x0, y0, dx, dy in PASSES]
        self.pass_ends = list(np.cumsum(sizes))  # inflated bytes up to the end of each pass

    def file_offset(self, stream_bytes: int) -> int:
        """The file length at which the first ``stream_bytes`` bytes of the deflate stream have arrived."""
        for file_at, stream_at, length in self.spans:
            if stream_bytes <= stream_at + length:
                return file_at + stream_bytes - stream_at
        raise ValueError("past the end of the image data")

    def stream_prefix(self, end: int) -> bytes:
        """The deflate bytes within the file's first ``end`` bytes."""
        parts = []
        for file_at, stream_at, length in self.spans:
            if file_at >= end:
                break
            parts.append(self.stream[stream_at : stream_at + min(length, end - file_at)])
        return b"".join(parts)


def _inflate_ends(stream: bytes, targets: list[int], step: int = 4096) -> list[int]:
    """For each target (increasing), the fewest leading bytes of ``stream`` that inflate to at least
    that many bytes."""
    ends: list[int] = []
    d, produced, pos, t = zlib.decompressobj(), 0, 0, 0
    while t < len(targets):
        if targets[t] <= 0:
            ends.append(0)
            t += 1
            continue
        if pos >= len(stream):
            raise ValueError("the image data inflates to fewer bytes than its passes need")
        piece, before, before_produced = stream[pos : pos + step], d.copy(), produced
        produced += len(d.decompress(piece))
        while t < len(targets) and produced >= targets[t]:
            lo, hi = 1, len(piece)
            while lo < hi:
                mid = (lo + hi) // 2
                if before_produced + len(before.copy().decompress(piece[:mid])) >= targets[t]:
                    hi = mid
                else:
                    lo = mid + 1
            ends.append(pos + lo)
            t += 1
        pos += len(piece)
    return ends


def _decode(png: bytes) -> np.ndarray:
    ImageFile.LOAD_TRUNCATED_IMAGES, saved = True, ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        with Image.open(io.BytesIO(png)) as img:
            arr = np.asarray(img)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
    return arr[:, :, None] if arr.ndim == 2 else arr


def replicate(image: np.ndarray, passes: int) -> np.ndarray:
    """The picture after ``passes`` complete passes: each pixel drawn as the pixel starting its block."""
    bw, bh = _BLOCKS[passes - 1]
    h, w = image.shape[:2]
    ys, xs = (np.arange(h) // bh) * bh, (np.arange(w) // bw) * bw
    return image[ys][:, xs]


class InterlacedPng(Contender):
    id = "png"
    name = "Interlaced PNG"
    lossless = True
    repaints = "after each of the 7 Adam7 passes, each pixel drawn as a block until its own pass"

    def encode(self, pixels: np.ndarray, quality: int | None) -> bytes:
        return encode_adam7(visible(pixels))[0]

    def cuts(self, data: bytes) -> list[Cut]:
        layout = _Layout(data)
        ends = _inflate_ends(layout.stream, layout.pass_ends)
        cuts: dict[int, Cut] = {}
        for p, stream_end in enumerate(ends, 1):
            end = layout.file_offset(stream_end)
            cuts[end] = Cut(end, f"pass {p} of {len(PASSES)}")  # an empty pass adds no repaint
        last = list(cuts.values())
        last[-1] = Cut(len(data), last[-1].label)  # the picture is final once the whole file is there
        return last

    def shown(self, data: bytes, end: int) -> Shown:
        if end >= len(data):
            image = _decode(data)
            return Shown(image, image.shape[0])
        layout = _Layout(data)
        stream = layout.stream_prefix(end)
        inflated = len(zlib.decompressobj().decompress(stream))
        passes = sum(1 for e in layout.pass_ends if e <= inflated)
        if passes == 0:
            return Shown(np.zeros(layout.shape, np.uint8), 0)
        decoded = _decode(SIGNATURE + layout.head + _chunk(b"IDAT", stream) + _chunk(b"IEND", b""))
        image = replicate(decoded, passes)
        return Shown(image, image.shape[0])
