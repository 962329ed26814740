"""The predictor contract shared by the codec, training and every model.

A predictor looks at the reconstructed even image of a level and returns, for odd
values, a *mean* (the generative prediction) and a *scale* (its uncertainty, which
drives the entropy coder). The 3C odd channels are predicted in *steps*: groups of
channels coded one after the other, so that a later step may look at the values that
earlier steps decoded (for example the diagonal phase before the other two, or green
before red and blue). One set of weights serves every level.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Any, NamedTuple

import torch
from torch import nn

__all__ = ["Prediction", "Predictor", "MEAN_GRID", "SCALE_MIN", "SCALE_MAX", "CONTEXT_GRID", "CONTEXT_MAX", "snap"]

#: Means and scales are snapped to multiples of 1/MEAN_GRID before use, so that the
#: encoder and decoder agree bit for bit even when float sums differ in the last ulp.
MEAN_GRID = 64.0
SCALE_MIN = 1.0 / 16.0
SCALE_MAX = 128.0


class Prediction(NamedTuple):
    """Per odd value: a mean in pixel units [0, 255] and a positive scale (pixel units), and
    optionally the features the prediction was made from (a learned model's trunk), which a
    version-4 stream's scale context may weigh (``scalecontext.py``)."""

    mean: torch.Tensor  # (B, k, h, w)
    scale: torch.Tensor  # (B, k, h, w), > 0
    context: torch.Tensor | None = None  # (B, k, F, h, w)


#: context features are snapped to multiples of 1/CONTEXT_GRID within +-CONTEXT_MAX
CONTEXT_GRID = 16.0
CONTEXT_MAX = 8.0


def snap(pred: Prediction, in_place: bool = False) -> Prediction:
    """Round a prediction onto the fixed grid the codec codes with.

    The context (if any) becomes integers in units of 1/CONTEXT_GRID (float32, within
    +-CONTEXT_MAX * CONTEXT_GRID), which products with integer weights keep exact.
    ``in_place``: overwrite the prediction's tensors (a caller that owns them: the same values
    without a copy of each).
    """
    # round(clamp(x) * grid) / grid, in place on the clamped copies (the same values)
    clamp = torch.clamp_ if in_place else torch.clamp
    mean = clamp(pred.mean, 0.0, 255.0).mul_(MEAN_GRID).round_().div_(MEAN_GRID)
    scale = clamp(pred.scale, SCALE_MIN, SCALE_MAX).mul_(MEAN_GRID).round_().div_(MEAN_GRID).clamp_min_(SCALE_MIN)
    context = pred.context
    if context is not None:
        shared = context.shape[1] > 1 and context.stride(1) == 0  # one tensor expanded over the channels
        base = context[:, :1] if shared else context
        base = clamp(base, -CONTEXT_MAX, CONTEXT_MAX).mul_(CONTEXT_GRID).round_()
        context = base.expand_as(context) if shared else base
    return Prediction(mean, scale, context)


class Predictor(nn.Module, ABC):
    """Base class of every predictor (learned or not).

    Subclasses set ``name`` (their registry name) and implement ``steps`` and
    ``forward``. ``config()`` returns the JSON-able constructor arguments, which a
    checkpoint stores beside the weights.
    """

    name: str = "abstract"
    #: entropy model family used for the odd values: "laplace" or "gaussian"
    distribution: str = "laplace"
    #: whether ``forward`` takes a ``memo`` keyword: a dict the codec keeps across the steps of
    #: one window of a level (the same even image, odd values only added once decoded), where
    #: the predictor may keep what later steps would compute again
    takes_memo: bool = False
    #: how many grid rows above and below a position its prediction reads at most (the
    #: receptive field, inputs included), where the architecture bounds it; None: not known
    #: (the codec's tiles then see ``loop.TILE_HALO`` rows around them)
    context_rows: int | None = None

    @abstractmethod
    def steps(self, channels: int) -> tuple[tuple[int, ...], ...]:
        """The odd channel indices (0 .. 3C-1) of each coding step, in coding order.

        Every index appears exactly once.
        """

    @abstractmethod
    def forward(self, even: torch.Tensor, odd: torch.Tensor, step: int, level: int) -> Prediction:
        """Predict the odd channels of ``steps(C)[step]``.

        even:  (B, C, h, w) reconstructed even image, float, pixel units [0, 255]
        odd:   (B, 3C, h, w) odd values; the channels of earlier steps hold decoded
               values, all others are zero and must not be looked at
        level: pyramid level of the image being reconstructed (0 = full resolution)
        returns a Prediction of shape (B, len(steps(C)[step]), h, w), optionally with
               the features it was computed from as ``context`` (B, k, F, h, w); tensors of
               its own, which the codec overwrites (``snap(in_place=True)``), not a cache's
        """

    def config(self) -> dict[str, Any]:
        """Constructor keyword arguments; ``type(self)(**config())`` rebuilds the model."""
        return {}

    def weights_hash(self) -> bytes:
        """A 16-byte fingerprint of the name, config and weights; stored in .hdn headers.

        Cached until a weight tensor is replaced or modified in place (tracked through
        the tensors' storage and version counters), so calling it per stream is free.
        """
        state = self.state_dict()
        key = tuple((k, t.data_ptr(), t._version) for k, t in state.items())
        cached = self.__dict__.get("_hash_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        h = hashlib.sha256()
        h.update(self.name.encode())
        h.update(repr(sorted(self.config().items())).encode())
        for name, tensor in sorted(state.items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        digest = h.digest()[:16]
        self.__dict__["_hash_cache"] = (key, digest)
        return digest
