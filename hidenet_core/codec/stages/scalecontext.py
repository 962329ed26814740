"""Per-image scale context: the predicted scale corrected by how surprising the decoded neighbours were.

The network's scale says how sure it is from what it sees; the calibration
(``calibration.py``) corrects it per range of scale. Neither looks at how the values
already decoded *turned out*: where green was far from its prediction, red and blue
at the same pixel usually are too, and so are the pixels next to a surprising one (an
edge or a thin line the even pixels did not show). Lossless coders have long used
this error energy as their context (CALIC, JPEG XL's weighted predictor). A
version-4 stream (docs/format.md) therefore shifts each calibrated channel's scale
exponent per position by

    shift = floor(sum_k (a_k / 64) * q_k + 1/2)

in eighths of an octave (the calibration's own units, added to the bucket's exponent
before the ``SCALE_MULT`` lookup), with integer weights ``a_k`` in -1024..1024 that the
encoder fits to this image and the stream carries, and features ``q_k`` that both
sides compute from decoded values:

* ``bias``: 1;
* ``cross``: the surprise of a colour already decoded at the same position (green for
  red; green and red for blue);
* ``near``: the summed surprise of the nearest decoded pixels of the same colour in an
  earlier phase of the level (the two diagonal-phase pixels at distance 1 for phases
  (0,1) and (1,0); the four phase-(0,1) pixels for phase (1,0));
* ``trunk`` (learned models): each of the features the network computed the value's
  prediction from (``Prediction.context``, snapped to multiples of 1/16 in -8..8). The
  network's own scale head weighs them as its training images taught it; the stream
  re-weighs them for this image.

A value's *surprise* ``q`` is the number of thresholds ``THRESHOLDS`` that
``|x - mean|`` reaches in units of its scale (``mean`` and ``scale`` are those it was
coded with): a small integer, roughly twice the log2 of the normalised error. Every
threshold is a dyadic rational, so ``|x - mean| >= t * scale`` is decided exactly in
float64 and both sides count the same ``q``; the weighted sum (integer weights times
integers or multiples of 1/16) is exact too.

Measured before building (teacher-forced, val): a log-linear scale on the surprise
features saves 1.1% over the per-bucket exponents alone, 2.0% with the trunk's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...predictors.base import CONTEXT_GRID
from ..codelength import laplace_bits
from ..entropy import LevelDecoder, LevelEncoder
from ..pyramid import window
from .linear import cross_colours

__all__ = [
    "THRESHOLDS",
    "WEIGHT_DENOM",
    "WEIGHT_BOUND",
    "NEAR",
    "ScaleFeature",
    "surprise",
    "features",
    "max_features",
    "SurprisePlanes",
    "SurpriseView",
    "ScaleContext",
    "fit",
    "write",
    "read",
]

#: surprise thresholds on |x - mean| / scale (dyadic, so the comparisons are exact)
THRESHOLDS = (0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
WEIGHT_DENOM = 64
WEIGHT_BOUND = 1024  # a_k in -1024..1024: -16..16 eighths of an octave per unit of q
#: scale of the Laplace prior the weights are coded with (units of 1/64)
WEIGHT_PRIOR = 48.0
#: the encoder fits on at most this many values per channel (a random subsample)
FIT_VALUES = 1 << 14
#: at most this many Newton steps in the fit
FIT_ITERATIONS = 12

_DIAG, _P01 = 2, 0  # the odd phases whose surprise a later phase sees
#: per phase, the nearest same-colour pixels of each earlier phase: {source phase: ((di, dj), ...)}
#: on the level's (h, w) grid (the same offsets as ``linear.NEIGHBOURS``)
NEAR: dict[int, dict[int, tuple[tuple[int, int], ...]]] = {
    0: {_DIAG: ((-1, 0), (0, 0))},
    1: {_DIAG: ((0, -1), (0, 0)), _P01: ((0, -1), (0, 0), (1, -1), (1, 0))},
    2: {},
}
_PAD = 1


@dataclass(frozen=True)
class ScaleFeature:
    """One feature: ``bias``, ``cross`` (surprise of ``colour`` here), ``near`` (summed surprise
    of the same colour at the ``NEAR`` offsets of phase ``source``) or ``trunk`` (the prediction's
    context feature number ``colour``)."""

    kind: str
    colour: int = 0  # for 'cross' and 'near'; for 'trunk' the feature's index
    source: int = -1


def surprise(values: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The surprise (int8, same shape) of decoded ``values`` coded with ``mean`` and ``scale``.

    |x - mean| is a multiple of 1/64 below 256 and every ``t * scale`` a multiple of 1/256
    below 1024, so float32 holds both exactly.
    """
    d = np.abs(values.astype(np.float32) - mean.astype(np.float32))
    s = scale.astype(np.float32)
    q = np.zeros(d.shape, dtype=np.int8)
    for t in THRESHOLDS:
        q += d >= t * s
    return q


def features(channels: int, ch: int, known: frozenset[int], trunk: int = 0) -> tuple[ScaleFeature, ...]:
    """The features of odd channel ``ch`` given the odd channels ``known`` (decoded, with their
    surprise) and the number of ``trunk`` features its prediction came with."""
    phase, colour = divmod(ch, channels)
    out = [ScaleFeature("bias")]
    out += [ScaleFeature("cross", c) for c in cross_colours(channels, colour) if phase * channels + c in known]
    out += [ScaleFeature("near", colour, src) for src in NEAR[phase] if src * channels + colour in known]
    out += [ScaleFeature("trunk", k) for k in range(min(trunk, MAX_TRUNK))]
    return tuple(out)


#: a trunk feature's unit in ``Prediction.context`` after ``snap`` (predictors.base.CONTEXT_GRID)
TRUNK_UNITS = CONTEXT_GRID
#: at most this many trunk features are used (a bound for the decoder; the shipped models have 16)
MAX_TRUNK = 32


def max_features(channels: int) -> int:
    """The most features any channel can have (what the decoder bounds a payload with)."""
    return 1 + (2 if channels >= 3 else 0) + max(len(v) for v in NEAR.values()) + MAX_TRUNK


class SurprisePlanes:
    """The surprise of every channel decoded so far on one level (its whole grid)."""

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self._planes: dict[int, np.ndarray] = {}

    def add(self, ch: int, q: np.ndarray, rows: tuple[int, int] | None = None) -> None:
        """Record the surprise of odd channel ``ch`` at grid rows ``rows`` (default: all) once decoded."""
        r0, r1 = rows or (0, self.h)
        if ch not in self._planes:
            self._planes[ch] = np.zeros((self.h, self.w), dtype=np.int8)  # q <= 11: a near sum of 4 fits too
        self._planes[ch][r0:r1] = q

    def view(self, rows: tuple[int, int] | None = None, live: frozenset[int] = frozenset()) -> SurpriseView:
        """The surprise over a strip of rows (the whole grid by default), the channels ``live``
        (being coded in this strip) read as if the strip were the whole grid."""
        return SurpriseView(self._planes, rows or (0, self.h), self.w, live)


class SurpriseView:
    """The surprise planes over one strip of a level's grid (padded by edge replication)."""

    def __init__(self, planes: dict[int, np.ndarray], rows: tuple[int, int], w: int, live: frozenset[int]) -> None:
        self._planes, self.rows, self._live = planes, rows, live
        self.h, self.w = rows[1] - rows[0], w
        self._cache: dict[int, np.ndarray] = {}

    def at(self, ch: int, di: int = 0, dj: int = 0) -> np.ndarray:
        """Channel ``ch``'s surprise (h, w) at a grid offset."""
        if ch not in self._cache:
            self._cache[ch] = window(self._planes[ch], self.rows, _PAD, ch in self._live)
        p = self._cache[ch]
        return p[_PAD + di : _PAD + di + self.h, _PAD + dj : _PAD + dj + self.w]

    def feature(self, f: ScaleFeature, channels: int, phase: int, trunk: np.ndarray | None = None) -> np.ndarray:
        """The (h, w) values of one feature of a channel of ``phase``: integers, or for the
        channel's ``trunk`` features (F, h, w, in units of 1/16) multiples of 1/16."""
        if f.kind == "bias":
            return np.ones((self.h, self.w), dtype=np.int16)
        if f.kind == "trunk":
            assert trunk is not None
            return trunk[f.colour].astype(np.float64) / TRUNK_UNITS
        if f.kind == "cross":
            return self.at(phase * channels + f.colour)
        ch = f.source * channels + f.colour
        return sum(self.at(ch, di, dj) for di, dj in NEAR[phase][f.source])  # type: ignore[return-value]


class ScaleContext:
    """The scale features of one channel at its valid positions (what the calibration callback is given)."""

    def __init__(self, planes: SurpriseView, feats: tuple[ScaleFeature, ...], channels: int, phase: int,
                 flat: np.ndarray, trunk: np.ndarray | None = None) -> None:
        self.planes, self.feats, self.channels, self.phase, self.flat = planes, feats, channels, phase, flat
        self.trunk = trunk  # (F, h, w) float32 integers in units of 1/16 (``snap``), or None
        self._shift: tuple[tuple[int, ...], np.ndarray] | None = None

    @property
    def count(self) -> int:
        return len(self.feats)

    def _feature(self, f: ScaleFeature) -> np.ndarray:
        return self.planes.feature(f, self.channels, self.phase, self.trunk)

    def sample(self, positions: np.ndarray) -> np.ndarray:
        """Features (K, n) as float64 at these positions (indices into the channel's valid positions)."""
        idx = self.flat[positions]
        trunk = None if self.trunk is None else self.trunk.reshape(self.trunk.shape[0], -1)[:, idx]  # (F, n) only
        return np.stack([
            trunk[f.colour].astype(np.float64) / TRUNK_UNITS if f.kind == "trunk" else self._feature(f).reshape(-1)[idx]
            for f in self.feats
        ]).astype(np.float64)

    def shift(self, weights: tuple[int, ...]) -> np.ndarray:
        """The per-position shift of the scale exponent (int, (h, w)): floor(sum_k a_k f_k / 64 + 1/2).

        Exact in any order: the trunk's part is one float32 matrix product of integers (at
        most 32 * 1024 * 128 < 2^24 in size) divided by 16, the rest small integers in
        float64. The encoder asks twice for the same weights (to fit the exponents, then to
        code); the last result is kept.
        """
        weights = tuple(int(a) for a in weights)
        if self._shift is not None and self._shift[0] == weights:
            return self._shift[1]
        total = np.zeros((self.planes.h, self.planes.w), dtype=np.float64)
        trunk_w = np.zeros(0 if self.trunk is None else self.trunk.shape[0], dtype=np.float32)
        for f, a in zip(self.feats, weights):
            if f.kind == "trunk":
                trunk_w[f.colour] = a
            elif a:
                total += float(a) * self._feature(f)
        if trunk_w.any():
            # torch, not numpy's BLAS, whose idle threads would compete with the network's
            dot = torch.tensordot(torch.from_numpy(trunk_w), torch.from_numpy(self.trunk), dims=1)
            total += dot.numpy().astype(np.float64) / TRUNK_UNITS
        out = np.floor((total + WEIGHT_DENOM / 2) / WEIGHT_DENOM).astype(np.int64)
        self._shift = (weights, out)
        return out


def shift_of(feats: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``ScaleContext.shift`` for features (K, n) already sampled (an encoder's estimate: a matrix
    product need not add in the same order, but the fit only ranks candidates with it)."""
    total = (torch.from_numpy(weights.astype(np.float64)) @ torch.from_numpy(np.ascontiguousarray(feats))).numpy()
    return np.floor((total + WEIGHT_DENOM / 2) / WEIGHT_DENOM).astype(np.int64)


def fit(feats: np.ndarray, x: np.ndarray, mean: np.ndarray, scale: np.ndarray, step: int = 1) -> np.ndarray:
    """Integer weights (K,) that minimise the Laplace code length with scale * 2^(shift / 8), approximately.

    feats: (K, n) features; x, mean, scale: (n,) the values and their (refined) prediction.
    Each value's code length depends on the weights only through its own log-scale
    offset eta_i = (w . f_i) ln2 / 8, so the Hessian is ``A diag(h) A^T`` with h_i the
    second derivative in eta_i: damped Newton steps with a backtracking line search,
    then rounded to the weight grid.
    """
    k = feats.shape[0]
    if k == 0 or x.size < 8 * k:
        return np.zeros(k, dtype=np.int32)
    a = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float64)) * (float(np.log(2.0)) / 8)  # (K, n)
    xs, ms, ss = (torch.from_numpy(np.asarray(v, dtype=np.float64)) / step for v in (x, mean, scale))

    def bits(eta: torch.Tensor) -> torch.Tensor:
        return laplace_bits(xs, ms, ss * torch.exp(eta))

    w = torch.zeros(k, dtype=torch.float64)
    eye = torch.eye(k, dtype=torch.float64)
    loss = float(bits(w @ a).sum())
    for _ in range(FIT_ITERATIONS):
        with torch.enable_grad():  # the codec runs under no_grad
            eta = (w @ a).requires_grad_(True)
            (g,) = torch.autograd.grad(bits(eta).sum(), eta, create_graph=True)
            (h,) = torch.autograd.grad(g.sum(), eta)
        g, h = g.detach(), h.clamp_min(1e-3)
        hess = (a * h) @ a.T
        step_w = torch.linalg.solve(hess + 1e-6 * torch.trace(hess) / k * eye, a @ g)
        t = 1.0
        while t > 1e-3:
            cand = w - t * step_w
            new = float(bits(cand @ a).sum())
            if new < loss:
                break
            t /= 2
        else:
            break
        converged = loss - new < 1e-4 * loss
        w, loss = cand, new
        if converged:
            break
    out = torch.nan_to_num(w * WEIGHT_DENOM).numpy()
    return np.clip(np.rint(out), -WEIGHT_BOUND, WEIGHT_BOUND).astype(np.int32)


def write(enc: LevelEncoder, weights: list[tuple[int, ...]]) -> None:
    """Code one round's weights: a flag per channel (weights sent or not), then the weights sent."""
    enc.encode_weight_sets(weights, WEIGHT_BOUND, WEIGHT_PRIOR)


def read(dec: LevelDecoder, counts: list[int]) -> list[tuple[int, ...]]:
    """Read what ``write`` coded for channels with ``counts`` features each."""
    return dec.decode_weight_sets(counts, WEIGHT_BOUND, WEIGHT_PRIOR)
