"""The race timeline: one frame per progressive-JPEG scan, measured against the original."""

from __future__ import annotations

from server.streaming.race import build_race
from tests.conftest import smooth_image


def test_quality_grows_scan_by_scan():
    timeline = build_race(smooth_image(64, 80, 3), quality=90)
    psnrs = [f.psnr for f in timeline.frames]
    assert psnrs[-1] > psnrs[0] + 3 and timeline.frames[-1].bytes == timeline.jpeg_bytes


def test_grey_and_alpha_images_race_too():
    assert build_race(smooth_image(20, 24, 1)).frames[-1].psnr > 30
    rgba = smooth_image(20, 24, 4)
    assert build_race(rgba).frames[-1].psnr > 30  # compared on RGB: JPEG has no alpha
