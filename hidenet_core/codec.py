"""Encoding an image into a ``.hdn`` stream (closed loop, any mix of d and g).

The stream holds one chunk per level, from the base (level L) to the full image
(level 0). The base chunk codes the base itself hierarchically: its own pyramid down
to a single pixel, with the same predictor. Every level is predicted from the
*reconstructed* coarser level, so the decoder sees exactly what the encoder saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import calibration, previewfilter
from .entropy import LevelEncoder
from .format import MAX_PIXELS, MAX_SIDE, Header, pack_chunk, pack_header
from .levels import level_crc, reconstruct_level
from .predictors.base import Predictor
from .pyramid import default_levels, level_shapes, split, total_levels

__all__ = ["EncodeSettings", "encode", "resolve_max_error", "TOP_MEAN", "TOP_SCALE"]

#: prior of the single top pixel of the base's own pyramid
TOP_MEAN = 128.0
TOP_SCALE = 64.0


@dataclass(frozen=True)
class EncodeSettings:
    """How to code an image; the defaults are lossless with every level coded."""

    max_error: int | tuple[int, ...] = 0  # d, or d per level from 0 (full image) to L (base)
    generative_levels: int = 0  # the finest g levels send no residual
    levels: int | None = None  # L; None: base longer side <= 32 px
    calibrate: bool = True  # fit per-image calibration (format version 2 or 3); False writes version 1
    linear: bool = True  # with calibrate: per-image linear prediction (version 3); False writes version 2
    scale_context: bool = True  # with linear: per-image scale context (version 4); False writes version 3
    preview_filter: bool = True  # with scale_context: per-image preview filter (version 5); False writes version 4

    @property
    def version(self) -> int:
        """The format version these settings write."""
        if not self.calibrate:
            return 1
        if not self.linear:
            return 2
        if not self.scale_context:
            return 3
        return 5 if self.preview_filter else 4


def resolve_max_error(max_error: int | Sequence[int], levels: int) -> tuple[int, ...]:
    """Expand a single d or check a per-level list (index 0 = full image)."""
    if isinstance(max_error, int):
        values = (max_error,) * (levels + 1)
    else:
        values = tuple(int(v) for v in max_error)
        if len(values) != levels + 1:
            raise ValueError(
                f"got {len(values)} max-error values for {levels + 1} levels (0..{levels}); "
                f"give one value or one per level"
            )
    if any(not 0 <= v <= 127 for v in values):
        raise ValueError(f"max-error values must be in 0..127, got {list(values)}")
    return values


def _check_image(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit image (uint8), got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W, C) image with C in 1, 3, 4; got shape {image.shape}")
    h, w = image.shape[:2]
    if h < 1 or w < 1 or h * w > MAX_PIXELS or max(h, w) > MAX_SIDE:
        raise ValueError(f"image size {w}x{h} is outside the supported range (1..{MAX_SIDE} per side, {MAX_PIXELS} pixels)")
    return image


def encode(image: np.ndarray, predictor: Predictor, settings: EncodeSettings = EncodeSettings()) -> bytes:
    """Encode an (H, W, C) uint8 image (C = 1, 3 or 4) into a complete ``.hdn`` stream."""
    image = _check_image(image)
    height, width, channels = image.shape
    levels = default_levels(height, width) if settings.levels is None else settings.levels
    top = total_levels(height, width)
    if not 0 <= levels <= min(top, 16):
        raise ValueError(f"--levels {levels} is outside 0..{min(top, 16)} for a {width}x{height} image")
    if not 0 <= settings.generative_levels <= levels:
        raise ValueError(f"generative levels {settings.generative_levels} is outside 0..{levels}")
    max_error = resolve_max_error(settings.max_error, levels)
    header = Header(
        width, height, channels, levels, max_error, settings.generative_levels, predictor.name, predictor.weights_hash(),
        version=settings.version,
    )

    # originals of every level down to 1x1, and the odd values that rebuild each
    originals = [np.ascontiguousarray(image.transpose(2, 0, 1))]  # (C, H, W)
    odds = []
    for _ in range(top):
        even, odd = split(originals[-1])
        originals.append(np.ascontiguousarray(even))
        odds.append(odd)
    shapes = level_shapes(height, width, top)

    out = [pack_header(header)]
    enc = LevelEncoder(predictor.distribution)

    def coder(enc: LevelEncoder, k: int, d: int):
        def code(idx, valid, mean, scale):
            return enc.encode(odds[k][idx][valid], mean, scale, d)

        return code

    def calibrator(enc: LevelEncoder, k: int, d: int):
        if not settings.calibrate:
            return None

        def calibrate(chans, flat, mean, scale, resid, feats, contexts):
            none = [None] * len(chans)
            params = [
                calibration.fit(odds[k][ch].reshape(-1)[f], m, s, r, 2 * d + 1, fe, cx)
                for ch, f, m, s, r, fe, cx in zip(chans, flat, mean, scale, resid, feats or none, contexts or none)
            ]
            counts = None if feats is None else [fe.count for fe in feats]
            context_counts = None if contexts is None else [cx.count for cx in contexts]
            calibration.write(enc, params, [r is not None for r in resid], counts, context_counts)
            return params

        return calibrate

    filtered = settings.version >= 5
    previews: dict[int, np.ndarray] = {}  # generative level -> its filtered prediction (what the level is)
    filters: dict[int, list[tuple[int, ...]]] = {}  # level -> its preview filter

    def fit_preview(enc: LevelEncoder, k: int, recon: np.ndarray) -> None:
        """Fit level k's preview filter on the reconstruction of level k + 1 and code it (version 5)."""
        if not filtered or k < 0 or not previewfilter.carried(*shapes[k + 1]):
            return
        fitter = previewfilter.Fitter(odds[k])
        predicted = reconstruct_level(predictor, recon, shapes[k], k, None, preview_filter=fitter)
        if k < settings.generative_levels:  # exactly what the decoder will rebuild
            previews[k] = predicted
        filters[k] = fitter.ordered()
        previewfilter.write(enc, filters[k])

    # base chunk: the top pixel, then the base's own levels top-1 .. L
    d_base = max_error[levels]
    top_pixel = originals[top].reshape(-1)
    recon = enc.encode(
        top_pixel, np.full(channels, TOP_MEAN, np.float32), np.full(channels, TOP_SCALE, np.float32), d_base
    ).reshape(channels, 1, 1)
    for k in range(top - 1, levels - 1, -1):
        recon = reconstruct_level(predictor, recon, shapes[k], k, coder(enc, k, d_base), calibrator(enc, k, d_base),
                                  settings.linear, settings.scale_context)
    fit_preview(enc, levels - 1, recon)
    out.append(pack_chunk(levels, enc.payload(), level_crc(recon)))

    for k in range(levels - 1, -1, -1):
        enc = LevelEncoder(predictor.distribution)
        if k < settings.generative_levels:  # the prediction itself, filtered where the stream has a filter
            recon = previews[k] if k in previews else reconstruct_level(predictor, recon, shapes[k], k, None)
            fit_preview(enc, k - 1, recon)
            out.append(pack_chunk(k, enc.payload() if k - 1 in filters else b"", level_crc(recon)))
            continue
        recon = reconstruct_level(predictor, recon, shapes[k], k, coder(enc, k, max_error[k]),
                                  calibrator(enc, k, max_error[k]), settings.linear, settings.scale_context)
        fit_preview(enc, k - 1, recon)
        out.append(pack_chunk(k, enc.payload(), level_crc(recon)))
    return b"".join(out)
