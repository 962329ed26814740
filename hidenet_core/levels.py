"""Reconstruct one pyramid level from the next coarser one: the closed loop's core.

The encoder and the decoder run exactly this code; they differ only in the ``code``
callback, which for the encoder codes the true odd values and returns their
reconstruction and for the decoder reads them from the stream. ``code=None`` is a
generative level: every odd value is the predicted mean.

With a ``calibrate`` callback (version-2 and -3 streams) a level with enough positions
is calibrated (``calibration.py``): each step is coded in rounds (``calibration.rounds``:
the channels without a parent and then those with one; in version 3 per phase), and
before each round's values ``calibrate`` gives (encoder: fits and codes; decoder:
reads) the parameters of its channels. With ``linear_prediction=True`` (version 3) the
calibration includes each channel's linear prediction from what is already decoded
(``linear.py``).
"""

from __future__ import annotations

import zlib
from typing import Callable, Protocol

import numpy as np
import torch

from . import calibration, linear
from .calibration import ChannelParams
from .linear import ChannelFeatures
from .predictors.base import Predictor, snap
from .pyramid import merge, odd_valid_mask

__all__ = ["CodeFn", "CalibrateFn", "reconstruct_level", "level_crc", "to_tensor"]


class CodeFn(Protocol):
    def __call__(self, channels: list[int], valid: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Values (uint8, 1-D) of ``channels`` at ``valid`` positions, given their prediction.

        channels: odd channel indices of this step; valid: bool (k, h, w);
        mean, scale: float32 arrays of the valid values, in the order of ``valid``.
        """
        ...


class CalibrateFn(Protocol):
    def __call__(self, channels: list[int], x_index: list[np.ndarray], mean: list[np.ndarray], scale: list[np.ndarray],
                 parent_resid: list[np.ndarray | None], features: list[ChannelFeatures] | None) -> list[ChannelParams]:
        """The calibration of each of ``channels`` (one round of a step).

        Per channel, at its valid positions (1-D): ``x_index`` the flat indices into the
        level's (h, w) grid, the snapped mean and scale, the parent's residual (None
        without a parent) and, with linear prediction, its features (else None). The
        encoder fits and codes the parameters, the decoder reads them.
        """
        ...


def to_tensor(image_chw: np.ndarray) -> torch.Tensor:
    """A (1, C, h, w) float32 tensor in pixel units from a (C, h, w) uint8 array."""
    return torch.from_numpy(np.ascontiguousarray(image_chw)).float().unsqueeze(0)


def level_crc(image_chw: np.ndarray) -> int:
    """CRC-32 of a reconstructed level's bytes (C, H, W order)."""
    return zlib.crc32(np.ascontiguousarray(image_chw, dtype=np.uint8).tobytes())


@torch.no_grad()
def reconstruct_level(
    predictor: Predictor,
    even: np.ndarray,
    size: tuple[int, int],
    level: int,
    code: CodeFn | Callable[..., np.ndarray] | None,
    calibrate: CalibrateFn | Callable[..., list[ChannelParams]] | None = None,
    linear_prediction: bool = False,
) -> np.ndarray:
    """The (C, H, W) uint8 level ``level`` from its reconstructed even image (C, h, w)."""
    c, h, w = even.shape
    height, width = size
    valid = odd_valid_mask(height, width, c)  # (3C, h, w)
    even_t = to_tensor(even)  # (1, C, h, w)
    odd_t = torch.zeros((1, 3 * c, h, w))  # (1, 3C, h, w)
    odd = np.zeros((3 * c, h, w), dtype=np.uint8)
    calibrating = code is not None and calibrate is not None and calibration.calibrated(h, w)
    lin = _Linear(even, odd) if calibrating and linear_prediction else None
    for step, channels in enumerate(predictor.steps(c)):
        idx = list(channels)
        pred = snap(predictor(even_t, odd_t, step, level))
        means = pred.mean[0].numpy()  # (k, h, w)
        scales = pred.scale[0].numpy()
        if not calibrating:
            _code_values(idx, means, scales, valid, odd, odd_t, code)
            continue
        if lin is not None:
            lin.net_means[idx] = means
        par = calibration.parents(c, tuple(idx))
        for rnd in calibration.rounds(c, tuple(idx), by_phase=lin is not None):
            _code_round(rnd, idx, par, valid, means, scales, odd, odd_t, code, calibrate, lin)
    return merge(even, odd, (height, width))


class _Linear:
    """The linear prediction's state over one level: its planes and the channels decoded so far."""

    def __init__(self, even: np.ndarray, odd: np.ndarray) -> None:
        self.channels = even.shape[0]
        self.net_means = np.zeros(odd.shape, dtype=np.float32)
        self.planes = linear.Planes(even, odd, self.net_means)
        self.known: set[int] = set()

    def features(self, ch: int, mean: np.ndarray, flat: np.ndarray) -> ChannelFeatures:
        feats = linear.features(self.channels, ch, frozenset(self.known))
        return ChannelFeatures(self.planes, feats, ch // self.channels, mean, flat)


def _code_values(chans, means, scales, valid, odd, odd_t, code) -> None:
    """Code (or, with ``code=None``, predict) the odd channels ``chans`` given their (k, h, w) means and scales."""
    vals = np.clip(np.round(means), 0, 255).astype(np.uint8)
    if code is not None:
        v = valid[chans]
        vals[v] = code(chans, v, means[v], scales[v])
    odd[chans] = vals
    odd_t[0, chans] = torch.from_numpy(vals).float()


def _code_round(rnd, idx, par, valid, means, scales, odd, odd_t, code, calibrate, lin: _Linear | None) -> None:
    """Calibrate and code the channels at positions ``rnd`` of a step, one channel at a time."""
    chans = [idx[j] for j in rnd]
    flat = [np.flatnonzero(valid[ch]) for ch in chans]
    resid = [None if par[j] < 0 else odd[idx[par[j]]].astype(np.float64) - means[par[j]] for j in rnd]
    feats = None if lin is None else [lin.features(ch, means[j], f) for j, ch, f in zip(rnd, chans, flat)]
    params = calibrate(
        chans, flat,
        [means[j].reshape(-1)[f] for j, f in zip(rnd, flat)],
        [scales[j].reshape(-1)[f] for j, f in zip(rnd, flat)],
        [None if r is None else r.reshape(-1)[f] for r, f in zip(resid, flat)],
        feats,
    )
    for n, (j, ch, p, r) in enumerate(zip(rnd, chans, params, resid)):
        refinement = None if feats is None or not any(p.linear) else feats[n].refinement(p.linear)
        mean, scale = calibration.apply(means[j], scales[j], p, r, refinement)  # (h, w) each
        _code_values([ch], mean[None], scale[None], valid, odd, odd_t, code)
    if lin is not None:
        lin.known.update(chans)
