"""Per-image calibration: parameters the encoder fits on each level and the stream carries.

The predictor's weights are fixed and were fitted on training images; every new image
differs a little from them (more or less noise, a stronger or weaker link between red
and blue). For each coding step of a calibrated level (``FormatVersion.calibrated``:
at least 4096 positions), a stream of a version with calibration (docs/format.md)
therefore carries, per channel of the step and per *bucket* of the predicted scale
(below 2.5, below 6, below 14, above: flat areas, edges and textures are mis-calibrated
differently):

* a **scale exponent** ``t`` in -bound..bound (``FormatVersion.scale_bound``): the predicted scale is
  multiplied by ``SCALE_MULT[t + 32] / 64`` (about 2^(t/8)), correcting over- or
  under-confidence;
* in version 2 (``Refinement.COUPLING``), for a channel with a **parent** (blue after red
  of the same phase, in RGB and RGBA), a **coupling** ``b`` in -16..16: ``b / 16`` times
  the parent's residual (its decoded
  value minus its mean) is added to the mean. This is the linear channel autoregression
  of PixelCNN++ (Salimans et al. 2017) with a weight fitted per image, much as WebP
  lossless fits its cross-colour transform per image.

Versions 3 and later (``Refinement.LINEAR``) replace the coupling by a per-image **linear
prediction** of the mean from decoded neighbours and colours (``linear.py``; blue's
features include red's residual, so the coupling is one of its weights), and fit the
scale exponents after it. Versions with a scale context also shift each value's exponent
by a per-image **scale context** (``scalecontext.py``) before the lookup, the sum clipped
to -32..32.

Such a step is coded in rounds, parents first (``rounds``; by phase in versions 3 and
later, so that phase (1,0) comes after phase (0,1)). The encoder picks each parameter by a small search that
minimises the Laplace code length of the values (``fit``); the decoder only reads them.
All arithmetic is on an exact grid, so both sides compute the same means and scales
bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...predictors.base import MEAN_GRID, SCALE_MAX, SCALE_MIN, Prediction, snap
from ..codelength import laplace_bits
from ..compiled import jit
from ..entropy import LevelDecoder, LevelEncoder
from ..versions import FormatVersion
from . import linear, scalecontext
from .linear import ChannelFeatures
from .scalecontext import ScaleContext

__all__ = [
    "SHIFTED_BOUND",
    "COUPLING_BOUND",
    "SCALE_MULT",
    "SCALE_EDGES",
    "BUCKETS",
    "bucket",
    "ChannelParams",
    "ChannelInput",
    "parents",
    "rounds",
    "apply",
    "fit",
    "write",
    "read",
    "max_values",
    "warm_up",
]

COUPLING_BOUND = 16  # b in -16..16, weight b / 16
#: with a scale context: a bucket's exponent plus its shift (``scalecontext.py``) is clipped to -32..32
SHIFTED_BOUND = 32
#: 64 * 2^(t/8) rounded, for t = -32..32, index t + 32 (a fixed table, so no machine computes it differently)
SCALE_MULT = (4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 10, 11, 12, 13, 15,
              16, 17, 19, 21, 23, 25, 27, 29, 32, 35, 38, 41, 45, 49, 54, 59, 64,
              70, 76, 83, 91, 99, 108, 117, 128, 140, 152, 166, 181, 197, 215, 235, 256,
              279, 304, 332, 362, 395, 431, 470, 512, 558, 609, 664, 724, 790, 861, 939, 1024)
#: the predicted (snapped) scale's bucket is the number of these it is at or above
SCALE_EDGES = (2.5, 6.0, 14.0)
BUCKETS = len(SCALE_EDGES) + 1
#: the encoder fits on at most this many values per channel and bucket (a random subsample)
FIT_VALUES = 1 << 12
#: the encoder checks whether the linear prediction pays on this many of its sample
CHECK_VALUES = 1 << 12


def subsample(n: int, count: int) -> np.ndarray:
    """Sorted positions of a random subsample of ``count`` of ``n`` values (all if fewer).

    Random, not strided: a stride that divides the row length picks the same columns
    in every row, which biased the fit. Seeded by ``n``, so an encoding is repeatable.
    """
    if n <= count:
        return np.arange(n)
    return np.sort(np.random.default_rng(n).choice(n, count, replace=False))


@dataclass(frozen=True)
class ChannelParams:
    """The calibration of one channel of one step: scale exponent and coupling per scale bucket,
    the weights of its linear prediction (``linear.py``) and those of its scale context
    (``scalecontext.py``); empty or all 0: none (what its version does not have)."""

    scale_exp: tuple[int, ...] = (0,) * BUCKETS
    coupling: tuple[int, ...] = (0,) * BUCKETS
    linear: tuple[int, ...] = ()
    context: tuple[int, ...] = ()

    @property
    def identity(self) -> bool:
        return not any(self.scale_exp) and not any(self.coupling) and not any(self.linear) and not any(self.context)


@dataclass(frozen=True)
class ChannelInput:
    """What the calibration of one channel of a round is given: its values' prediction at its
    valid positions (1-D, in the order of ``flat``) and what its version's stages compute from."""

    channel: int  # the odd channel index
    flat: np.ndarray  # the valid positions' flat indices into the strip's (rows, w) grid
    mean: np.ndarray  # the snapped predicted mean
    scale: np.ndarray  # the snapped predicted scale
    parent_resid: np.ndarray | None  # coupling: the parent's decoded value minus its mean (None: no parent)
    features: ChannelFeatures | None  # linear prediction: the channel's features (None: the version has none)
    context: ScaleContext | None  # scale context: the channel's scale features (None: the version has none)
    rows: Any = None  # the strip of grid rows the positions are in (plan.Strip; None: the whole grid)


def bucket(scale: np.ndarray) -> np.ndarray:
    """The bucket (0 .. BUCKETS-1) of each predicted scale: how many edges are at or below it
    (``np.searchsorted(SCALE_EDGES, scale, side="right")``, in a few comparisons of the scale as it is:
    the edges are exact in float32)."""
    s = np.asarray(scale)
    b = np.zeros(s.shape, dtype=np.int8)
    for edge in SCALE_EDGES:
        b += (s >= edge).view(np.int8)
    return b


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


def rounds(channels: int, step: tuple[int, ...], by_phase: bool) -> list[list[int]]:
    """The rounds a calibrated step is coded in: lists of positions in ``step``.

    The channels without a parent, then those with one; ``by_phase``
    (``FormatVersion.rounds_by_phase``): the same split within each phase, phases in
    order, so that phase (1,0) is decoded after phase (0,1) and its linear prediction can use it.
    """
    par = parents(channels, step)

    def key(j: int) -> tuple[int, bool]:
        return (step[j] // channels if by_phase else 0, par[j] >= 0)

    return [[j for j in range(len(step)) if key(j) == k] for k in sorted({key(j) for j in range(len(step))})]


def apply(mean: np.ndarray, scale: np.ndarray, params: ChannelParams, parent_resid: np.ndarray | None,
          refinement: np.ndarray | None = None, shift: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated (mean, scale) of one channel, both on the 1/64 grid (float32).

    mean, scale: the snapped prediction; parent_resid: the parent's decoded value minus
    its snapped mean, same shape (None without a parent); refinement: the linear
    prediction's ``sum_k a_k f_k / 256`` (None without); shift: the scale context's
    integer shift of the exponent (None without), added to the bucket's exponent and
    clipped to -16..16. Every term is a multiple of 1/16384 below 2^21, so float64 holds
    it exactly and the rounding is the same anywhere.

    A compiled loop (``_apply_kernel``) computes it value by value, each operation as
    ``_apply_numpy`` (the definition, which a test compares it with) does, in the same order.
    """
    if params.identity:
        return mean, scale
    shape = np.shape(mean)
    coupled = parent_resid is not None and any(params.coupling)
    refined = refinement is not None and any(params.linear)
    shifted = shift is not None and any(params.context)
    used = [a for a, on in ((parent_resid, coupled), (refinement, refined), (shift, shifted)) if on]
    if mean.dtype != np.float32 or scale.dtype != np.float32 or any(np.shape(a) != shape for a in [scale, *used]):
        return _apply_numpy(mean, scale, params, parent_resid, refinement, shift)
    none_f, none_i = np.zeros(0), np.zeros(0, np.int64)
    out_mean = np.empty(shape, np.float32)
    out_scale = np.empty(shape, np.float32)
    _apply_kernel(
        np.ascontiguousarray(mean).reshape(-1), np.ascontiguousarray(scale).reshape(-1),
        np.ascontiguousarray(parent_resid, dtype=np.float64).reshape(-1) if coupled else none_f,
        np.ascontiguousarray(refinement, dtype=np.float64).reshape(-1) if refined else none_f,
        np.ascontiguousarray(shift, dtype=np.int64).reshape(-1) if shifted else none_i,
        np.asarray(params.coupling, dtype=np.int64), np.asarray(params.scale_exp, dtype=np.int64),
        _EDGES, _MULT, float(COUPLING_BOUND), SHIFTED_BOUND, SCALE_MIN, SCALE_MAX, MEAN_GRID,
        out_mean.reshape(-1), out_scale.reshape(-1))
    return out_mean, out_scale


_EDGES = np.asarray(SCALE_EDGES, dtype=np.float32)
_MULT = np.asarray(SCALE_MULT, dtype=np.float64)


@jit
def _apply_kernel(mean, scale, resid, refinement, shift, coupling, scale_exp, edges, mult, coupling_bound,
                  shifted_bound, scale_min, scale_max, grid, out_mean, out_scale):  # pragma: no cover - compiled
    """``_apply_numpy`` value by value (an empty ``resid``, ``refinement`` or ``shift``: not used)."""
    for i in range(mean.size):
        s = scale[i]
        b = 0
        for e in edges:
            if s >= e:
                b += 1
        m = np.float64(mean[i])
        if resid.size:
            m = m + np.float64(coupling[b]) / coupling_bound * resid[i]
        if refinement.size:
            m = m + refinement[i]
        t = scale_exp[b]
        if shift.size:
            t = min(max(t + shift[i], -shifted_bound), shifted_bound)
        sc = np.float64(s) * (mult[t + shifted_bound] / 64.0)
        # predictors.base.snap, in float64
        m = np.rint(min(max(m, 0.0), 255.0) * grid) / grid
        sc = max(np.rint(min(max(sc, scale_min), scale_max) * grid) / grid, scale_min)
        out_mean[i] = np.float32(m)
        out_scale[i] = np.float32(sc)


def _apply_numpy(mean: np.ndarray, scale: np.ndarray, params: ChannelParams, parent_resid: np.ndarray | None,
                 refinement: np.ndarray | None = None,
                 shift: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``apply`` in numpy and torch, array by array: its definition."""
    if params.identity:
        return mean, scale
    b = bucket(scale)
    m = mean.astype(np.float64)
    if parent_resid is not None and any(params.coupling):
        m = m + np.asarray(params.coupling, dtype=np.float64)[b] / COUPLING_BOUND * parent_resid.astype(np.float64)
    if refinement is not None and any(params.linear):
        m = m + refinement
    t = np.asarray(params.scale_exp)[b]
    if shift is not None and any(params.context):
        t = np.clip(t + shift, -SHIFTED_BOUND, SHIFTED_BOUND)
    mult = np.asarray(SCALE_MULT, dtype=np.float64)[t + SHIFTED_BOUND] / 64.0
    out = snap(Prediction(torch.from_numpy(m), torch.from_numpy(scale.astype(np.float64) * mult)))  # the codec's grid
    return out.mean.numpy().astype(np.float32), out.scale.numpy().astype(np.float32)


def fit(x: np.ndarray, channel: ChannelInput, step: int, version: FormatVersion) -> ChannelParams:
    """The encoder's choice of parameters for one channel: fewest bits on (a subsample of) its values.

    x: the true values (1-D, at ``channel.flat``); step: the quantization step 2d + 1 (the
    search compares code lengths of the quantized symbols). With a linear prediction it
    is fitted first (and there is no coupling); with a scale context that is fitted next,
    given the refined mean; then, per scale bucket, coordinate descent: coupling, then
    scale, twice (with a scale context: the bucket's exponent given each value's shift).
    """
    mean, scale, parent_resid, bound = channel.mean, channel.scale, channel.parent_resid, version.scale_bound
    weights: tuple[int, ...] = ()
    if version.linear:
        features = channel.features
        assert features is not None
        weights = _fit_linear(x, mean, scale, step, features, bound)
        if any(weights):
            refined = features.refinement(weights).reshape(-1)[features.flat]
            mean = _snap_mean(mean.astype(np.float64) + refined)
        parent_resid = None
    if version.scale_context:
        context = channel.context
        assert context is not None
        ctx = _fit_context(x, mean, scale, step, context, bound)
        shift = context.shift(ctx).reshape(-1)[context.flat] if any(ctx) else None
        return ChannelParams(_fit_exps_shifted(x, mean, scale, shift, step, bound), linear=weights, context=ctx)
    b = bucket(scale)
    exps, couplings = [0] * BUCKETS, [0] * BUCKETS
    for k in range(BUCKETS):
        sel = np.flatnonzero(b == k)
        if sel.size:
            r = None if parent_resid is None else parent_resid[sel]
            couplings[k], exps[k] = _fit_one(x[sel], mean[sel], scale[sel], r, step, bound)
    return ChannelParams(tuple(exps), tuple(couplings), weights)


def _snap_mean(mean: np.ndarray) -> np.ndarray:
    return snap(Prediction(torch.from_numpy(mean), torch.ones(1, dtype=torch.float64))).mean.numpy()


def _fit_linear(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, step: int, features: ChannelFeatures,
                bound: int) -> tuple[int, ...]:
    """The linear prediction's weights, or all 0 where they would not pay for themselves."""

    def bits_with(weights: np.ndarray, feats: np.ndarray, xs: np.ndarray, ms: np.ndarray, ss: np.ndarray) -> float:
        sums = (torch.from_numpy(weights.astype(np.float64)) @ torch.from_numpy(feats)).numpy()
        refined = _snap_mean(ms.astype(np.float64) + sums / linear.WEIGHT_DENOM)
        return _best_exponent(xs, refined, ss, None, step, bound)[1]

    return _weights_that_pay(x, mean, scale, step, bound, features.count, linear.FIT_VALUES, features.sample,
                             linear.fit, bits_with)


def _fit_context(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, step: int, context: ScaleContext,
                 bound: int) -> tuple[int, ...]:
    """The scale context's weights, or all 0 where they would not pay for themselves."""

    def bits_with(weights: np.ndarray, feats: np.ndarray, xs: np.ndarray, ms: np.ndarray, ss: np.ndarray) -> float:
        return _best_exponent(xs, ms, ss, scalecontext.shift_of(feats, weights), step, bound)[1]

    return _weights_that_pay(x, mean, scale, step, bound, context.count, scalecontext.FIT_VALUES, context.sample,
                             scalecontext.fit, bits_with)


def _weights_that_pay(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, step: int, bound: int, count: int,
                      fit_values: int, sample: Callable[[np.ndarray], np.ndarray],
                      fit_weights: Callable[..., np.ndarray], bits_with: Callable[..., float]) -> tuple[int, ...]:
    """Weights fitted on a random subsample (``fit_weights(feats, x, mean, scale, step)``), kept
    only where the bits they save (``bits_with`` against the best single scale, on part of the
    subsample, scaled to all values) exceed what they cost; else all 0."""
    zero = (0,) * count
    if count == 0 or x.size == 0:
        return zero
    positions = subsample(x.size, fit_values)
    feats = sample(positions)
    xs, ms, ss = x[positions], mean[positions], scale[positions]
    weights = fit_weights(feats, xs, ms, ss, step)
    if not weights.any():
        return zero
    part = slice(0, CHECK_VALUES)
    with_weights = bits_with(weights, np.ascontiguousarray(feats[:, part]), xs[part], ms[part], ss[part])
    without = _best_exponent(xs[part], ms[part], ss[part], None, step, bound)[1]
    saved = (without - with_weights) * x.size / xs[part].size
    return tuple(int(a) for a in weights) if saved > linear.WEIGHT_COST_BITS * count else zero


def _bits_at(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, shift: np.ndarray | None, step: int,
             exps: list[int]) -> torch.Tensor:
    """Code lengths (len(exps),) of these values with each exponent t added to their shifts (clipped to -32..32)."""
    t = np.asarray(exps)[:, None] + (0 if shift is None else shift[None])
    t = np.clip(t, -SHIFTED_BOUND, SHIFTED_BOUND)
    mult = torch.from_numpy(np.asarray(SCALE_MULT, dtype=np.float64)[t + SHIFTED_BOUND] / 64.0)  # (k, n) or (k, 1)
    xs, ms, ss = (torch.from_numpy(np.asarray(v, dtype=np.float64)) / step for v in (x, mean, scale))
    return laplace_bits(xs[None], ms[None], ss[None] * mult).sum(1)


def _best_exponent(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, shift: np.ndarray | None, step: int,
                   bound: int) -> tuple[int, float]:
    """The exponent in -bound..bound with the fewest bits, and those bits.

    The code length is convex in the log of the scale (a sum of ``eta + |r| exp(-eta)``
    terms, nearly so once discretized), so a binary search on its slope finds the
    minimum with about 2 log2(2 bound + 1) evaluations instead of 2 bound + 1.
    """
    lo, hi = -bound, bound
    while lo < hi:
        mid = (lo + hi) // 2
        pair = _bits_at(x, mean, scale, shift, step, [mid, mid + 1])
        if pair[1] < pair[0]:
            lo = mid + 1
        else:
            hi = mid
    return lo, float(_bits_at(x, mean, scale, shift, step, [lo])[0])


def _fit_exps_shifted(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, shift: np.ndarray | None, step: int,
                      bound: int) -> tuple[int, ...]:
    """Per scale bucket, the exponent (added to each value's shift, if any) with the fewest bits."""
    b = bucket(scale)
    exps = [0] * BUCKETS
    for k in range(BUCKETS):
        sel = np.flatnonzero(b == k)
        if sel.size:
            sel = sel[subsample(sel.size, FIT_VALUES)]
            shifts = None if shift is None else shift[sel]
            exps[k] = _best_exponent(x[sel], mean[sel], scale[sel], shifts, step, bound)[0]
    return tuple(exps)


def _mults(bound: int) -> torch.Tensor:
    """The scale multipliers for t = -bound..bound."""
    return torch.tensor(SCALE_MULT[SHIFTED_BOUND - bound : SHIFTED_BOUND + bound + 1], dtype=torch.float64) / 64.0


def _fit_one(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, parent_resid: np.ndarray | None, step: int,
             bound: int) -> tuple[int, int]:
    """(coupling, scale exponent) minimising the code length of these values."""
    sel = subsample(x.size, FIT_VALUES)
    xs = torch.from_numpy(x[sel].astype(np.float64)) / step
    ms = torch.from_numpy(mean[sel].astype(np.float64)) / step
    ss = torch.from_numpy(scale[sel].astype(np.float64)) / step
    rs = None if parent_resid is None else torch.from_numpy(parent_resid[sel].astype(np.float64)) / step
    weights = torch.arange(-COUPLING_BOUND, COUPLING_BOUND + 1, dtype=torch.float64) / COUPLING_BOUND
    mults = _mults(bound)
    b, t = 0, 0
    for _ in range(2):
        scaled = ss * mults[t + bound]
        if rs is not None:
            cand = ms[None] + weights[:, None] * rs[None]  # (33, n)
            b = int(laplace_bits(xs[None], cand, scaled[None]).sum(1).argmin()) - COUPLING_BOUND
        m = ms if rs is None else ms + (b / COUPLING_BOUND) * rs
        t = int(laplace_bits(xs[None], m[None], ss[None] * mults[:, None]).sum(1).argmin()) - bound
        if rs is None:
            break
    return b, t


#: scale of the Laplace prior, centred on 0 (no change), that the parameters are coded with
PARAM_PRIOR = 2.0


def write(enc: LevelEncoder, version: FormatVersion, channels: list[ChannelInput], params: list[ChannelParams]) -> None:
    """Code one round's parameters: the scale exponents of every channel (per bucket), then the
    couplings of those with a parent, or the linear predictions' weights and after them the
    scale contexts' weights (what ``version`` has)."""
    enc.encode_params(np.array([t for p in params for t in p.scale_exp]), version.scale_bound, PARAM_PRIOR)
    if version.coupling:
        couplings = [b for c, p in zip(channels, params) if c.parent_resid is not None for b in p.coupling]
        enc.encode_params(np.array(couplings), COUPLING_BOUND, PARAM_PRIOR)
    if version.linear:
        linear.write(enc, [p.linear or (0,) * _count(c.features) for c, p in zip(channels, params)])
    if version.scale_context:
        scalecontext.write(enc, [p.context or (0,) * _count(c.context) for c, p in zip(channels, params)])


def read(dec: LevelDecoder, version: FormatVersion, channels: list[ChannelInput]) -> list[ChannelParams]:
    """Read what ``write`` coded for a round of these channels."""
    n = len(channels)
    exps = [tuple(int(v) for v in t)
            for t in dec.decode_params(BUCKETS * n, version.scale_bound, PARAM_PRIOR).reshape(-1, BUCKETS)]
    couplings: list[tuple[int, ...]] = [(0,) * BUCKETS] * n
    weights: list[tuple[int, ...]] = [()] * n
    contexts: list[tuple[int, ...]] = [()] * n
    if version.coupling:
        parented = [j for j, c in enumerate(channels) if c.parent_resid is not None]
        values = dec.decode_params(BUCKETS * len(parented), COUPLING_BOUND, PARAM_PRIOR).reshape(-1, BUCKETS)
        for j, b in zip(parented, values):
            couplings[j] = tuple(int(v) for v in b)
    if version.linear:
        weights = linear.read(dec, [_count(c.features) for c in channels])
    if version.scale_context:
        contexts = scalecontext.read(dec, [_count(c.context) for c in channels])
    return [ChannelParams(t, b, w, x) for t, b, w, x in zip(exps, couplings, weights, contexts)]


def _count(features: ChannelFeatures | ScaleContext | None) -> int:
    assert features is not None, "the version has this stage, so the loop computed its features"
    return features.count


def max_values(version: FormatVersion, channels: int) -> int:
    """The most parameters one odd channel of a calibrated level can carry (the decoder's payload
    bound): exponents, couplings, and the linear and scale-context weights with their flags."""
    if not version.calibration:
        return 0
    most = BUCKETS
    if version.coupling:
        most += BUCKETS
    if version.linear:
        most += 1 + linear.max_features(channels)
    if version.scale_context:
        most += 1 + scalecontext.max_features(channels)
    return most


def warm_up() -> None:
    """Compile (or load from numba's cache) ``apply``'s loop, so that a server pays it at start-up,
    not its first viewer."""
    values = np.full((2, 2), 8.0, np.float32)
    apply(values, values, ChannelParams(scale_exp=(1,) * BUCKETS, coupling=(1,) * BUCKETS, linear=(1,), context=(1,)),
          np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2), np.int64))
    apply(values, values, ChannelParams(scale_exp=(1,) * BUCKETS), None)
