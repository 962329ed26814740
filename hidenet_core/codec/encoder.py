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

from ..predictors.base import Predictor
from .container import MAX_ERROR, MAX_LEVELS, MAX_PIXELS, MAX_SIDE, MODE_OF_CHANNELS, Header, pack_chunk, pack_header
from .entropy import LevelEncoder
from .loop import code_level, level_crc, predict_level, top_prior
from .pyramid import default_levels, level_images, level_shapes, split, total_levels
from .stages import calibration, previewfilter
from .stages.calibration import ChannelInput, ChannelParams
from .versions import VERSION, FormatVersion, format_version

__all__ = ["EncodeSettings", "encode", "resolve_max_error"]


@dataclass(frozen=True)
class EncodeSettings:
    """How to code an image; the defaults are lossless with every level coded, in the current format."""

    max_error: int | tuple[int, ...] = 0  # d, or d per level from 0 (full image) to L (base)
    generative_levels: int = 0  # the finest g levels send no residual
    levels: int | None = None  # L; None: base longer side <= 32 px
    version: int = VERSION  # the format version to write (versions.py); older ones for older decoders

    def __post_init__(self) -> None:
        format_version(self.version)  # raises for a version not in the table

    @property
    def format(self) -> FormatVersion:
        """The record of the format version these settings write."""
        return format_version(self.version)


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
    if any(not 0 <= v <= MAX_ERROR for v in values):
        raise ValueError(f"max-error values must be in 0..{MAX_ERROR}, got {list(values)}")
    return values


def _check_image(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit image (uint8), got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in MODE_OF_CHANNELS:
        raise ValueError(f"expected an (H, W, C) image with C in {', '.join(map(str, MODE_OF_CHANNELS))}; "
                         f"got shape {image.shape}")
    h, w = image.shape[:2]
    if h < 1 or w < 1 or h * w > MAX_PIXELS or max(h, w) > MAX_SIDE:
        raise ValueError(
            f"image size {w}x{h} is outside the supported range (1..{MAX_SIDE} per side, {MAX_PIXELS} pixels)"
        )
    return image


class _Coder:
    """The encoder's side of the closed loop on one level (``loop.LevelCoder``): codes the
    true odd values (3C, h, w) with max error ``d``, and fits and codes the calibration."""

    def __init__(self, enc: LevelEncoder, odd_true: np.ndarray, d: int, version: FormatVersion) -> None:
        self.enc, self.odd_true, self.d, self.version = enc, odd_true, d, version

    def code(self, channels: list[int], valid: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return self.enc.encode(self.odd_true[channels][valid], mean, scale, self.d)

    def calibrate(self, channels: list[ChannelInput]) -> list[ChannelParams]:
        step = 2 * self.d + 1
        truth = [self.odd_true[c.channel].reshape(-1)[c.flat] for c in channels]
        params = [calibration.fit(x, c, step, self.version) for x, c in zip(truth, channels)]
        calibration.write(self.enc, self.version, channels, params)
        return params


def encode(image: np.ndarray, predictor: Predictor, settings: EncodeSettings = EncodeSettings()) -> bytes:
    """Encode an (H, W, C) uint8 image (C = 1, 3 or 4) into a complete ``.hdn`` stream."""
    image = _check_image(image)
    height, width, channels = image.shape
    levels = default_levels(height, width) if settings.levels is None else settings.levels
    top = total_levels(height, width)
    if not 0 <= levels <= min(top, MAX_LEVELS):
        raise ValueError(f"--levels {levels} is outside 0..{min(top, MAX_LEVELS)} for a {width}x{height} image")
    if not 0 <= settings.generative_levels <= levels:
        raise ValueError(f"generative levels {settings.generative_levels} is outside 0..{levels}")
    max_error = resolve_max_error(settings.max_error, levels)
    fmt = settings.format
    header = Header(width, height, channels, levels, max_error, settings.generative_levels, predictor.name,
                    predictor.weights_hash(), version=fmt.number)

    originals = level_images(image.transpose(2, 0, 1), top)  # (C, H, W) of every level down to 1x1
    odds = [split(x)[1] for x in originals[:-1]]  # the odd values (3C, h, w) that rebuild each
    shapes = level_shapes(height, width, top)

    out = [pack_header(header)]
    enc = LevelEncoder(predictor.distribution)
    previews: dict[int, np.ndarray] = {}  # generative level -> its filtered prediction (what the level is)

    def fit_preview(enc: LevelEncoder, k: int, recon: np.ndarray) -> None:
        """Fit level k's preview filter on the reconstruction of level k + 1 and code it, where the format has one."""
        if not fmt.carries_filter(shapes, k):
            return
        fitter = previewfilter.Fitter(odds[k])
        predicted = predict_level(predictor, recon, shapes[k], k, fitter)
        if k < settings.generative_levels:  # exactly what the decoder will rebuild
            previews[k] = predicted
        previewfilter.write(enc, fitter.ordered())

    def coded(enc: LevelEncoder, k: int, recon: np.ndarray, d: int) -> np.ndarray:
        return code_level(predictor, recon, shapes[k], k, _Coder(enc, odds[k], d, fmt), fmt)

    # base chunk: the top pixel, then the base's own levels top-1 .. L
    d_base = max_error[levels]
    top_pixel = originals[top].reshape(-1)
    recon = enc.encode(top_pixel, *top_prior(channels), d_base).reshape(channels, 1, 1)
    for k in range(top - 1, levels - 1, -1):
        recon = coded(enc, k, recon, d_base)
    fit_preview(enc, levels - 1, recon)
    out.append(pack_chunk(levels, enc.payload(), level_crc(recon)))

    for k in range(levels - 1, -1, -1):
        enc = LevelEncoder(predictor.distribution)
        if k < settings.generative_levels:  # the prediction itself, filtered where the stream has a filter
            recon = previews[k] if k in previews else predict_level(predictor, recon, shapes[k], k)
            fit_preview(enc, k - 1, recon)
            out.append(pack_chunk(k, enc.payload() if fmt.carries_filter(shapes, k - 1) else b"", level_crc(recon)))
            continue
        recon = coded(enc, k, recon, max_error[k])
        fit_preview(enc, k - 1, recon)
        out.append(pack_chunk(k, enc.payload(), level_crc(recon)))
    return b"".join(out)
