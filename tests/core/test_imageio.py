"""Image input: every refusal is an ImageError of the kind that says what to do."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hidenet_core import ImageError, ImageTooLarge, UnsupportedImage, image_from_bytes
from tests.conftest import png_claiming, smooth_image


def encoded(array: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **kw)
    return buf.getvalue()


def test_modes_are_kept_or_converted_with_a_note():
    rgb = smooth_image(12, 10, 3)
    assert image_from_bytes(encoded(rgb)).note is None
    grey_alpha = Image.fromarray(rgb).convert("LA")
    buf = io.BytesIO()
    grey_alpha.save(buf, "PNG")
    loaded = image_from_bytes(buf.getvalue())
    assert loaded.pixels.shape == (12, 10, 4) and "LA" in loaded.note


def test_not_an_image():
    with pytest.raises(UnsupportedImage, match="not an image"):
        image_from_bytes(b"%PDF-1.4 not an image")


def test_sixteen_bit_is_refused_before_decoding():
    with pytest.raises(UnsupportedImage, match="16-bit"):
        image_from_bytes(encoded(np.full((8, 8), 40000, np.uint16)))


def test_pixel_limit_is_checked_from_the_header():
    with pytest.raises(ImageTooLarge, match="20000 pixels exceeds the limit of 10000"):
        image_from_bytes(png_claiming(200, 100), max_pixels=10_000)


def test_decompression_bomb_without_a_limit():
    with pytest.raises(ImageTooLarge, match="decompression bomb"):
        image_from_bytes(png_claiming(60_000, 60_000))


def test_truncated_image():
    data = encoded(smooth_image(64, 64, 3))
    with pytest.raises(ImageError, match="truncated") as exc:
        image_from_bytes(data[: len(data) // 2])
    assert type(exc.value) is ImageError
