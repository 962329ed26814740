"""Reconstruct one pyramid level from the next coarser one: the closed loop's core.

The encoder and the decoder run exactly this code (``code_level``); they differ only in
their ``LevelCoder``: the encoder's codes the true odd values and returns their
reconstruction, and fits and codes the calibration; the decoder's reads both from the
stream. ``predict_level`` is a level shown as a prediction (a generative level, a
preview): every odd value is the predicted mean, refined by the level's preview filter
(``previewfilter.py``) where it has one.

What a coded level carries is its format version's (``versions.py``): in a version with
calibration a level with enough positions is calibrated (``calibration.py``): each step
is coded in rounds (``calibration.rounds``: the channels without a parent and then those
with one, by phase where the version says so), and before each round's values the
coder's ``calibrate`` gives the parameters of its channels, including, as the version
has them, each channel's linear prediction from what is already decoded (``linear.py``)
and a correction of its scale from the surprise of what is already decoded
(``scalecontext.py``).
"""

from __future__ import annotations

import zlib
from typing import Protocol

import numpy as np
import torch

from ..predictors.base import Predictor, snap
from .pyramid import merge, odd_valid_mask
from .stages import calibration, linear, previewfilter, scalecontext
from .stages.calibration import ChannelInput, ChannelParams
from .stages.linear import ChannelFeatures
from .stages.previewfilter import FilterFn
from .stages.scalecontext import ScaleContext
from .versions import FormatVersion

__all__ = ["LevelCoder", "code_level", "predict_level", "level_crc", "to_tensor", "TOP_MEAN", "TOP_SCALE", "top_prior"]

#: prior of the single top pixel of the base's own pyramid, the first values of a stream
TOP_MEAN = 128.0
TOP_SCALE = 64.0


def top_prior(channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and scale (float32, one per channel) the top pixel is coded with."""
    return np.full(channels, TOP_MEAN, np.float32), np.full(channels, TOP_SCALE, np.float32)


class LevelCoder(Protocol):
    """One side of the closed loop on one level: the encoder's or the decoder's."""

    def code(self, channels: list[int], valid: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Values (uint8, 1-D) of ``channels`` at ``valid`` positions, given their prediction.

        channels: odd channel indices (a step, or one channel of a calibrated round); valid:
        bool (k, h, w); mean, scale: float32 arrays of the valid values, in the order of ``valid``.
        """
        ...

    def calibrate(self, channels: list[ChannelInput]) -> list[ChannelParams]:
        """The calibration of each channel of one round of a calibrated step: the encoder fits
        and codes it, the decoder reads it."""
        ...


def to_tensor(image_chw: np.ndarray) -> torch.Tensor:
    """A (1, C, h, w) float32 tensor in pixel units from a (C, h, w) uint8 array."""
    return torch.from_numpy(np.ascontiguousarray(image_chw)).float().unsqueeze(0)


def level_crc(image_chw: np.ndarray) -> int:
    """CRC-32 of a reconstructed level's bytes (C, H, W order)."""
    return zlib.crc32(np.ascontiguousarray(image_chw, dtype=np.uint8).tobytes())


@torch.no_grad()
def code_level(predictor: Predictor, even: np.ndarray, size: tuple[int, int], level: int, coder: LevelCoder,
               version: FormatVersion) -> np.ndarray:
    """The (C, H, W) uint8 level ``level`` of size ``size`` = (H, W), coded (or decoded) by
    ``coder`` from its reconstructed even image (C, h, w) as format ``version`` codes it."""
    c, h, w = even.shape
    valid = odd_valid_mask(*size, c)  # (3C, h, w)
    even_t = to_tensor(even)  # (1, C, h, w)
    odd_t = torch.zeros((1, 3 * c, h, w))  # (1, 3C, h, w)
    odd = np.zeros((3 * c, h, w), dtype=np.uint8)
    calibrated = version.calibrated(h, w)
    state = _LevelState(even, odd, version) if calibrated and version.linear else None
    for step, channels in enumerate(predictor.steps(c)):
        idx = list(channels)
        pred = predictor(even_t, odd_t, step, level)
        pred = snap(pred if calibrated and version.scale_context else pred._replace(context=None))
        means = pred.mean[0].numpy()  # (k, h, w)
        scales = pred.scale[0].numpy()
        trunk = None if pred.context is None else pred.context[0].numpy()  # (k, F, h, w)
        if not calibrated:
            _code_values(idx, means, scales, valid, odd, odd_t, coder)
            continue
        if state is not None:
            state.net_means[idx] = means
        par = calibration.parents(c, tuple(idx))
        for rnd in calibration.rounds(c, tuple(idx), version.rounds_by_phase):
            _code_round(rnd, idx, par, valid, means, scales, trunk, odd, odd_t, coder, version, state)
    return merge(even, odd, size)


@torch.no_grad()
def predict_level(predictor: Predictor, even: np.ndarray, size: tuple[int, int], level: int,
                  preview_filter: FilterFn | None = None) -> np.ndarray:
    """The (C, H, W) uint8 level ``level`` predicted from its reconstructed even image (C, h, w):
    every odd value its rounded mean, with ``preview_filter`` (the level's preview filter,
    ``previewfilter.py``) refined by each odd channel's weights."""
    c, h, w = even.shape
    valid = odd_valid_mask(*size, c)  # (3C, h, w)
    even_t = to_tensor(even)  # (1, C, h, w)
    odd_t = torch.zeros((1, 3 * c, h, w))  # (1, 3C, h, w)
    odd = np.zeros((3 * c, h, w), dtype=np.uint8)
    if preview_filter is not None:
        _predict_filtered(predictor, even, even_t, odd_t, odd, valid, level, preview_filter)
        return merge(even, odd, size)
    for step, channels in enumerate(predictor.steps(c)):
        pred = snap(predictor(even_t, odd_t, step, level)._replace(context=None))
        _code_values(list(channels), pred.mean[0].numpy(), pred.scale[0].numpy(), valid, odd, odd_t, None)
    return merge(even, odd, size)


def _predict_filtered(predictor: Predictor, even: np.ndarray, even_t: torch.Tensor, odd_t: torch.Tensor,
                      odd: np.ndarray, valid: np.ndarray, level: int, preview_filter: FilterFn) -> None:
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

    def __init__(self, even: np.ndarray, odd: np.ndarray, version: FormatVersion) -> None:
        self.channels = even.shape[0]
        self.net_means = np.zeros(odd.shape, dtype=np.float32)
        self.planes = linear.Planes(even, odd, self.net_means)
        self.surprise = scalecontext.SurprisePlanes(*even.shape[1:]) if version.scale_context else None
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


def _code_values(chans, means, scales, valid, odd, odd_t, coder: LevelCoder | None) -> None:
    """Code (or, with ``coder=None``, predict) the odd channels ``chans`` given their (k, h, w) means and scales."""
    vals = np.clip(np.round(means), 0, 255).astype(np.uint8)
    if coder is not None:
        v = valid[chans]
        vals[v] = coder.code(chans, v, means[v], scales[v])
    odd[chans] = vals
    odd_t[0, chans] = torch.from_numpy(vals).float()


def _code_round(rnd, idx, par, valid, means, scales, trunk, odd, odd_t, coder: LevelCoder, version: FormatVersion,
                state: _LevelState | None) -> None:
    """Calibrate and code the channels at positions ``rnd`` of a step, one channel at a time."""
    inputs, resids = [], []
    for j in rnd:
        ch = idx[j]
        flat = np.flatnonzero(valid[ch])
        resid = odd[idx[par[j]]].astype(np.float64) - means[par[j]] if version.coupling and par[j] >= 0 else None
        feats = None if state is None else state.features(ch, means[j], flat)
        context = None if state is None else state.context(ch, flat, None if trunk is None else trunk[j])
        inputs.append(ChannelInput(ch, flat, means[j].reshape(-1)[flat], scales[j].reshape(-1)[flat],
                                   None if resid is None else resid.reshape(-1)[flat], feats, context))
        resids.append(resid)
    params = coder.calibrate(inputs)
    coded = []
    for j, inp, p, r in zip(rnd, inputs, params, resids):
        refinement = None if inp.features is None or not any(p.linear) else inp.features.refinement(p.linear)
        shift = None if inp.context is None or not any(p.context) else inp.context.shift(p.context)
        mean, scale = calibration.apply(means[j], scales[j], p, r, refinement, shift)  # (h, w) each
        _code_values([inp.channel], mean[None], scale[None], valid, odd, odd_t, coder)
        coded.append((inp.channel, mean, scale))
    if state is not None:  # known only once the whole round is coded: its channels' features do not see each other
        for ch, mean, scale in coded:
            state.decoded(ch, odd[ch], mean, scale)
