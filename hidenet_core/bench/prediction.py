"""How well the predictor guesses each level's odd pixels from its even pixels.

For every level k below the base: the odd pixels (three of every four) of the
original level image, predicted from the original even pixels (level k + 1)

* by the model alone, every odd value being its rounded mean (what the generative
  preview shows; the model sees only the even pixels, like bicubic);
* by the model inside the coding loop, where later coding steps also see the odd
  values decoded by earlier ones (the prediction the entropy coder codes against);
* by a bicubic interpolation of the same even pixels (grid-aligned, see ``resample``).

PSNR is over the real odd pixels (padding excluded) and the visible channels; an exact
prediction is reported as ``PSNR_CAP`` dB.
"""

from __future__ import annotations

import numpy as np

from ..levels import reconstruct_level
from ..metrics import mse
from ..predictors.base import Predictor
from ..pyramid import default_levels, level_shapes, merge, odd_valid_mask, split
from .images import BenchImage
from .progressive import PSNR_CAP
from .resample import bicubic_upscale

__all__ = ["measure_image", "odd_psnr"]


def odd_psnr(pred_chw: np.ndarray, true_chw: np.ndarray) -> float:
    """PSNR (dB) between the odd pixels of two (C, H, W) level images."""
    c, height, width = true_chw.shape
    channels = min(c, 3)  # visible channels only
    _, odd_p = split(pred_chw[:channels])
    _, odd_t = split(true_chw[:channels])
    valid = odd_valid_mask(height, width, channels)
    m = mse(odd_p[valid], odd_t[valid])
    return PSNR_CAP if m == 0 else min(PSNR_CAP, float(10.0 * np.log10(255.0**2 / m)))


def measure_image(image: BenchImage, model: Predictor) -> list[dict]:
    """Per level 0 .. L-1 (0 = full image): the PSNR of each predictor's odd pixels."""
    px = image.pixels
    levels = default_levels(image.height, image.width)
    shapes = level_shapes(image.height, image.width, levels)
    originals = [np.ascontiguousarray(px.transpose(2, 0, 1))]  # (C, H, W) per level
    for _ in range(levels):
        even, _ = split(originals[-1])
        originals.append(np.ascontiguousarray(even))
    out = []
    for k in range(levels):
        true = originals[k]
        even = originals[k + 1]
        _, odd_true = split(true)
        generative = reconstruct_level(model, even, shapes[k], k, None)

        in_loop_means: list = []

        def teacher(idx, valid, mean, scale, _odd=odd_true, _log=in_loop_means):
            # the coding loop: record the prediction, hand back the true values so that
            # later steps see what a lossless decoder would have decoded
            _log.append((idx, valid, mean))
            return _odd[idx][valid]

        reconstruct_level(model, even, shapes[k], k, teacher)
        in_loop = _assemble(in_loop_means, odd_true.shape, true, even, shapes[k])
        upscaled = bicubic_upscale(even.transpose(1, 2, 0), 2, shapes[k]).transpose(2, 0, 1)
        model_db = odd_psnr(generative, true)
        bicubic_db = odd_psnr(upscaled, true)
        out.append({
            "level": k,
            "width": shapes[k][1],
            "height": shapes[k][0],
            "model_psnr": model_db,
            "model_in_loop_psnr": odd_psnr(in_loop, true),
            "bicubic_psnr": bicubic_db,
            "gain_db": model_db - bicubic_db,
        })
    return out


def _assemble(steps: list, odd_shape: tuple, true: np.ndarray, even: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The (C, H, W) level whose odd pixels are the in-loop predicted means (rounded)."""
    odd = np.zeros(odd_shape, dtype=np.uint8)
    for idx, valid, mean in steps:
        block = odd[idx]
        block[valid] = np.clip(np.round(mean), 0, 255).astype(np.uint8)
        odd[idx] = block
    return merge(even, odd, size)
