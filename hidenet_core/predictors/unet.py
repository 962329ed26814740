"""``UNetLikeLite``: a two-scale U-Net that corrects the interpolation of each step.

The seed's lightweight U-Net (encoder, decoder, skip connection; Ronneberger et al.,
"U-Net", 2015), cut to what a 2-core CPU affords per coding step: two 3x3 convolutions
at the level's resolution, two at half resolution for context, a transposed
convolution back up, added to the skip, and 1x1 heads for the mean correction and the
log-scale correction (``LearnedPredictor``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .features import IN_CHANNELS, OUT_CHANNELS
from .learned import LearnedPredictor
from .registry import register

__all__ = ["UNetConfig", "UNetLikeLite"]


@dataclass(frozen=True)
class UNetConfig:
    features: int = 16  # channels at full resolution (twice as many at half resolution)
    level_conditioning: bool = False  # learned bias per pyramid level (measured: no gain, so off)
    max_level: int = 7  # levels above this share its bias
    slope: float = 0.1  # LeakyReLU negative slope


@register
class UNetLikeLite(LearnedPredictor):
    """Two-scale U-Net predicting a mean and log-scale correction over ``interp_prediction``."""

    name = "UNetLikeLite"

    def __init__(self, **config: Any) -> None:
        self.cfg = cfg = UNetConfig(**config)
        super().__init__(cfg.features, cfg.level_conditioning, cfg.max_level)
        f = cfg.features
        self.stem = nn.Conv2d(IN_CHANNELS, f, 3, padding=1)
        self.enc = nn.Conv2d(f, f, 3, padding=1)
        self.down = nn.Conv2d(f, 2 * f, 3, stride=2, padding=1)
        self.mid1 = nn.Conv2d(2 * f, 2 * f, 3, padding=1)
        self.mid2 = nn.Conv2d(2 * f, 2 * f, 3, padding=1)
        self.up = nn.ConvTranspose2d(2 * f, f, 2, stride=2)
        self.dec = nn.Conv2d(f, f, 3, padding=1)
        self.head = nn.Conv2d(f, OUT_CHANNELS, 1)
        self.act = nn.LeakyReLU(cfg.slope)
        nn.init.zeros_(self.head.weight)  # start as the interpolation baseline
        nn.init.zeros_(self.head.bias)

    def config(self) -> dict[str, Any]:
        return asdict(self.cfg)

    def trunk(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        a = self.act(self.stem(x) + bias)  # (B, F, h, w)
        skip = self.act(self.enc(a))  # (B, F, h, w)
        m = self.act(self.down(skip))  # (B, 2F, h/2, w/2)
        m = self.act(self.mid1(m))
        m = self.act(self.mid2(m))
        u = self.up(m)[..., :h, :w]  # (B, F, h, w)
        return self.act(self.dec(u + skip))  # (B, F, h, w)
