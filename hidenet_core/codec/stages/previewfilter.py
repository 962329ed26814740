"""Per-image preview filter (format version 5): a better guess for levels not yet received.

A level is shown as a *prediction* in two places: the progressive preview (the viewer
shows the full-size image predicted from the last level that arrived) and the
generative levels of a stream (no residual is sent; the decoder keeps the predicted
means). Both show the network's mean rounded. That mean is trained for code length on
15 images; on a given image a least-squares filter fitted to its true odd pixels does
better (measured on val: +0.44 dB at level 0 and about +0.4 dB at levels 1 to 3 over
the network alone, +2 dB on the illustration kay; `docs/training.md`).

So the encoder fits, per predicted level and odd channel, integer weights (1/256
units, -1024..1024) on the same-colour decoded neighbours of ``linear.features``:

    mean' = mean + sum_k (a_k / 256) * (neighbour_k - mean)

where, as in the preview itself, odd channels of earlier coding steps count as decoded
with their *previewed* values. The sum is exact in float64 (``linear.weighted_sum``),
so the decoder's generative levels rebuild bit for bit (the chunk CRC checks it).

The filter of level k travels at the end of chunk k + 1: when level k + 1 is complete,
the viewer can already preview level k with it. Only levels with at least 1024 (32 x 32)
positions carry one (``FormatVersion.carries_filter``): a quarter of what calibration
needs, because these coarse levels are what the viewer shows from the first few
kilobytes (measured on the samples: +0.2 dB at 2 to 8 KB against a threshold of 4096,
for 0.04% of the lossless size). A channel's weights are sent only where they lower its
squared error (a flag says whether they were).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..entropy import LevelDecoder, LevelEncoder
from . import calibration, linear
from .linear import ChannelFeatures, Feature

__all__ = ["FIT_VALUES", "FilterFn", "features", "counts", "fit_weights", "Fitter", "applier", "write", "read"]

#: the encoder fits each channel on at most this many values (a random subsample)
FIT_VALUES = 1 << 15

#: what ``loop.predict_level`` asks, per odd channel of a predicted level: the weights
#: (one per feature; all zero = the plain mean) given the channel's features
FilterFn = Callable[[int, ChannelFeatures], tuple[int, ...]]


def features(channels: int, ch: int, known: frozenset[int]) -> tuple[Feature, ...]:
    """The filter's features of odd channel ``ch``: its same-colour neighbours among the even
    pixels and the odd channels ``known`` (previewed in earlier steps)."""
    return tuple(f for f in linear.features(channels, ch, known) if f.kind == "own")


def counts(channels: int, steps: Sequence[Sequence[int]]) -> list[int]:
    """The number of features of each odd channel 0 .. 3C-1 when a level is previewed in ``steps``."""
    out = [0] * (3 * channels)
    known: set[int] = set()
    for step in steps:
        for ch in step:
            out[ch] = len(features(channels, ch, frozenset(known)))
        known.update(step)
    return out


def fit_weights(cf: ChannelFeatures, truth: np.ndarray) -> tuple[int, ...]:
    """Integer weights minimising the squared error of ``cf``'s channel against ``truth``
    ((h, w) uint8) on a subsample, or all zero where they do not lower the rounded
    preview's squared error over the whole channel."""
    k = cf.count
    flat = cf.flat
    if k == 0 or flat.size < 4 * k:
        return (0,) * k
    pos = calibration.subsample(flat.size, FIT_VALUES)
    # torch rather than numpy's BLAS: it keeps to the thread count the codec was given
    a = torch.from_numpy(np.ascontiguousarray(cf.sample(pos)))  # (K, n) float64
    y = torch.from_numpy(truth.reshape(-1)[flat[pos]].astype(np.float64) - cf.mean.reshape(-1)[flat[pos]])
    gram = a @ a.T
    ridge = 1e-3 * torch.trace(gram) / k + 1e-9
    w = torch.linalg.solve(gram + ridge * torch.eye(k, dtype=torch.float64), a @ y).numpy()
    weights = np.clip(np.round(w * linear.WEIGHT_DENOM), -linear.WEIGHT_BOUND, linear.WEIGHT_BOUND).astype(np.int64)
    if not weights.any():
        return (0,) * k
    weights_t = tuple(int(a) for a in weights)
    x = truth.reshape(-1)[flat].astype(np.float64)
    plain = np.clip(np.round(cf.mean.reshape(-1)[flat]), 0, 255)
    filtered = np.clip(np.round(cf.mean.reshape(-1)[flat] + cf.refinement(weights_t).reshape(-1)[flat]), 0, 255)
    if ((filtered - x) ** 2).sum() >= ((plain - x) ** 2).sum():
        return (0,) * k
    return weights_t


class Fitter:
    """The encoder's ``FilterFn``: fits each channel to the true odd values (3C, h, w) and records it."""

    def __init__(self, odd_true: np.ndarray) -> None:
        self.odd_true = odd_true
        self.weights: dict[int, tuple[int, ...]] = {}
        self.calls = 0  # more than one per channel: the level was predicted strip by strip, each fitted anew

    def __call__(self, ch: int, cf: ChannelFeatures) -> tuple[int, ...]:
        self.calls += 1
        self.weights[ch] = fit_weights(cf, self.odd_true[ch])
        return self.weights[ch]

    def ordered(self) -> list[tuple[int, ...]]:
        """The weights in channel order 0 .. 3C-1 (what the stream carries)."""
        return [self.weights[ch] for ch in sorted(self.weights)]


def applier(weights: Sequence[tuple[int, ...]]) -> FilterFn:
    """The decoder's ``FilterFn``: the weights read from the stream, in channel order."""

    def apply(ch: int, cf: ChannelFeatures) -> tuple[int, ...]:
        if len(weights[ch]) != cf.count:  # a bug, not a bad stream: read() sized them with counts()
            raise AssertionError(f"channel {ch}: {len(weights[ch])} preview weights for {cf.count} features")
        return weights[ch]

    return apply


def write(enc: LevelEncoder, weights: list[tuple[int, ...]]) -> None:
    """Code a level's filter: a flag per odd channel, then the weights sent."""
    enc.encode_weight_sets(weights, linear.WEIGHT_BOUND, linear.WEIGHT_PRIOR)


def read(dec: LevelDecoder, counts_: list[int]) -> list[tuple[int, ...]]:
    """Read what ``write`` coded for channels with ``counts_`` features each."""
    return dec.decode_weight_sets(counts_, linear.WEIGHT_BOUND, linear.WEIGHT_PRIOR)
