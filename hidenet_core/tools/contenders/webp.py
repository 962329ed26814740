"""WebP, lossless and lossy: a browser draws it top-down while it loads.

Measured in headless Chromium (the viewer's tests' browser): a WebP that is still
arriving is painted top-down, the rows decoded so far, lossy and lossless alike; it does
not wait for the whole file. Chromium decodes it with libwebp's incremental decoder;
we call the same decoder (``WebPIAppend``, ``WebPIDecGetRGB``) through ctypes, from the
libwebp that Pillow ships (or the system's), so a prefix shows exactly the rows libwebp
can decode from it. Encoding is Pillow's (libwebp, method 4 as ``cwebp`` by default).

WebP has no grey mode: a grey image is sent as RGB; the metrics compare its luma.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
from functools import cache
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

from ...imageio import to_pil
from .base import Contender, Cut, QualityRange, Shown, visible
from .topdown import topdown_cuts

__all__ = ["WebpLossless", "WebpLossy", "libwebp", "decode_webp_prefix"]

MODE_RGB = 0  # WEBP_CSP_MODE
STATUS_OK, STATUS_SUSPENDED = 0, 5  # VP8StatusCode


@cache
def libwebp() -> ctypes.CDLL | None:
    """libwebp with its incremental decoder: Pillow's own copy if it ships one, else the system's."""
    pil = Path(PIL.__file__).resolve().parent
    candidates = [*sorted(pil.parent.glob("pillow.libs/libwebp-*")), *sorted(pil.glob(".dylibs/libwebp*")),
                  ctypes.util.find_library("webp")]
    for candidate in candidates:
        if not candidate:
            continue
        try:
            lib = ctypes.CDLL(str(candidate))
            lib.WebPINewRGB.restype = ctypes.c_void_p
            lib.WebPINewRGB.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            lib.WebPIAppend.restype = ctypes.c_int
            lib.WebPIAppend.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
            lib.WebPIDecGetRGB.restype = ctypes.POINTER(ctypes.c_uint8)
            lib.WebPIDecGetRGB.argtypes = [ctypes.c_void_p] + [ctypes.POINTER(ctypes.c_int)] * 4
            lib.WebPIDelete.restype = None
            lib.WebPIDelete.argtypes = [ctypes.c_void_p]
        except (OSError, AttributeError):
            continue
        return lib
    return None


def decode_webp_prefix(data: bytes) -> tuple[np.ndarray | None, int]:
    """libwebp's incremental decoding of a WebP cut anywhere: the (H, W, 3) picture (None before
    any row is decoded) and the number of rows decoded from the top."""
    lib = libwebp()
    if lib is None:
        raise RuntimeError("libwebp's incremental decoder is not available")
    dec = lib.WebPINewRGB(MODE_RGB, None, 0, 0)
    if not dec:
        raise MemoryError("WebPINewRGB failed")
    try:
        status = lib.WebPIAppend(dec, data, len(data))
        if status not in (STATUS_OK, STATUS_SUSPENDED):
            raise ValueError(f"libwebp cannot decode this WebP (status {status})")
        last_y, width, height, stride = (ctypes.c_int() for _ in range(4))
        rows = lib.WebPIDecGetRGB(dec, ctypes.byref(last_y), ctypes.byref(width), ctypes.byref(height),
                                  ctypes.byref(stride))
        if not rows or last_y.value <= 0:
            return None, 0
        h, w, s = height.value, width.value, stride.value
        buf = np.ctypeslib.as_array(rows, shape=(h * s,))
        image = np.zeros((h, w, 3), np.uint8)
        n = last_y.value
        image[:n] = buf[: n * s].reshape(n, s)[:, : w * 3].reshape(n, w, 3)
        return image, n
    finally:
        lib.WebPIDelete(dec)


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.height, img.width


class _Webp(Contender):
    max_side = 16383  # the WebP format's limit
    repaints = "as its bytes arrive, top-down (libwebp's incremental decoder; we repaint every 1/16 of the file)"

    def available(self) -> str | None:
        if libwebp() is None:
            return "libwebp's incremental decoder was not found (neither Pillow's copy nor the system's)"
        return None

    def _save(self, image: Image.Image, buf: io.BytesIO, quality: int | None) -> None:
        raise NotImplementedError

    def encode(self, pixels: np.ndarray, quality: int | None) -> bytes:
        image = to_pil(visible(pixels)).convert("RGB")
        buf = io.BytesIO()
        self._save(image, buf, quality)
        return buf.getvalue()

    def cuts(self, data: bytes) -> list[Cut]:
        return topdown_cuts(len(data), _size(data)[0], lambda end: decode_webp_prefix(data[:end])[1])

    def shown(self, data: bytes, end: int) -> Shown:
        if end >= len(data):
            with Image.open(io.BytesIO(data)) as img:
                image = np.asarray(img.convert("RGB"))
            return Shown(image, image.shape[0])
        image, rows = decode_webp_prefix(data[:end])
        if image is None:
            return Shown(np.zeros((*_size(data), 3), np.uint8), 0)
        return Shown(image, rows)


class WebpLossless(_Webp):
    id = "webp-lossless"
    name = "WebP lossless"
    lossless = True

    def _save(self, image: Image.Image, buf: io.BytesIO, quality: int | None) -> None:
        image.save(buf, "WEBP", lossless=True, quality=75, method=4)


class WebpLossy(_Webp):
    id = "webp"
    name = "WebP"
    lossless = False
    quality = QualityRange(80, 1, 100)

    def _save(self, image: Image.Image, buf: io.BytesIO, quality: int | None) -> None:
        image.save(buf, "WEBP", quality=quality or self.quality.default, method=4)
