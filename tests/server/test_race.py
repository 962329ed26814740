"""The progressive JPEG of the race: split at scan boundaries, each prefix decoded as a browser would."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from server.race import build_race, decode_prefix, progressive_jpeg, scan_ends
from tests.conftest import smooth_image


def test_scans_end_before_the_next_marker_and_the_last_at_eoi():
    pixels = smooth_image(64, 80, 3)
    jpeg = progressive_jpeg(pixels)
    ends = scan_ends(jpeg)
    assert len(ends) == jpeg.count(b"\xff\xda") and ends[-1] == len(jpeg)
    assert all(jpeg[e : e + 2] in (b"\xff\xc4", b"\xff\xda", b"\xff\xdd") for e in ends[:-1])
    full = np.asarray(Image.open(io.BytesIO(jpeg)))
    assert np.array_equal(decode_prefix(jpeg, ends[-1]), full)


def test_quality_grows_scan_by_scan():
    timeline = build_race(smooth_image(64, 80, 3), quality=90)
    psnrs = [f.psnr for f in timeline.frames]
    assert psnrs[-1] > psnrs[0] + 3 and timeline.frames[-1].bytes == timeline.jpeg_bytes


def test_grey_and_alpha_images_race_too():
    assert build_race(smooth_image(20, 24, 1)).frames[-1].psnr > 30
    rgba = smooth_image(20, 24, 4)
    assert build_race(rgba).frames[-1].psnr > 30  # compared on RGB: JPEG has no alpha
