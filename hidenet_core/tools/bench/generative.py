"""Generative levels: what a stream whose finest levels carry no residual costs and shows.

For g = 1 and 2 (the finest g levels are not sent: the decoder keeps the prediction;
every other level lossless), per image: the stream's bytes and the PSNR / SSIM of the
decoded full image, with the per-image preview filters of format version 5 and without
them (``--format-version 4``), so the filter's cost and gain are measured
side by side. An image with fewer than g levels is skipped for that g. Over the images:
bytes summed, PSNR from the pooled squared errors, SSIM averaged.
"""

from __future__ import annotations

import numpy as np

from ...codec.decoder import decode
from ...codec.encoder import EncodeSettings, encode
from ...codec.pyramid import default_levels
from ...metrics import psnr_from_sse, ssim
from ...predictors.base import Predictor
from .images import BenchImage
from .progressive import PSNR_CAP

__all__ = ["GENERATIVE_LEVELS", "VARIANTS", "measure_image", "pooled"]

#: the numbers of generative levels measured
GENERATIVE_LEVELS = (1, 2)
#: variant key -> the format version written: 5 and 4 differ only by the preview filters
VARIANTS = {"filtered": 5, "plain": 4}


def measure_image(image: BenchImage, model: Predictor, lossless_bytes: int) -> list[dict]:
    """Per g: each variant's bytes (and fraction of the lossless stream), PSNR, SSIM and squared error."""
    px = image.pixels
    out = []
    for g in GENERATIVE_LEVELS:
        if g > default_levels(image.height, image.width):
            continue
        row: dict = {"g": g}
        for key, version in VARIANTS.items():
            data = encode(px, model, EncodeSettings(generative_levels=g, version=version))
            shown = decode(data, model)[-1].image
            sse = float(((shown.astype(np.float64) - px) ** 2).sum())
            row[key] = {"bytes": len(data), "fraction": len(data) / lossless_bytes, "sse": sse, "count": int(px.size),
                        "psnr": psnr_from_sse(sse, px.size, PSNR_CAP), "ssim": ssim(shown, px)}
        out.append(row)
    return out


def pooled(per_image: list[list[dict]]) -> list[dict]:
    """Per g over the images that have it: summed bytes, pooled PSNR, mean SSIM, and the filter's share."""
    out = []
    for g in GENERATIVE_LEVELS:
        rows = [r for levels in per_image for r in levels if r["g"] == g]
        if not rows:
            continue
        agg: dict = {"g": g, "images": len(rows)}
        for key in VARIANTS:
            agg[key] = {
                "bytes": sum(r[key]["bytes"] for r in rows),
                "fraction": float(np.mean([r[key]["fraction"] for r in rows])),
                "psnr": psnr_from_sse(sum(r[key]["sse"] for r in rows), sum(r[key]["count"] for r in rows), PSNR_CAP),
                "ssim": float(np.mean([r[key]["ssim"] for r in rows])),
            }
        agg["filter_bytes"] = agg["filtered"]["bytes"] - agg["plain"]["bytes"]
        agg["filter_db"] = agg["filtered"]["psnr"] - agg["plain"]["psnr"]
        out.append(agg)
    return out
