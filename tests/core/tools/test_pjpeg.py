"""The progressive JPEG reference: scans found, each prefix decoded as a browser shows it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hidenet_core.tools.pjpeg import decode_prefix, progressive_jpeg, scan_ends, visible
from tests.conftest import smooth_image


def test_scans_end_before_the_next_marker_and_the_last_at_eoi():
    pixels = smooth_image(64, 80, 3)
    jpeg = progressive_jpeg(pixels)
    ends = scan_ends(jpeg)
    assert len(ends) > 3 and len(ends) == jpeg.count(b"\xff\xda") and ends[-1] == len(jpeg)
    assert all(jpeg[e : e + 2] in (b"\xff\xc4", b"\xff\xda", b"\xff\xdd") for e in ends[:-1])
    with Image.open(io.BytesIO(jpeg)) as img:
        full = np.asarray(img)
    assert np.array_equal(decode_prefix(jpeg, ends[-1]), full)
    errors = [np.abs(decode_prefix(jpeg, e).astype(int) - pixels).mean() for e in ends]
    assert errors[-1] < errors[0]


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_grey_colour_and_alpha(channels):
    pixels = smooth_image(20, 24, channels)
    jpeg = progressive_jpeg(pixels)
    assert decode_prefix(jpeg, scan_ends(jpeg)[-1]).shape == visible(pixels).shape


def test_not_a_jpeg():
    with pytest.raises(ValueError, match="no SOI marker"):
        scan_ends(b"\x89PNG")
    with pytest.raises(ValueError, match="no EOI marker"):
        scan_ends(progressive_jpeg(smooth_image(8, 8, 3))[:-2])
