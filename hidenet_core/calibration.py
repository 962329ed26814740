"""Per-image calibration: parameters the encoder fits on each level and the stream carries.

The predictor's weights are fixed and were fitted on training images; every new image
differs a little from them (more or less noise, a stronger or weaker link between red
and blue). For each coding step of a level with at least ``MIN_POSITIONS`` positions,
a version-2 stream (docs/format.md) therefore carries, per channel of the step and per
*bucket* of the predicted scale (below 2.5, below 6, below 14, above: flat areas,
edges and textures are mis-calibrated differently):

* a **scale exponent** ``t`` in -8..8: the predicted scale is multiplied by
  ``SCALE_MULT[t] / 64`` (about 2^(t/8)), correcting over- or under-confidence;
* for a channel with a **parent** (blue after red of the same phase, in RGB and RGBA),
  a **coupling** ``b`` in -16..16: ``b / 16`` times the parent's residual (its decoded
  value minus its mean) is added to the mean. This is the linear channel autoregression
  of PixelCNN++ (Salimans et al. 2017) with a weight fitted per image, much as WebP
  lossless fits its cross-colour transform per image.

Such a step is coded in two rounds, parents first. The encoder picks each parameter by
a small search that minimises the Laplace code length of the values (``fit``); the
decoder only reads them. All arithmetic is on the 1/64 grid, so both sides compute the
same means and scales bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .codelength import laplace_bits
from .entropy import LevelDecoder, LevelEncoder
from .predictors.base import Prediction, snap

__all__ = [
    "MIN_POSITIONS",
    "SCALE_BOUND",
    "COUPLING_BOUND",
    "SCALE_MULT",
    "SCALE_EDGES",
    "BUCKETS",
    "bucket",
    "ChannelParams",
    "calibrated",
    "parents",
    "apply",
    "fit",
    "write",
    "read",
]

#: levels whose (h, w) grid has fewer positions than this are not calibrated (the
#: parameters would cost more than they save)
MIN_POSITIONS = 4096
SCALE_BOUND = 8  # t in -8..8
COUPLING_BOUND = 16  # b in -16..16, weight b / 16
#: 64 * 2^(t/8) rounded, for t = -8..8 (a fixed table, so no machine computes it differently)
SCALE_MULT = (32, 35, 38, 41, 45, 49, 54, 59, 64, 70, 76, 83, 91, 99, 108, 117, 128)
#: the predicted (snapped) scale's bucket is the number of these it is at or above
SCALE_EDGES = (2.5, 6.0, 14.0)
BUCKETS = len(SCALE_EDGES) + 1
#: the encoder fits on at most this many values per channel and bucket (an even subsample)
FIT_VALUES = 1 << 12


@dataclass(frozen=True)
class ChannelParams:
    """The calibration of one channel of one step: scale exponent and coupling per scale bucket."""

    scale_exp: tuple[int, ...] = (0,) * BUCKETS
    coupling: tuple[int, ...] = (0,) * BUCKETS


def bucket(scale: np.ndarray) -> np.ndarray:
    """The bucket (0 .. BUCKETS-1) of each predicted scale."""
    return np.searchsorted(np.asarray(SCALE_EDGES, dtype=np.float64), scale.astype(np.float64), side="right")


def calibrated(h: int, w: int) -> bool:
    """Whether a level with an (h, w) grid of odd positions carries calibration parameters."""
    return h * w >= MIN_POSITIONS


def parents(channels: int, step: tuple[int, ...]) -> tuple[int, ...]:
    """For each odd channel of ``step``, the position in the step of its parent, -1 for none.

    Blue (colour 2) has red (colour 0) of the same phase as its parent when both are
    in the step; nothing else has one (grey images have no parents).
    """
    if channels < 3:
        return (-1,) * len(step)
    pos = {ch: j for j, ch in enumerate(step)}
    out = []
    for ch in step:
        phase, colour = divmod(ch, channels)
        out.append(pos.get(phase * channels, -1) if colour == 2 else -1)
    return tuple(out)


def apply(mean: np.ndarray, scale: np.ndarray, params: ChannelParams, parent_resid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated (mean, scale) of one channel, both on the 1/64 grid (float32).

    mean, scale: the snapped prediction; parent_resid: the parent's decoded value minus
    its snapped mean, same shape (None without a parent). Every term is a multiple of
    1/4096 below 2^21, so float64 holds it exactly and the rounding is the same anywhere.
    """
    if params == ChannelParams():
        return mean, scale
    b = bucket(scale)
    m = mean.astype(np.float64)
    if parent_resid is not None and any(params.coupling):
        m = m + np.asarray(params.coupling, dtype=np.float64)[b] / COUPLING_BOUND * parent_resid.astype(np.float64)
    mult = np.asarray(SCALE_MULT, dtype=np.float64)[np.asarray(params.scale_exp) + SCALE_BOUND][b] / 64.0
    out = snap(Prediction(torch.from_numpy(m), torch.from_numpy(scale.astype(np.float64) * mult)))  # the codec's grid
    return out.mean.numpy().astype(np.float32), out.scale.numpy().astype(np.float32)


def fit(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, parent_resid: np.ndarray | None, step: int = 1) -> ChannelParams:
    """The encoder's choice of parameters for one channel: fewest bits on (a subsample of) its values.

    x: the true values (1-D); mean, scale: the snapped prediction; step: the
    quantization step 2d + 1 (the search compares code lengths of the quantized symbols).
    Per scale bucket, coordinate descent: coupling, then scale, twice.
    """
    b = bucket(scale)
    exps, couplings = [0] * BUCKETS, [0] * BUCKETS
    for k in range(BUCKETS):
        sel = np.flatnonzero(b == k)
        if sel.size:
            r = None if parent_resid is None else parent_resid[sel]
            couplings[k], exps[k] = _fit_one(x[sel], mean[sel], scale[sel], r, step)
    return ChannelParams(tuple(exps), tuple(couplings))


def _fit_one(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, parent_resid: np.ndarray | None, step: int) -> tuple[int, int]:
    """(coupling, scale exponent) minimising the code length of these values."""
    stride = max(1, -(-x.size // FIT_VALUES))
    xs = torch.from_numpy(x[::stride].astype(np.float64)) / step
    ms = torch.from_numpy(mean[::stride].astype(np.float64)) / step
    ss = torch.from_numpy(scale[::stride].astype(np.float64)) / step
    rs = None if parent_resid is None else torch.from_numpy(parent_resid[::stride].astype(np.float64)) / step
    weights = torch.arange(-COUPLING_BOUND, COUPLING_BOUND + 1, dtype=torch.float64) / COUPLING_BOUND
    mults = torch.tensor(SCALE_MULT, dtype=torch.float64) / 64.0
    b, t = 0, 0
    for _ in range(2):
        scaled = ss * mults[t + SCALE_BOUND]
        if rs is not None:
            cand = ms[None] + weights[:, None] * rs[None]  # (33, n)
            b = int(laplace_bits(xs[None], cand, scaled[None]).sum(1).argmin()) - COUPLING_BOUND
        m = ms if rs is None else ms + (b / COUPLING_BOUND) * rs
        t = int(laplace_bits(xs[None], m[None], ss[None] * mults[:, None]).sum(1).argmin()) - SCALE_BOUND
        if rs is None:
            break
    return b, t


#: scale of the Laplace prior, centred on 0 (no change), that the parameters are coded with
PARAM_PRIOR = 2.0


def write(enc: LevelEncoder, params: list[ChannelParams], has_parent: list[bool]) -> None:
    """Code one round's parameters: the scale exponents of every channel (per bucket), then the couplings of those with a parent."""
    enc.encode_params(np.array([t for p in params for t in p.scale_exp]), SCALE_BOUND, PARAM_PRIOR)
    enc.encode_params(np.array([b for p, hp in zip(params, has_parent) if hp for b in p.coupling]), COUPLING_BOUND, PARAM_PRIOR)


def read(dec: LevelDecoder, has_parent: list[bool]) -> list[ChannelParams]:
    """Read what ``write`` coded for a round with these channels."""
    exps = dec.decode_params(BUCKETS * len(has_parent), SCALE_BOUND, PARAM_PRIOR).reshape(-1, BUCKETS)
    couplings = iter(dec.decode_params(BUCKETS * sum(has_parent), COUPLING_BOUND, PARAM_PRIOR).reshape(-1, BUCKETS))
    zero = (0,) * BUCKETS
    return [ChannelParams(tuple(int(v) for v in t), tuple(int(v) for v in next(couplings)) if hp else zero)
            for t, hp in zip(exps, has_parent)]
