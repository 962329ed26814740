"""Bicubic upscaling of a pyramid level, aligned with the odd/even pyramid's sampling grid.

A level ``k`` keeps the pixels at (2^k i, 2^k j) of the full image (no anti-alias
filter), so a faithful upscale puts level pixel i at full-image pixel 2^k i. Pillow's
``resize`` aligns pixel *centres* instead, which would shift the image by a fraction
of a pixel and cost the baseline several dB for nothing; the ``box`` argument corrects
that. The kernel is Pillow's BICUBIC (Keys' cubic, a = -0.5).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ...imageio import to_pil
from ..pjpeg import visible

__all__ = ["bicubic_upscale"]


def bicubic_upscale(level: np.ndarray, factor: int, size: tuple[int, int]) -> np.ndarray:
    """Upscale an (h, w, C) uint8 level by ``factor`` (a power of two) to ``size`` = (H, W).

    Output pixel x samples the level at x / factor (pixel units, grid-aligned). The
    result has the visible channels only (see ``visible``).
    """
    px = visible(level)
    height, width = size
    if factor == 1:
        return px[:height, :width].copy()
    # edge-replicate two pixels right and below so the aligned box stays inside the image
    padded = np.pad(px, ((0, 2), (0, 2), (0, 0)), mode="edge")
    off = 0.5 - 0.5 / factor
    box = (off, off, off + width / factor, off + height / factor)
    out = np.asarray(to_pil(padded).resize((width, height), Image.Resampling.BICUBIC, box=box))
    return out[:, :, None] if out.ndim == 2 else out
