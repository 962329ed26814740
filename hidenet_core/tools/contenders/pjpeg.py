"""Progressive JPEG: a browser repaints after every complete scan.

The scans are found and each prefix decoded by ``hidenet_core.tools.pjpeg`` (coefficients
not yet received are zero, as libjpeg shows them), the module the race always used.
"""

from __future__ import annotations

import numpy as np

from ..pjpeg import decode_prefix, progressive_jpeg, scan_ends
from .base import Contender, Cut, QualityRange, Shown, visible

__all__ = ["ProgressiveJpeg"]


class ProgressiveJpeg(Contender):
    id = "pjpeg"
    name = "Progressive JPEG"
    lossless = False
    quality = QualityRange(90, 1, 95)
    max_side = 65500  # libjpeg's limit
    repaints = "after each scan (libjpeg's standard scan script: 10 scans in colour, 6 in grey)"

    def encode(self, pixels: np.ndarray, quality: int | None) -> bytes:
        return progressive_jpeg(visible(pixels), quality or self.quality.default)

    def cuts(self, data: bytes) -> list[Cut]:
        ends = scan_ends(data)
        return [Cut(end, f"scan {i} of {len(ends)}") for i, end in enumerate(ends, 1)]

    def shown(self, data: bytes, end: int) -> Shown:
        image = decode_prefix(data, end)
        return Shown(image, image.shape[0])
