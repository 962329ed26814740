"""How well the predictor guesses each level's odd pixels from its even pixels.

For every level k below the base: the odd pixels (three of every four) of the
original level image, predicted from the original even pixels (level k + 1)

* by the model alone, every odd value being its rounded mean (what the generative
  preview shows; the model sees only the even pixels, like bicubic);
* by the model with the level's per-image preview filter, fitted as the encoder fits it
  (what a version-5 stream's preview and generative levels show; ``previewfilter.py``);
* by the model inside the coding loop, where later coding steps also see the odd
  values decoded by earlier ones (the prediction the entropy coder codes against);
* by a bicubic interpolation of the same even pixels: ``hidenet_core.tools.evaluate.bicubic_odd``,
  the reference ``hidenet eval`` uses, so both commands report the same figures.

Only real odd pixels count (not the padding of odd sizes), every channel (as in
``hidenet eval``). Per image, PSNR per level; over the images, PSNR of the pooled
squared errors (so a large image weighs more, as in ``hidenet eval``); an exact
prediction counts as ``PSNR_CAP`` dB.
"""

from __future__ import annotations

import numpy as np

from ...codec.intervals import Interval
from ...codec.loop import code_level
from ...codec.pyramid import default_levels, level_images, level_shapes, odd_valid_mask, split
from ...codec.versions import format_version
from ...metrics import psnr_from_sse
from ...predictors.base import Predictor
from ..evaluate import level_guesses, sse
from .images import BenchImage
from .progressive import PSNR_CAP

__all__ = ["measure_image", "pooled", "PREDICTORS"]

#: key -> what it is, in results.json
PREDICTORS = {
    "model": "the model's rounded means from the even pixels alone",
    "model_filtered": "the same with the level's per-image preview filter (what the stream's preview shows)",
    "model_in_loop": "the model's rounded means inside the lossless coding loop",
    "bicubic": "bicubic interpolation of the even pixels",
}


class _TeacherForced:
    """A ``loop.LevelCoder`` that records the rounded means and decodes the truth (what a
    lossless decoder decodes: later steps see the true values)."""

    def __init__(self, odd_true: np.ndarray) -> None:
        self.odd_true = odd_true
        self.odd = np.zeros_like(odd_true)

    def code(self, channels, rows, valid, mean, scale, prior) -> Interval:
        block = self.odd[channels, rows.start : rows.stop]
        block[valid] = np.clip(np.round(mean), 0, 255).astype(np.uint8)
        self.odd[channels, rows.start : rows.stop] = block
        truth = self.odd_true[channels, rows.start : rows.stop][valid]
        return Interval(truth, truth, truth)

    def calibrate(self, channels):
        raise AssertionError("the network's own prediction: no level is calibrated")


def _in_loop(model: Predictor, even: np.ndarray, odd_true: np.ndarray, size: tuple[int, int], k: int) -> np.ndarray:
    """The odd values (3C, h, w) the coder codes against: rounded means, each step seeing the truth before it
    (the network's own prediction: coded as format version 1 codes, without per-image stages)."""
    coder = _TeacherForced(odd_true)
    code_level(model, even, size, k, coder, format_version(1))
    return coder.odd


def measure_image(image: BenchImage, model: Predictor) -> list[dict]:
    """Per level 0 .. L-1 (0 = full image): squared errors and PSNR of each predictor."""
    levels = default_levels(image.height, image.width)
    shapes = level_shapes(image.height, image.width, levels)
    originals = level_images(image.pixels.transpose(2, 0, 1), levels)  # (C, H, W) per level
    out = []
    for k in range(levels):
        even, odd_true = split(originals[k])  # (C, h, w), (3C, h, w)
        valid = odd_valid_mask(*shapes[k], even.shape[0])
        guesses = {**level_guesses(model, even, odd_true, shapes, k),
                   "model_in_loop": _in_loop(model, even, odd_true, shapes[k], k)}
        count = int(valid.sum())
        row = {"level": k, "width": shapes[k][1], "height": shapes[k][0], "count": count}
        for key in PREDICTORS:
            row[f"{key}_sse"] = sse(guesses[key], odd_true, valid)
            row[f"{key}_psnr"] = psnr_from_sse(row[f"{key}_sse"], count, PSNR_CAP)
        row["gain_db"] = row["model_psnr"] - row["bicubic_psnr"]
        row["filtered_gain_db"] = row["model_filtered_psnr"] - row["bicubic_psnr"]
        out.append(row)
    return out


def pooled(per_image: list[list[dict]]) -> list[dict]:
    """Per level over all images: PSNR of the pooled squared errors."""
    by_level: dict[int, list[dict]] = {}
    for levels in per_image:
        for row in levels:
            by_level.setdefault(row["level"], []).append(row)
    out = []
    for k in sorted(by_level):
        rows = by_level[k]
        n = sum(r["count"] for r in rows)
        agg = {"level": k, "images": len(rows)}
        for key in PREDICTORS:
            agg[f"{key}_psnr"] = psnr_from_sse(sum(r[f"{key}_sse"] for r in rows), n, PSNR_CAP)
        agg["gain_db"] = agg["model_psnr"] - agg["bicubic_psnr"]
        agg["filtered_gain_db"] = agg["model_filtered_psnr"] - agg["bicubic_psnr"]
        out.append(agg)
    return out
