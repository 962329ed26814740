"""The code length of integers under a discretized Laplace: the training loss and the encoder's yardstick.

``laplace_bits`` is what the range coder pays (``entropy.py``, max-error 0) for a value
predicted with a mean and a scale. Training minimises it and the encoder's per-image
calibration (``calibration.py``) compares candidate parameters with it.
"""

from __future__ import annotations

import math

import torch

__all__ = ["MIN_PROB", "laplace_bits"]

#: a bin's probability is floored here, as a range coder never codes with probability 0
MIN_PROB = 2.0**-24


def laplace_bits(x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Bits to code integers ``x`` under a Laplace(mean, scale) discretized to unit bins.

    This is what the range coder pays for lossless (max-error 0) coding:
    ``-log2(F(x + 1/2) - F(x - 1/2))`` with F the Laplace CDF, computed stably.
    """
    u = x - mean
    d = u.abs()
    inv = 1.0 / scale
    # a bin wholly on one side of the mean: 1/2 exp(-(d - 1/2)/b) (1 - exp(-1/b))
    side = math.log(0.5) - (d - 0.5).clamp_min(0.0) * inv + torch.log(-torch.expm1(-inv))
    # the bin containing the mean: 1 - 1/2 exp(-(1/2 - u)/b) - 1/2 exp(-(1/2 + u)/b)
    dc = d.clamp_max(0.5)
    inside = 1.0 - 0.5 * torch.exp(-(0.5 - dc) * inv) - 0.5 * torch.exp(-(0.5 + dc) * inv)
    centre = torch.log(inside.clamp_min(MIN_PROB))
    logp = torch.where(d >= 0.5, side, centre).clamp_min(math.log(MIN_PROB))
    return -logp / math.log(2.0)
