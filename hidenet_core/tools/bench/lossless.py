"""Lossless size and speed: hideNet's real .hdn bytes against the codecs people use.

Every anchor is run through its usual library (Pillow for PNG, imagecodecs for the
rest) with the settings the issue fixes, single-threaded like hideNet in the
benchmark, and every round trip is checked to be exact. A codec missing from the
installed imagecodecs build is reported as unavailable, never a crash.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ...codec.decoder import decode_image
from ...codec.encoder import EncodeSettings, encode
from ...imageio import to_pil
from ...predictors.base import Predictor
from .images import BenchImage
from .timing import best_of

__all__ = ["Codec", "anchor_codecs", "hidenet_codec", "resolution_codec", "measure_image", "HIDENET", "RESOLUTION",
           "ENCODE_REFERENCE", "DECODE_REFERENCE"]

HIDENET = "hidenet"
#: hideNet's resolution-only stream (one pass, ``hidenet encode --no-layers``)
RESOLUTION = "hidenet_res"
#: every encode time is also given over PNG's, every decode time over JPEG XL's
ENCODE_REFERENCE = "png"
DECODE_REFERENCE = "jpegxl"


@dataclass(frozen=True)
class Codec:
    """A lossless codec as the benchmark drives it."""

    key: str  # stable id in results.json
    label: str  # name in tables and plots
    settings: str  # the options used, for the methodology table
    encode: Callable[[np.ndarray], bytes]  # (H, W, C) uint8 -> bytes
    decode: Callable[[bytes], np.ndarray]  # bytes -> image array
    available: bool = True
    reason: str = ""  # why it is unavailable


def _plane(px: np.ndarray) -> np.ndarray:
    """(H, W) for grey images: what the libraries expect for one channel."""
    return px[:, :, 0] if px.shape[2] == 1 else px


def _png_encode(px: np.ndarray) -> bytes:
    buf = io.BytesIO()
    to_pil(px).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _png_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img)


def _webp_encode(px: np.ndarray) -> bytes:
    import imagecodecs

    # WebP has no grey mode: a grey image is coded as RGB with equal channels, as cwebp does
    arr = np.repeat(px, 3, axis=2) if px.shape[2] == 1 else px
    return imagecodecs.webp_encode(arr, lossless=True, method=6, numthreads=1)


def _anchor(key, label, settings, module_flag, enc, dec) -> Codec:
    """A Codec for an imagecodecs codec; unavailable (with the reason) if the build lacks it."""
    try:
        import imagecodecs

        flag = getattr(imagecodecs, module_flag, None)
        if flag is None or not flag.available:
            raise RuntimeError(f"imagecodecs {imagecodecs.__version__} was built without {module_flag}")
        codec = Codec(key, label, settings, enc, dec)
        probe = (np.arange(8 * 8 * 3, dtype=np.uint8) * 7).reshape(8, 8, 3)
        if not same_pixels(codec.decode(codec.encode(probe)), probe):
            raise RuntimeError("round trip of a test image is not exact")
        return codec
    except Exception as exc:  # any failure of an optional library makes the codec unavailable
        return Codec(key, label, settings, enc, dec, available=False, reason=f"{type(exc).__name__}: {exc}")


def anchor_codecs() -> list[Codec]:
    """PNG, WebP lossless, JPEG 2000, JPEG-LS and JPEG XL with the issue's settings."""

    def ic(name):
        def call(*args, **kwargs):
            import imagecodecs

            return getattr(imagecodecs, name)(*args, **kwargs)

        return call

    return [
        Codec("png", "PNG", "Pillow, optimize=True", _png_encode, _png_decode),
        _anchor("webp", "WebP lossless", "imagecodecs, lossless=True, method=6", "WEBP", _webp_encode,
                ic("webp_decode")),
        _anchor("jpeg2k", "JPEG 2000", "imagecodecs (OpenJPEG), reversible=True", "JPEG2K",
                lambda px: ic("jpeg2k_encode")(_plane(px), reversible=True, numthreads=1),
                lambda b: ic("jpeg2k_decode")(b, numthreads=1)),
        _anchor("jpegls", "JPEG-LS", "imagecodecs (CharLS), lossless (NEAR=0)", "JPEGLS",
                lambda px: ic("jpegls_encode")(_plane(px)), ic("jpegls_decode")),
        _anchor("jpegxl", "JPEG XL", "imagecodecs (libjxl), lossless=True, effort=7", "JPEGXL",
                lambda px: ic("jpegxl_encode")(_plane(px), lossless=True, effort=7, numthreads=1),
                lambda b: ic("jpegxl_decode")(b, numthreads=1)),
    ]


def hidenet_codec(model: Predictor) -> Codec:
    """hideNet's lossless stream (every level coded, d = 0) with ``model``: the default, in
    quality layers."""
    return Codec(
        HIDENET,
        "hideNet",
        f"lossless .hdn, layered (default), model {model.name!r}",
        lambda px: encode(px, model, EncodeSettings(max_error=0, generative_levels=0)),
        lambda data: decode_image(data, model),
    )


def resolution_codec(model: Predictor) -> Codec:
    """hideNet's lossless resolution-only stream (one pass, no layers: ``--no-layers``)."""
    return Codec(
        RESOLUTION,
        "hideNet resolution-only",
        f"lossless .hdn, --no-layers, model {model.name!r}",
        lambda px: encode(px, model, EncodeSettings(max_error=0, generative_levels=0, layers=())),
        lambda data: decode_image(data, model),
    )


def same_pixels(decoded: np.ndarray, px: np.ndarray) -> bool:
    """Whether a decoded array is ``px``, allowing the layouts the libraries return:
    (H, W) for grey, RGB from WebP for grey input (equal channels) or for an opaque
    RGBA image (libwebp drops an alpha channel that is 255 everywhere)."""
    d = np.asarray(decoded)
    if d.ndim == 2:
        d = d[:, :, None]
    if d.shape[:2] != px.shape[:2] or d.dtype != np.uint8:
        return False
    c, dc = px.shape[2], d.shape[2]
    if dc == c:
        return bool(np.array_equal(d, px))
    if c == 1 and dc == 3:
        return bool((d == px).all())
    if c == 4 and dc == 3:
        return bool(np.array_equal(d, px[:, :, :3]) and (px[:, :, 3] == 255).all())
    return False


def measure_image(codec: Codec, image: BenchImage, repeats: int) -> tuple[dict, bytes | None]:
    """Size, bits per pixel, best encode and decode time and exactness of one image.

    Returns the JSON record and the encoded bytes (None if the codec failed)."""
    px = image.pixels
    try:
        data, enc_s = best_of(lambda: codec.encode(px), repeats)
        out, dec_s = best_of(lambda: codec.decode(data), repeats)
    except Exception as exc:  # a codec that fails on one image is reported, not fatal
        return {"error": f"{type(exc).__name__}: {exc}"}, None
    exact = same_pixels(out, px)
    record = {
        "bytes": len(data),
        "bpp": len(data) * 8 / (image.width * image.height),
        "encode_s": enc_s,
        "decode_s": dec_s,
        "lossless": exact,
    }
    if not exact:
        record["error"] = "round trip is not exact"
    return record, data
