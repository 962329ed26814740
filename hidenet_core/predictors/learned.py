"""The common frame of the learned predictors: views, conditioning and the two heads.

A subclass defines ``trunk``, the convolutional trunk that maps the step inputs
(``features.step_inputs``) and a conditioning bias to F feature channels, and a 1x1
convolution ``head`` from them to 18 raw output channels. This class turns those into a
prediction on top of interpolation:

    mean  = interp_mean + MEAN_GAIN * out[:, :9]
    scale = interp_scale * exp(out[:, 9:])

so a head that is zero is exactly the ``Interp`` baseline (the learned models start
there and learn a correction, as in residual super-resolution, VDSR). The codec also
gets the trunk's features (``Prediction.context``), which a version-4 stream's scale
context weighs per image (``scalecontext.py``).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence

import torch
from torch import nn

from .base import SCALE_MAX, SCALE_MIN, Prediction, Predictor
from .features import COND_CHANNELS, MEAN_GAIN, OUT_CHANNELS, StepInputs, step_inputs, view_plan, view_tensors
from .interp import coding_steps

__all__ = ["LearnedPredictor", "stack_inputs", "views_forward"]

_LOG_MIN, _LOG_MAX = math.log(SCALE_MIN), math.log(SCALE_MAX)


def stack_inputs(items: Sequence[StepInputs]) -> StepInputs:
    """Concatenate the inputs of several steps (or images) along the batch axis."""
    target = torch.cat([it.target.expand(it.x.shape[0], 9) for it in items])  # (B, 9)
    return StepInputs(
        torch.cat([it.x for it in items]),
        torch.cat([it.cond for it in items]),
        torch.cat([it.mean for it in items]),
        torch.cat([it.scale for it in items]),
        target,
    )


class LearnedPredictor(Predictor):
    """Base of the learned predictors: RGB network, views for L and RGBA, conditioning.

    ``features``: width of the trunk; ``level_conditioning``: add a learned bias per
    pyramid level (levels above ``max_level`` share the last one).
    """

    distribution = "laplace"
    takes_memo = True

    def __init__(self, features: int, level_conditioning: bool, max_level: int) -> None:
        super().__init__()
        self.cond = nn.Linear(COND_CHANNELS, features)  # known/target masks -> bias of the first layer
        self.max_level = max_level
        self.level = nn.Embedding(max_level + 1, features) if level_conditioning else None
        if self.level is not None:
            nn.init.zeros_(self.level.weight)

    head: nn.Conv2d  # 1x1, F -> OUT_CHANNELS, set by the subclass

    @abstractmethod
    def trunk(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """(B, IN_CHANNELS, h, w) inputs and (B, F, 1, 1) bias -> (B, F, h, w) features."""

    def body(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """(B, IN_CHANNELS, h, w) inputs and (B, F, 1, 1) bias -> (B, OUT_CHANNELS, h, w)."""
        return self.head(self.trunk(x, bias))

    def steps(self, channels: int) -> tuple[tuple[int, ...], ...]:
        return coding_steps(channels)

    def _bias(self, cond: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        bias = self.cond(cond)  # (B, F)
        if self.level is not None:
            bias = bias + self.level(level.clamp(0, self.max_level))
        return bias[:, :, None, None]  # (B, F, 1, 1)

    def predict(self, inputs: StepInputs, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and scale (B, 9, h, w) of every RGB odd channel; only the step's targets are meaningful.

        level: (B,) long tensor of pyramid levels.
        """
        mean, scale, _ = self._predict(inputs, level)
        return mean, scale

    def _predict(self, inputs: StepInputs, level: torch.Tensor,
                 keep: tuple[int, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``predict`` and the trunk's features (B, F, h, w); ``keep``: only these of the 9 RGB odd
        channels (B, len(keep), h, w), each computed exactly as among all 9."""
        x = inputs.x.contiguous(memory_format=torch.channels_last)
        features = self.trunk(x, self._bias(inputs.cond, level))  # (B, F, h, w)
        out = self.head(features)  # (B, 18, h, w)
        assert out.shape[1] == OUT_CHANNELS
        means, scales = (slice(0, 9), slice(9, 18)) if keep is None else (list(keep), [9 + k for k in keep])
        own = slice(None) if keep is None else list(keep)
        mean = inputs.mean[:, own] + MEAN_GAIN * out[:, means]  # (B, 9, h, w)
        log_scale = torch.log(inputs.scale[:, own].clamp_min(SCALE_MIN)) + out[:, scales]
        scale = torch.exp(log_scale.clamp(_LOG_MIN, _LOG_MAX))  # (B, 9, h, w)
        return mean, scale, features

    def forward(self, even: torch.Tensor, odd: torch.Tensor, step: int, level: int,
                memo: dict | None = None) -> Prediction:
        """``Predictor.forward``; ``memo``: a dict the caller keeps across the steps of one level's
        window (the same even image, odd values only added), which saves recomputing the
        interpolation of earlier steps (``features.step_inputs``)."""
        return views_forward(even, odd, step, level, memo, step_inputs, self._predict)


def views_forward(even: torch.Tensor, odd: torch.Tensor, step: int, level: int, memo: dict | None,
                  inputs_of, predict) -> Prediction:
    """A learned model's ``forward`` over the views of the image (``features.view_plan``), with the
    inputs built by ``inputs_of`` (``step_inputs``'s signature) and predicted by ``predict``
    (``LearnedPredictor._predict``'s): the float model's, or its exact evaluation (``exact.py``)."""
    c = even.shape[1]
    idx = coding_steps(c)[step]
    means: dict[int, torch.Tensor] = {}
    scales: dict[int, torch.Tensor] = {}
    contexts: dict[int, torch.Tensor] = {}
    lv = torch.full((even.shape[0],), int(level), dtype=torch.long)
    for task in view_plan(c)[step]:
        e, o = view_tensors(even, odd, task.colours)  # (B, 3, h, w), (B, 9, h, w)
        inputs = inputs_of(e, o, task.rgb_step, None if memo is None else memo.setdefault(task.colours, {}))
        # (B, k, h, w) x2 for the task's k channels, (B, F, h, w)
        mean, scale, features = predict(inputs, lv, task.rgb_channels)
        for j, ch in enumerate(task.channels):
            means[ch] = mean[:, j]
            scales[ch] = scale[:, j]
            contexts[ch] = features
    shared = all(contexts[ch] is contexts[idx[0]] for ch in idx)  # one view task: no copies
    context = contexts[idx[0]].unsqueeze(1).expand(-1, len(idx), -1, -1, -1) if shared else \
        torch.stack([contexts[ch] for ch in idx], 1)
    return Prediction(
        torch.stack([means[ch] for ch in idx], 1),  # (B, len(idx), h, w)
        torch.stack([scales[ch] for ch in idx], 1),
        context,  # (B, len(idx), F, h, w)
    )
