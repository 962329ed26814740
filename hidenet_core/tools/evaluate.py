"""Evaluating a predictor on a folder of images: prediction quality and real lossless size.

Per image and per coded level k (0 = full image .. L-1):

* ``psnr_model``: PSNR of the level's odd pixels as the model predicts them from the
  level's *true* even pixels with no residual (the generative prediction the decoder
  shows: later steps see the predictions of earlier ones);
* ``psnr_filtered``: the same prediction refined by the level's per-image preview
  filter, fitted as the encoder fits it (``previewfilter.py``): what a version-5
  stream's preview and generative levels show (equal to ``psnr_model`` on levels too
  small to carry a filter);
* ``psnr_bicubic``: the same pixels from bicubic interpolation of the same even
  pixels. The even pixel (i, j) sits at (2i, 2j) of the level, so the level is
  ``F.interpolate(even, (2h+1, 2w+1), mode="bicubic", align_corners=True)`` of the
  even image padded by one replicated row and column (which places every even pixel
  exactly on its own position), cropped to (2h, 2w), rounded, clipped to 0..255;
* only real pixels count (not the padding of odd sizes).

Per image also the SSIM of the full-resolution preview predicted from the base (the
first chunk, with the filter it carries), and the lossless size in bits per pixel of
the actual ``.hdn`` stream, with encode and decode times (the decoded image is checked
to equal the original).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..codec.decoder import decode_image, preview
from ..codec.encoder import encode
from ..codec.loop import predict_level
from ..codec.pyramid import default_levels, level_images, level_shapes, odd_valid_mask, split
from ..codec.stages import previewfilter
from ..codec.versions import VERSION, format_version
from ..imageio import center_crop, image_files, load_image
from ..metrics import psnr_from_sse, ssim
from ..predictors.base import Predictor

__all__ = ["LevelScore", "ImageScore", "bicubic_odd", "evaluate_image", "evaluate_folder", "totals", "as_json",
           "level_fitter", "level_guesses", "sse"]


@dataclass(frozen=True)
class LevelScore:
    level: int  # 0 = full image
    height: int
    width: int
    psnr_model: float  # dB, odd pixels predicted from the true even pixels
    psnr_bicubic: float  # dB, the same pixels by bicubic interpolation
    sse_model: float  # summed squared error (for pooled totals)
    sse_bicubic: float
    count: int  # odd values compared
    psnr_filtered: float = math.nan  # dB, the model's prediction with the level's preview filter
    sse_filtered: float = math.nan

    @property
    def gain_db(self) -> float:
        return self.psnr_model - self.psnr_bicubic

    @property
    def filtered_gain_db(self) -> float:
        return self.psnr_filtered - self.psnr_bicubic


@dataclass(frozen=True)
class ImageScore:
    name: str
    width: int
    height: int
    channels: int
    levels: list[LevelScore] = field(default_factory=list)
    preview_ssim: float = math.nan  # full-resolution preview from the base vs the original
    bytes: int = 0  # size of the lossless .hdn stream
    bpp: float = math.nan  # bits per pixel of that stream
    encode_seconds: float = math.nan
    decode_seconds: float = math.nan


def bicubic_odd(even: np.ndarray) -> np.ndarray:
    """Odd values (3C, h, w) by bicubic interpolation of the even image (C, h, w), uint8."""
    c, h, w = even.shape
    e = torch.from_numpy(even.astype(np.float64))[None]  # (1, C, h, w)
    e = F.pad(e, (0, 1, 0, 1), mode="replicate")  # (1, C, h+1, w+1)
    up = F.interpolate(e, size=(2 * h + 1, 2 * w + 1), mode="bicubic", align_corners=True)
    up = up[0, :, : 2 * h, : 2 * w].round().clamp(0, 255).numpy().astype(np.uint8)  # (C, 2h, 2w)
    return split(up)[1]


def level_guesses(model: Predictor, even: np.ndarray, odd_true: np.ndarray, shapes: list[tuple[int, int]],
                  k: int) -> dict[str, np.ndarray]:
    """The odd values (3C, h, w) of level k guessed from its true even pixels (C, h, w): by the model
    alone ("model"), refined by the level's preview filter as the encoder fits it ("model_filtered";
    the plain means where the level carries none) and by bicubic interpolation ("bicubic")."""
    plain = split(predict_level(model, even, shapes[k], k))[1]
    fitter = level_fitter(odd_true, shapes, k)
    filtered = plain if fitter is None else split(predict_level(model, even, shapes[k], k, fitter))[1]
    return {"model": plain, "model_filtered": filtered, "bicubic": bicubic_odd(even)}


def sse(guess: np.ndarray, odd_true: np.ndarray, valid: np.ndarray) -> float:
    """Summed squared error of a guess of the odd values (3C, h, w) over the real ones (not the padding)."""
    d = guess[valid].astype(np.float64) - odd_true[valid]
    return float((d * d).sum())


def evaluate_image(pixels: np.ndarray, model: Predictor, name: str = "", verify: bool = True) -> ImageScore:
    """All figures for one (H, W, C) uint8 image."""
    height, width, c = pixels.shape
    levels = default_levels(height, width)
    shapes = level_shapes(height, width, levels)
    originals = level_images(pixels.transpose(2, 0, 1), levels)  # (C, H, W) per level
    scores = []
    for k in range(levels):
        even, odd = split(originals[k])  # (C, h, w), (3C, h, w)
        valid = odd_valid_mask(*shapes[k], c)
        guesses = level_guesses(model, even, odd, shapes, k)
        n = int(valid.sum())
        sse_m, sse_f, sse_b = (sse(guesses[key], odd, valid) for key in ("model", "model_filtered", "bicubic"))
        scores.append(LevelScore(k, *shapes[k], psnr_from_sse(sse_m, n), psnr_from_sse(sse_b, n), sse_m, sse_b, n,
                                 psnr_from_sse(sse_f, n), sse_f))
    base_odd = split(originals[levels - 1])[1] if levels else None
    prev = preview(model, originals[levels], levels, shapes, level_fitter(base_odd, shapes, levels - 1))  # (H, W, C)
    t0 = time.perf_counter()
    data = encode(pixels, model)
    t_enc = time.perf_counter() - t0
    t_dec = math.nan
    if verify:
        t0 = time.perf_counter()
        out = decode_image(data, model)
        t_dec = time.perf_counter() - t0
        if not np.array_equal(out, pixels):
            raise RuntimeError(f"{name}: lossless round trip failed: the decoded image differs from the original")
    return ImageScore(name, width, height, c, scores, ssim(prev, pixels), len(data), len(data) * 8 / (width * height),
                      t_enc, t_dec)


def level_fitter(odd_true: np.ndarray | None, shapes: list[tuple[int, int]], k: int) -> previewfilter.Fitter | None:
    """Level k's preview filter as the encoder fits it, where a stream of the default version carries one."""
    if odd_true is None or not format_version(VERSION).carries_filter(shapes, k):
        return None
    return previewfilter.Fitter(odd_true)


def evaluate_folder(folder: str | Path, model: Predictor, crop: tuple[int, int] | None = None, verify: bool = True,
                    progress=None) -> list[ImageScore]:
    """``evaluate_image`` for every image of a folder (sorted by name); ``crop`` = (width, height)."""
    out = []
    for path in image_files(folder):
        px = load_image(path).pixels
        if crop:
            px = center_crop(px, *crop)
        score = evaluate_image(px, model, path.name, verify)
        if progress:
            progress(score)
        out.append(score)
    return out


def totals(scores: list[ImageScore]) -> dict:
    """Figures over all images: bpp from total bits over total pixels, PSNR from pooled errors."""
    pixels = sum(s.width * s.height for s in scores)
    by_level: dict[int, list[LevelScore]] = {}
    for s in scores:
        for lv in s.levels:
            by_level.setdefault(lv.level, []).append(lv)
    levels = []
    for k in sorted(by_level):
        n = sum(lv.count for lv in by_level[k])
        pm = psnr_from_sse(sum(lv.sse_model for lv in by_level[k]), n)
        pb = psnr_from_sse(sum(lv.sse_bicubic for lv in by_level[k]), n)
        pf = psnr_from_sse(sum(lv.sse_filtered for lv in by_level[k]), n)
        levels.append({"level": k, "images": len(by_level[k]), "psnr_model": pm, "psnr_filtered": pf,
                       "psnr_bicubic": pb, "gain_db": pm - pb, "filtered_gain_db": pf - pb})
    return {
        "images": len(scores),
        "pixels": pixels,
        "bytes": sum(s.bytes for s in scores),
        "bpp": sum(s.bytes for s in scores) * 8 / max(pixels, 1),
        "mean_image_bpp": float(np.mean([s.bpp for s in scores])) if scores else math.nan,
        "preview_ssim": float(np.mean([s.preview_ssim for s in scores])) if scores else math.nan,
        "encode_seconds": sum(s.encode_seconds for s in scores),
        "decode_seconds": sum(s.decode_seconds for s in scores),
        "levels": levels,
    }


def as_json(scores: list[ImageScore], model: Predictor) -> dict:
    images = []
    for s in scores:
        d = asdict(s)
        for lv, obj in zip(d["levels"], s.levels):
            lv["gain_db"] = obj.gain_db
            lv["filtered_gain_db"] = obj.filtered_gain_db
        images.append(d)
    return {"model": model.name, "weights": model.weights_hash().hex(), "images": images, "totals": totals(scores)}
