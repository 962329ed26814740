"""Reconstruct one pyramid level from the next coarser one: the closed loop's core.

The encoder and the decoder run exactly this code; they differ only in the ``code``
callback, which for the encoder codes the true odd values and returns their
reconstruction and for the decoder reads them from the stream. ``code=None`` is a
generative level: every odd value is the predicted mean, in version 5 refined by the
level's preview filter (``previewfilter.py``).

With a ``calibrate`` callback (version-2 and -3 streams) a level with enough positions
is calibrated (``calibration.py``): each step is coded in rounds (``calibration.rounds``:
the channels without a parent and then those with one; in version 3 per phase), and
before each round's values ``calibrate`` gives (encoder: fits and codes; decoder:
reads) the parameters of its channels. With ``linear_prediction=True`` (version 3) the
calibration includes each channel's linear prediction from what is already decoded
(``linear.py``), and with ``scale_context=True`` too (version 4) a correction of its
scale from the surprise of what is already decoded (``scalecontext.py``).
"""

from __future__ import annotations

import zlib
from typing import Callable, Protocol

import numpy as np
import torch

from . import calibration, linear, previewfilter, scalecontext
from .calibration import ChannelParams
from .linear import ChannelFeatures
from .previewfilter import FilterFn
from .scalecontext import ScaleContext
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
                 parent_resid: list[np.ndarray | None], features: list[ChannelFeatures] | None,
                 contexts: list[ScaleContext] | None) -> list[ChannelParams]:
        """The calibration of each of ``channels`` (one round of a step).

        Per channel, at its valid positions (1-D): ``x_index`` the flat indices into the
        level's (h, w) grid, the snapped mean and scale, the parent's residual (None
        without a parent), with linear prediction its features and with a scale context
        its scale features (else None). The encoder fits and codes the parameters, the
        decoder reads them.
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
    scale_context: bool = False,
    preview_filter: FilterFn | None = None,
) -> np.ndarray:
    """The (C, H, W) uint8 level ``level`` from its reconstructed even image (C, h, w).

    ``preview_filter`` (only with ``code=None``, a predicted level) gives each odd
    channel's preview-filter weights (``previewfilter.py``), applied to its mean.
    """
    c, h, w = even.shape
    height, width = size
    valid = odd_valid_mask(height, width, c)  # (3C, h, w)
    even_t = to_tensor(even)  # (1, C, h, w)
    odd_t = torch.zeros((1, 3 * c, h, w))  # (1, 3C, h, w)
    odd = np.zeros((3 * c, h, w), dtype=np.uint8)
    calibrating = code is not None and calibrate is not None and calibration.calibrated(h, w)
    state = _LevelState(even, odd, scale_context) if calibrating and linear_prediction else None
    if code is None and preview_filter is not None:
        _predict_filtered(predictor, even, even_t, odd_t, odd, valid, level, preview_filter)
        return merge(even, odd, (height, width))
    for step, channels in enumerate(predictor.steps(c)):
        idx = list(channels)
        pred = predictor(even_t, odd_t, step, level)
        pred = snap(pred if state is not None and state.surprise is not None else pred._replace(context=None))
        means = pred.mean[0].numpy()  # (k, h, w)
        scales = pred.scale[0].numpy()
        trunk = None if pred.context is None else pred.context[0].numpy()  # (k, F, h, w)
        if not calibrating:
            _code_values(idx, means, scales, valid, odd, odd_t, code)
            continue
        if state is not None:
            state.net_means[idx] = means
        par = calibration.parents(c, tuple(idx))
        for rnd in calibration.rounds(c, tuple(idx), by_phase=state is not None):
            _code_round(rnd, idx, par, valid, means, scales, trunk, odd, odd_t, code, calibrate, state)
    return merge(even, odd, (height, width))


def _predict_filtered(predictor: Predictor, even: np.ndarray, even_t: torch.Tensor, odd_t: torch.Tensor, odd: np.ndarray,
                      valid: np.ndarray, level: int, preview_filter: FilterFn) -> None:
    """Predict every odd value of a level, each channel's mean refined by its preview filter;
    odd channels of earlier steps count as decoded with their predicted values."""
    c = even.shape[0]
    planes = linear.Planes(even, odd, np.zeros(odd.shape, dtype=np.float32))  # 'own' features never read the means
    known: set[int] = set()
    for step, channels in enumerate(predictor.steps(c)):
        idx = list(channels)
        means = snap(predictor(even_t, odd_t, step, level)._replace(context=None)).mean[0].numpy().astype(np.float64)
        for j, ch in enumerate(idx):
            cf = ChannelFeatures(planes, previewfilter.features(c, ch, frozenset(known)), ch // c, means[j],
                                 np.flatnonzero(valid[ch]))
            weights = preview_filter(ch, cf)
            if any(weights):
                means[j] = means[j] + cf.refinement(weights)
        _code_values(idx, means, None, valid, odd, odd_t, None)
        known.update(idx)


class _LevelState:
    """The per-image stages' state over one level: the linear prediction's planes, the
    surprise of what is decoded (with a scale context) and the channels decoded so far."""

    def __init__(self, even: np.ndarray, odd: np.ndarray, scale_context: bool) -> None:
        self.channels = even.shape[0]
        self.net_means = np.zeros(odd.shape, dtype=np.float32)
        self.planes = linear.Planes(even, odd, self.net_means)
        self.surprise = scalecontext.SurprisePlanes(*even.shape[1:]) if scale_context else None
        self.known: set[int] = set()

    def features(self, ch: int, mean: np.ndarray, flat: np.ndarray) -> ChannelFeatures:
        feats = linear.features(self.channels, ch, frozenset(self.known))
        return ChannelFeatures(self.planes, feats, ch // self.channels, mean, flat)

    def context(self, ch: int, flat: np.ndarray, trunk: np.ndarray | None) -> ScaleContext | None:
        if self.surprise is None:
            return None
        feats = scalecontext.features(self.channels, ch, frozenset(self.known), 0 if trunk is None else trunk.shape[0])
        return ScaleContext(self.surprise, feats, self.channels, ch // self.channels, flat, trunk)

    def decoded(self, ch: int, values: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> None:
        """Record that ``ch`` is decoded, with the (h, w) mean and scale it was coded with."""
        if self.surprise is not None:
            self.surprise.add(ch, scalecontext.surprise(values, mean, scale))
        self.known.add(ch)


def _code_values(chans, means, scales, valid, odd, odd_t, code) -> None:
    """Code (or, with ``code=None``, predict) the odd channels ``chans`` given their (k, h, w) means and scales."""
    vals = np.clip(np.round(means), 0, 255).astype(np.uint8)
    if code is not None:
        v = valid[chans]
        vals[v] = code(chans, v, means[v], scales[v])
    odd[chans] = vals
    odd_t[0, chans] = torch.from_numpy(vals).float()


def _code_round(rnd, idx, par, valid, means, scales, trunk, odd, odd_t, code, calibrate, state: _LevelState | None) -> None:
    """Calibrate and code the channels at positions ``rnd`` of a step, one channel at a time."""
    chans = [idx[j] for j in rnd]
    flat = [np.flatnonzero(valid[ch]) for ch in chans]
    resid = [None if par[j] < 0 else odd[idx[par[j]]].astype(np.float64) - means[par[j]] for j in rnd]
    feats = None if state is None else [state.features(ch, means[j], f) for j, ch, f in zip(rnd, chans, flat)]
    contexts = None if state is None or state.surprise is None else [
        state.context(ch, f, None if trunk is None else trunk[j]) for j, ch, f in zip(rnd, chans, flat)]
    params = calibrate(
        chans, flat,
        [means[j].reshape(-1)[f] for j, f in zip(rnd, flat)],
        [scales[j].reshape(-1)[f] for j, f in zip(rnd, flat)],
        [None if r is None else r.reshape(-1)[f] for r, f in zip(resid, flat)],
        feats,
        contexts,
    )
    coded = []
    for n, (j, ch, p, r) in enumerate(zip(rnd, chans, params, resid)):
        refinement = None if feats is None or not any(p.linear) else feats[n].refinement(p.linear)
        shift = None if contexts is None or not any(p.context) else contexts[n].shift(p.context)
        mean, scale = calibration.apply(means[j], scales[j], p, r, refinement, shift)  # (h, w) each
        _code_values([ch], mean[None], scale[None], valid, odd, odd_t, code)
        coded.append((ch, mean, scale))
    if state is not None:  # known only once the whole round is coded: its channels' features do not see each other
        for ch, mean, scale in coded:
            state.decoded(ch, odd[ch], mean, scale)
