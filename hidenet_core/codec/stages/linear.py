"""Per-image linear prediction: a least-squares refinement of the network's mean.

The network's weights are fixed; its mean carries what 15 training images taught it.
Every image also has structure of its own: above all, how its colour channels share
detail. In photographs that went through JPEG (chroma subsampled) red, green and blue
have almost the same fine detail, and the residuals of the three after a spatial
filter correlate at 0.99. A version-3 stream (docs/format.md) therefore refines the
mean of each odd channel of a calibrated level with a linear predictor that the
encoder fits to this image (as MRP and TMW do, but on top of a learned prediction):

    mean' = mean + sum_k (a_k / 256) * f_k

with integer weights ``a_k`` in -1024..1024, coded in the stream, and features ``f_k``
that both sides compute from what is already decoded:

* **same colour** (12, or 16 for phase (1,0)): each of the nearest decoded neighbours of
  the same colour minus ``mean`` (the even pixels, for phases (0,1) and (1,0) the
  diagonal phase, and for phase (1,0) phase (0,1), which version 3 codes before it);
* **cross colour** (one more per colour already decoded at this position: green for
  red, green and red for blue): that colour's value here minus its value at each of
  the same neighbours (its fine detail, which this colour shares), and its residual
  (value minus its network mean).

Features are integers or multiples of 1/64, weights multiples of 1/256, so every
product and sum is exact in float64 and both sides compute the same mean bit for bit.
The encoder fits the weights by iteratively reweighted least squares (an L1 fit, the
Laplace's own criterion) on a subsample, and keeps them only where the bits they save
exceed what they cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ..compiled import jit
from ..entropy import LevelDecoder, LevelEncoder
from ..pyramid import window

__all__ = [
    "WEIGHT_DENOM",
    "WEIGHT_BOUND",
    "NEIGHBOURS",
    "Feature",
    "cross_colours",
    "mean_readers",
    "Planes",
    "ChannelFeatures",
    "features",
    "weighted_sum",
    "sample",
    "fit",
    "write",
    "read",
    "max_features",
    "warm_up",
]

WEIGHT_DENOM = 256
#: network means given as uint16 planes are in units of 1/MEAN_UNITS (the codec's snapped grid)
MEAN_UNITS = 64
WEIGHT_BOUND = 1024  # a_k in -1024..1024: weights in -4..4
#: the encoder fits on at most this many values per channel (a random subsample)
FIT_VALUES = 1 << 15
#: scale of the Laplace prior the weights are coded with (in units of 1/256)
WEIGHT_PRIOR = 24.0
#: what the encoder assumes one weight costs when it decides whether to send them (bits)
WEIGHT_COST_BITS = 9.0

#: a neighbour's source: the even image, or the odd plane of a phase (0: (0,1), 2: (1,1))
_EVEN, _P01, _DIAG = -1, 0, 2
#: per phase (0: (0,1), 1: (1,0), 2: (1,1)), the nearest neighbours of the same colour
#: that can be decoded before it, nearest first: (source, di, dj) on the level's (h, w)
#: grid. Phase (1,0)'s last four are phase (0,1) pixels, decoded before it in version 3.
NEIGHBOURS: dict[int, tuple[tuple[int, int, int], ...]] = {
    0: ((_EVEN, 0, 0), (_EVEN, 0, 1), (_EVEN, -1, 0), (_EVEN, -1, 1), (_EVEN, 1, 0), (_EVEN, 1, 1),
        (_DIAG, -1, 0), (_DIAG, 0, 0), (_DIAG, -1, -1), (_DIAG, -1, 1), (_DIAG, 0, -1), (_DIAG, 0, 1)),
    1: ((_EVEN, 0, 0), (_EVEN, 1, 0), (_EVEN, 0, -1), (_EVEN, 1, -1), (_EVEN, 0, 1), (_EVEN, 1, 1),
        (_DIAG, 0, -1), (_DIAG, 0, 0), (_DIAG, -1, -1), (_DIAG, 1, -1), (_DIAG, -1, 0), (_DIAG, 1, 0),
        (_P01, 0, -1), (_P01, 0, 0), (_P01, 1, -1), (_P01, 1, 0)),
    2: ((_EVEN, 0, 0), (_EVEN, 0, 1), (_EVEN, 1, 0), (_EVEN, 1, 1), (_EVEN, 0, -1), (_EVEN, 0, 2),
        (_EVEN, 1, -1), (_EVEN, 1, 2), (_EVEN, -1, 0), (_EVEN, -1, 1), (_EVEN, 2, 0), (_EVEN, 2, 1)),
}
_PAD = 2  # the largest |offset| above


@dataclass(frozen=True)
class Feature:
    """One feature of a channel: ``kind`` 'own' (neighbour - mean), 'detail' (value here - value
    at the neighbour, of colour ``colour``) or 'resid' (value - network mean, of ``colour``)."""

    kind: str
    colour: int
    source: int = _EVEN  # for 'own' and 'detail': -1 (the even image) or the phase of an odd plane
    di: int = 0
    dj: int = 0


def cross_colours(channels: int, colour: int) -> tuple[int, ...]:
    """Colours decoded before ``colour`` at the same position, whose values its features may use
    (RGB and RGBA only: green for red; green and red for blue)."""
    if channels < 3:
        return ()
    return {0: (1,), 2: (1, 0)}.get(colour, ())


def features(channels: int, ch: int, known: frozenset[int]) -> tuple[Feature, ...]:
    """The features of odd channel ``ch`` given the odd channels ``known`` (decoded before it)."""
    phase, colour = divmod(ch, channels)

    def neighbours(c: int) -> list[tuple[int, int, int]]:
        return [nb for nb in NEIGHBOURS[phase] if nb[0] == _EVEN or nb[0] * channels + c in known]

    out = [Feature("own", colour, *nb) for nb in neighbours(colour)]
    for c in cross_colours(channels, colour):
        if phase * channels + c in known:
            out += [Feature("detail", c, *nb) for nb in neighbours(c)]
            out.append(Feature("resid", c))
    return tuple(out)


def mean_readers(channels: int) -> dict[int, frozenset[int]]:
    """Each odd channel whose network mean a feature reads (a cross colour's 'resid'), with the
    channels whose features read it (those of later colours at the same phase)."""
    readers: dict[int, set[int]] = {}
    for ch in range(3 * channels):
        phase, colour = divmod(ch, channels)
        for c in cross_colours(channels, colour):
            readers.setdefault(phase * channels + c, set()).add(ch)
    return {ch: frozenset(r) for ch, r in readers.items()}


def max_features(channels: int) -> int:
    """The most features any channel can have (what the decoder bounds a payload with)."""
    most = max(len(nbs) for nbs in NEIGHBOURS.values())
    return most * (1 + 2) + 2 if channels >= 3 else most


class Planes:
    """What features are computed from: the level's even and odd values and the network means,
    over a strip of rows of the level's grid (the whole grid by default).

    Outside the grid a plane reads as its nearest edge value; the odd channels ``live`` (those
    being coded in this strip) read as if the strip were the whole grid (``pyramid.window``).
    """

    def __init__(self, even: np.ndarray, odd: np.ndarray, net_means: np.ndarray | Mapping[int, np.ndarray] | None,
                 rows: tuple[int, int] | None = None, live: frozenset[int] = frozenset()) -> None:
        self.channels = even.shape[0]
        self.rows = rows or (0, even.shape[1])
        self.h, self.w = self.rows[1] - self.rows[0], even.shape[2]
        self._even = window(even, self.rows, _PAD)
        self._odd = odd
        self._net = net_means
        self._live = live
        self._odd_padded: np.ndarray | None = None  # (3C, h + 2 _PAD, w + 2 _PAD): the padded odd planes ...
        self._odd_filled: set[int] = set()  # ... of these channels, filled when first asked for
        self._float_cache: dict[tuple[bool, int], np.ndarray] = {}  # odd planes and network means as float64

    def _padded(self, source: int, colour: int) -> np.ndarray:
        """A colour's plane over the strip, padded by ``_PAD`` (edges replicated)."""
        if source == _EVEN:
            return self._even[colour]
        return self._all_odd(source * self.channels + colour)[source * self.channels + colour]

    def _all_odd(self, *channels: int) -> np.ndarray:
        """The padded odd planes (3C, h + 2 _PAD, w + 2 _PAD), those of ``channels`` filled (only
        asked for once decoded, so never stale); the others unfilled (their pages never touched)."""
        if self._odd_padded is None:
            self._odd_padded = np.empty((self._odd.shape[0], self.h + 2 * _PAD, self.w + 2 * _PAD), self._odd.dtype)
        for ch in channels:
            if ch not in self._odd_filled:
                self._odd_padded[ch] = window(self._odd[ch], self.rows, _PAD, ch in self._live)
                self._odd_filled.add(ch)
        return self._odd_padded

    def neighbour(self, source: int, colour: int, di: int, dj: int) -> np.ndarray:
        """Values (h, w) of a colour at a grid offset (edges replicated)."""
        return self._padded(source, colour)[_PAD + di : _PAD + di + self.h, _PAD + dj : _PAD + dj + self.w]

    def feature_at(self, f: Feature, phase: int, mean: np.ndarray, flat: np.ndarray) -> np.ndarray:
        """``feature(f, phase, mean).reshape(-1)[flat]``, computed at those positions only (the
        same arithmetic value by value): what the encoder samples its fits from."""
        i, j = np.divmod(flat, self.w)
        if f.kind == "resid":
            ch = phase * self.channels + f.colour
            return self._float(ch).reshape(-1)[flat] - self._float(ch, net=True).reshape(-1)[flat]
        nb = self._padded(f.source, f.colour)[_PAD + f.di + i, _PAD + f.dj + j]
        if f.kind == "own":
            return nb - np.asarray(mean, dtype=np.float64).reshape(-1)[flat]
        return self._float(phase * self.channels + f.colour).reshape(-1)[flat] - nb

    def _float(self, ch: int, net: bool = False) -> np.ndarray:
        """An odd channel's decoded values (or its network mean) as float64, converted once."""
        key = (net, ch)
        if key not in self._float_cache:  # only asked for once decoded, so never stale
            r0, r1 = self.rows
            if net and self._net is None:
                raise AssertionError("these planes have no network means")
            plane = (self._net if net else self._odd)[ch]
            values = plane[r0:r1].astype(np.float64)
            if net and plane.dtype == np.uint16:  # the snapped means in units of 1/64 (exact)
                values /= MEAN_UNITS
            self._float_cache[key] = values
        return self._float_cache[key]

    def feature(self, f: Feature, phase: int, mean: np.ndarray) -> np.ndarray:
        """The (h, w) float64 values of one feature of a channel of ``phase`` with snapped ``mean``."""
        if f.kind == "own":
            return self.neighbour(f.source, f.colour, f.di, f.dj) - np.asarray(mean, dtype=np.float64)
        ch = phase * self.channels + f.colour
        if f.kind == "detail":
            return self._float(ch) - self.neighbour(f.source, f.colour, f.di, f.dj)
        return self._float(ch) - self._float(ch, net=True)


def _terms(planes: Planes, feats: tuple[Feature, ...], phase: int):
    """What the compiled loops read the features ``feats`` from: the padded even and odd planes
    ((C, ...) and (3C, ...) uint8, without copies), a table with a row per feature (kind: 0 own,
    1 detail, 2 resid; the neighbour's plane, odd (1) or even (0); its channel, di, dj; the odd
    channel of the value here; which of the two network-mean planes), and those two planes
    (float64, (h, w); a dummy for a missing one). None where the loops cannot (more than two
    residuals, planes that are not uint8): the numpy definitions then."""
    if sum(f.kind == "resid" for f in feats) > 2:
        return None
    c = planes.channels
    rows = []
    nets: list[np.ndarray] = []
    for f in feats:
        odd_nb, nb = (0, f.colour) if f.source == _EVEN else (1, f.source * c + f.colour)
        if f.kind == "own":
            rows.append((0, odd_nb, nb, f.di, f.dj, 0, 0))
        elif f.kind == "detail":
            rows.append((1, odd_nb, nb, f.di, f.dj, phase * c + f.colour, 0))
        else:
            nets.append(planes._float(phase * c + f.colour, net=True))
            rows.append((2, 0, 0, 0, 0, phase * c + f.colour, len(nets) - 1))
    odd = planes._all_odd(*{r[2] for r in rows if r[1]}, *{r[5] for r in rows if r[0]})
    if planes._even.dtype != np.uint8 or odd.dtype != np.uint8:
        return None
    nets += [np.zeros((1, 1), dtype=np.float64)] * (2 - len(nets))
    return planes._even, odd, np.array(rows, dtype=np.int64).reshape(-1, 7), nets[0], nets[1]


def weighted_sum(planes: Planes, feats: tuple[Feature, ...], phase: int, mean: np.ndarray,
                 weights: tuple[int, ...]) -> np.ndarray:
    """``sum_k weights[k] / 256 * f_k`` as an exact (h, w) float64 array.

    A compiled loop (``_weighted_kernel``) computes it value by value: each feature, its product
    and the running sum as ``_weighted_sum_numpy`` (the definition, which a test compares it with)
    computes them, in the same order, so the same bits whatever the features hold, in one pass
    over the planes instead of three per feature."""
    used = tuple((f, a) for f, a in zip(feats, weights) if a)
    m = np.asarray(mean, dtype=np.float64)
    terms = _terms(planes, tuple(f for f, _ in used), phase) if m.shape == (planes.h, planes.w) else None
    if terms is None:
        return _weighted_sum_numpy(planes, feats, phase, mean, weights)
    coef = np.array([a / WEIGHT_DENOM for _, a in used], dtype=np.float64)
    out = np.empty((planes.h, planes.w), dtype=np.float64)
    _weighted_kernel(*terms, coef, np.ascontiguousarray(m), _PAD, out)
    return out


@jit
def _weighted_kernel(even, odd, table, net0, net1, coef, mean, pad, out):  # pragma: no cover - compiled
    """``_weighted_sum_numpy`` term by term: per term (a row of ``_terms``' table) the feature
    times its coefficient, added to the running sum, in one pass over the grid without
    temporaries."""
    h, w = out.shape
    out[:] = 0.0
    for k in range(table.shape[0]):
        kind, nb, di, dj, xp = table[k, 0], table[k, 2], table[k, 3], table[k, 4], table[k, 5]
        planes = odd if table[k, 1] else even
        net = net0 if table[k, 6] == 0 else net1
        c = coef[k]
        for i in range(h):
            row = out[i]
            src = planes[nb, pad + di + i, pad + dj : pad + dj + w]
            x = odd[xp, pad + i, pad : pad + w]
            if kind == 0:  # own: neighbour - mean
                m = mean[i]
                for j in range(w):
                    row[j] += (np.float64(src[j]) - m[j]) * c
            elif kind == 1:  # detail: value here - value at the neighbour
                for j in range(w):
                    row[j] += (np.float64(x[j]) - np.float64(src[j])) * c
            else:  # resid: value - network mean
                n = net[i]
                for j in range(w):
                    row[j] += (np.float64(x[j]) - n[j]) * c


def _weighted_sum_numpy(planes: Planes, feats: tuple[Feature, ...], phase: int, mean: np.ndarray,
                        weights: tuple[int, ...]) -> np.ndarray:
    """``weighted_sum`` in numpy, feature by feature: its definition."""
    total = np.zeros((planes.h, planes.w), dtype=np.float64)
    for f, a in zip(feats, weights):
        if a:
            total += planes.feature(f, phase, mean) * (a / WEIGHT_DENOM)
    return total


def sample(planes: Planes, feats: tuple[Feature, ...], phase: int, mean: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """The features (K, n) at flat grid indices ``flat`` (what the encoder fits on): each
    ``planes.feature_at`` (the definition), gathered by a compiled loop (``_sample_kernel``: the
    same subtractions, value by value)."""
    if not feats:
        return np.zeros((0, flat.size))
    m = np.asarray(mean, dtype=np.float64)
    terms = _terms(planes, feats, phase) if m.size == planes.h * planes.w else None
    if terms is None:
        return np.stack([planes.feature_at(f, phase, mean, flat) for f in feats])
    out = np.empty((len(feats), flat.size), dtype=np.float64)
    _sample_kernel(*terms, np.ascontiguousarray(m).reshape(planes.h, planes.w),
                   np.ascontiguousarray(flat, dtype=np.int64), planes.w, _PAD, out)
    return out


@jit
def _sample_kernel(even, odd, table, net0, net1, mean, flat, w, pad, out):  # pragma: no cover - compiled
    """``sample``: feature k (a row of ``_terms``' table) at grid index ``flat[n]`` into ``out[k, n]``."""
    rows = flat // w
    cols = flat - rows * w
    for k in range(table.shape[0]):
        kind, nb, di, dj, xp = table[k, 0], table[k, 2], table[k, 3], table[k, 4], table[k, 5]
        planes = odd if table[k, 1] else even
        net = net0 if table[k, 6] == 0 else net1
        dst = out[k]
        for n in range(flat.size):
            i, j = rows[n], cols[n]
            if kind == 0:  # own: neighbour - mean
                dst[n] = np.float64(planes[nb, pad + di + i, pad + dj + j]) - mean[i, j]
            elif kind == 1:  # detail: value here - value at the neighbour
                dst[n] = np.float64(odd[xp, pad + i, pad + j]) - np.float64(planes[nb, pad + di + i, pad + dj + j])
            else:  # resid: value - network mean
                dst[n] = np.float64(odd[xp, pad + i, pad + j]) - net[i, j]


class ChannelFeatures:
    """The features of one channel at its valid positions (what the calibration callback is given)."""

    def __init__(self, planes: Planes, feats: tuple[Feature, ...], phase: int, mean: np.ndarray,
                 flat: np.ndarray) -> None:
        self.planes, self.feats, self.phase, self.flat = planes, feats, phase, flat
        self.mean = mean.astype(np.float64)  # converted once for all K features
        self._refined: tuple[tuple[int, ...], np.ndarray] | None = None

    @property
    def count(self) -> int:
        return len(self.feats)

    def sample(self, positions: np.ndarray) -> np.ndarray:
        """Features (K, n) at these positions (indices into the channel's valid positions)."""
        return sample(self.planes, self.feats, self.phase, self.mean, self.flat[positions])

    def refinement(self, weights: tuple[int, ...]) -> np.ndarray:
        """``sum_k a_k / 256 f_k`` on the whole (h, w) grid (float64, exact).

        The encoder asks twice for the same weights (to fit the scale, then to code);
        the last result is kept so the sum is computed once.
        """
        weights = tuple(weights)
        if self._refined is None or self._refined[0] != weights:
            self._refined = (weights, weighted_sum(self.planes, self.feats, self.phase, self.mean, weights))
        return self._refined[1]


def fit(feats: np.ndarray, x: np.ndarray, mean: np.ndarray, scale: np.ndarray, step: int = 1,
        iterations: int = 6) -> np.ndarray:
    """Integer weights (K,) that minimise sum |x - mean - feats^T a / 256| / scale, approximately.

    feats: (K, n) features; x, mean, scale: (n,). Iteratively reweighted least squares
    with a small ridge. The residuals the weights divide by are floored at the larger
    of the quantization step (2d + 1) and the value's predicted scale: a Huber-like
    fit, quadratic where the Laplace's discretized code length is flat (measured on
    val: 0.9% smaller files than a floor of half a step).
    """
    k = feats.shape[0]
    if k == 0 or x.size < 4 * k:
        return np.zeros(k, dtype=np.int32)
    # torch rather than numpy's BLAS: it keeps to the thread count the codec was given
    a = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float64))
    y = torch.from_numpy(x.astype(np.float64) - mean.astype(np.float64))
    s = torch.from_numpy(np.maximum(scale.astype(np.float64), 1e-3))
    floor = s.clamp_min(float(step))
    w = torch.zeros(k, dtype=torch.float64)
    a32 = a.float()  # the products in float32 (twice as fast; the weights are rounded to 1/256 anyway)
    for _ in range(iterations):
        r = torch.maximum((y - w @ a).abs(), floor)
        inv = (1.0 / (s * r)).float()
        aw = a32 * inv
        gram = (aw @ a32.T).double()
        ridge = 1e-3 * torch.trace(gram) / k + 1e-9
        w = torch.linalg.solve(gram + ridge * torch.eye(k, dtype=torch.float64), (aw @ y.float()).double())
    return np.clip(np.round(w.numpy() * WEIGHT_DENOM), -WEIGHT_BOUND, WEIGHT_BOUND).astype(np.int32)


def write(enc: LevelEncoder, weights: list[tuple[int, ...]]) -> None:
    """Code one round's weights: a flag per channel (weights sent or not), then the weights sent."""
    enc.encode_weight_sets(weights, WEIGHT_BOUND, WEIGHT_PRIOR)


def read(dec: LevelDecoder, counts: list[int]) -> list[tuple[int, ...]]:
    """Read what ``write`` coded for channels with ``counts`` features each."""
    return dec.decode_weight_sets(counts, WEIGHT_BOUND, WEIGHT_PRIOR)


def warm_up() -> None:
    """Compile (or load from numba's cache) ``weighted_sum``'s and ``sample``'s loops, so that a server pays it at
    start-up, not its first viewer."""
    even, odd = np.zeros((3, 4, 4), np.uint8), np.zeros((9, 4, 4), np.uint8)
    planes = Planes(even, odd, np.zeros((9, 4, 4)))
    feats = features(3, 5, frozenset(range(9)) - {5})
    weighted_sum(planes, feats, 1, np.zeros((4, 4)), (1,) * len(feats))
    sample(planes, feats, 1, np.zeros((4, 4)), np.arange(3))
