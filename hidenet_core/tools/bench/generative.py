"""Generative levels: what a stream whose finest levels carry no residual costs and shows.

For g = 1 and 2 (the finest g levels are not sent: the decoder keeps the prediction;
every other level lossless), per image: the stream's bytes and the PSNR / SSIM of the
decoded full image, with the per-image preview filters of format version 5 and without
them (``--format-version 4``), so the filter's cost and gain are measured
side by side. An image with fewer than g levels is skipped for that g. Over the images:
bytes summed, PSNR from the pooled squared errors, SSIM averaged.

The version-5 image is also measured as the viewer shows it, with the display filter
(``hidenet_core.display``: the grid of exact pixels among the predicted ones softened),
with the grid's contrast (``lattice_contrast``, about 1 in a photograph) before and after.
"""

from __future__ import annotations

import numpy as np

from ...codec.decoder import decode_image
from ...codec.encoder import EncodeSettings, encode
from ...codec.pyramid import default_levels
from ...display import display_frame, lattice_contrast
from ...metrics import psnr_from_sse, ssim
from ...predictors.base import Predictor
from .images import BenchImage
from .progressive import PSNR_CAP

__all__ = ["GENERATIVE_LEVELS", "VARIANTS", "DISPLAYED", "measure_image", "pooled"]

#: the numbers of generative levels measured
GENERATIVE_LEVELS = (1, 2)
#: variant key -> the format version written: 5 and 4 differ only by the preview filters
VARIANTS = {"filtered": 5, "plain": 4}
#: the variant also measured with the display filter, as the viewer shows it (row key "display")
DISPLAYED = "filtered"


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
            shown = decode_image(data, model)
            sse = float(((shown.astype(np.float64) - px) ** 2).sum())
            row[key] = {"bytes": len(data), "fraction": len(data) / lossless_bytes, "sse": sse, "count": int(px.size),
                        "psnr": psnr_from_sse(sse, px.size, PSNR_CAP), "ssim": ssim(shown, px)}
            if key == DISPLAYED:
                row[key]["contrast"] = lattice_contrast(shown, g)
                shown = display_frame(shown, 0, g, full_size=True)
                sse = float(((shown.astype(np.float64) - px) ** 2).sum())
                row["display"] = {"sse": sse, "count": int(px.size), "psnr": psnr_from_sse(sse, px.size, PSNR_CAP),
                                  "ssim": ssim(shown, px), "contrast": lattice_contrast(shown, g)}
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
        agg["display"] = {
            "psnr": psnr_from_sse(sum(r["display"]["sse"] for r in rows), sum(r["display"]["count"] for r in rows),
                                  PSNR_CAP),
            "ssim": float(np.mean([r["display"]["ssim"] for r in rows])),
            "contrast_before": float(np.mean([r[DISPLAYED]["contrast"] for r in rows])),
            "contrast_after": float(np.mean([r["display"]["contrast"] for r in rows])),
        }
        out.append(agg)
    return out
