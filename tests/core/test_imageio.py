"""Image input: every refusal is an ImageError of the kind that says what to do."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from hidenet_core import ImageError, ImageTooLarge, UnsupportedImage, image_from_bytes
from tests.conftest import png_claiming, smooth_image

#: a DDS header whose pixel format flags Pillow's plugin does not know (a fuzzer's find)
BAD_DDS = ("RERTIHwAAAAPEAAABAAAAAQAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
           "AAAAACAAAACAAAAAAAAAACAAAAAAAP8AAP8AAP8AAAAAAAD/ABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
           "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")


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


def _png_with_text(img: Image.Image, **text: str) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    img.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def test_text_chunks_named_like_pillows_own_keys_are_only_text():
    """A PNG's text chunks land in Pillow's ``info`` beside its own keys: a "bits" or a
    "transparency" text made the checks fail with a TypeError (a 500 on upload)."""
    rgb = smooth_image(4, 4, 3)
    assert np.array_equal(image_from_bytes(_png_with_text(Image.fromarray(rgb), bits="8")).pixels, rgb)
    palette = Image.fromarray(rgb).convert("P")
    loaded = image_from_bytes(_png_with_text(palette, transparency="0"))
    assert loaded.pixels.shape == (4, 4, 3)  # no alpha: the text is not a tRNS chunk


def test_a_format_plugins_own_failure_is_an_unsupported_image():
    """A malformed DDS header made Pillow's plugin raise NotImplementedError (a 500 on upload)."""
    dds = base64.b64decode(BAD_DDS)
    with pytest.raises(UnsupportedImage, match="unreadable image header"):
        image_from_bytes(dds)


def test_an_exif_orientation_is_applied():
    """A phone stores a portrait photograph sideways with an orientation tag that every viewer
    applies: so does hideNet (the id is that of the upright pixels)."""
    stored = smooth_image(12, 20, 3)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, "PNG", exif=exif)
    loaded = image_from_bytes(buf.getvalue())
    upright = np.asarray(Image.fromarray(stored).transpose(Image.Transpose.ROTATE_270))
    assert loaded.pixels.shape == (20, 12, 3) and np.array_equal(loaded.pixels, upright)
    assert "EXIF orientation" in loaded.note
