"""Evaluation: the bicubic reference, per-level scores, totals and the ``hidenet eval`` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hidenet_core.cli import main
from hidenet_core.codec.pyramid import split
from hidenet_core.imageio import center_crop, save_png
from hidenet_core.tools.evaluate import bicubic_odd, evaluate_image, totals
from tests.conftest import smooth_image


def test_bicubic_places_even_pixels_on_their_own_positions():
    # a linear ramp is reproduced exactly by cubic convolution away from the edges
    yy, xx = np.mgrid[0:16, 0:20]
    image = (3 * xx + 5 * yy).astype(np.uint8)[None]  # (1, 16, 20)
    even, odd = split(image)
    bic = bicubic_odd(even)
    assert bic.shape == odd.shape
    assert np.array_equal(bic[:, 1:-2, 1:-2], odd[:, 1:-2, 1:-2])


def test_bicubic_of_constant_is_constant():
    even = np.full((3, 5, 7), 77, np.uint8)
    assert (bicubic_odd(even) == 77).all()


def test_evaluate_image_scores_every_coded_level(interp):
    image = smooth_image(100, 70, 3)
    score = evaluate_image(image, interp, "x")
    assert [lv.level for lv in score.levels] == [0, 1]  # 100 -> 50 -> 25 (base)
    assert all(math.isfinite(lv.psnr_model) and math.isfinite(lv.psnr_bicubic) for lv in score.levels)
    assert 0 < score.preview_ssim <= 1 and score.bpp == score.bytes * 8 / (100 * 70)
    t = totals([score, score])
    assert t["bpp"] == pytest.approx(score.bpp)
    assert t["levels"][0]["psnr_model"] == pytest.approx(score.levels[0].psnr_model)


def test_center_crop():
    image = np.zeros((10, 20, 3), np.uint8)
    assert center_crop(image, 8, 4).shape == (4, 8, 3) and center_crop(image, 50, 50).shape == (10, 20, 3)


def test_cli_eval_writes_json(tmp_path, capsys):
    d = tmp_path / "imgs"
    d.mkdir()
    save_png(smooth_image(64, 80, 3), d / "a.png")
    save_png(smooth_image(40, 40, 1, seed=3), d / "b.png")
    out = tmp_path / "eval.json"
    assert main(["eval", str(d), "--model", "interp", "--json", str(out), "--crop", "48x48"]) == 0
    text = capsys.readouterr().out
    assert "a.png" in text and "total: 2 images" in text and "level 0" in text
    report = json.loads(out.read_text())
    assert report["model"] == "interp" and len(report["images"]) == 2
    assert report["images"][0]["width"] == 48 and "gain_db" in report["images"][0]["levels"][0]
    assert main(["eval", str(tmp_path / "missing")]) == 2
    with pytest.raises(SystemExit):
        main(["eval", str(d), "--crop", "big"])
