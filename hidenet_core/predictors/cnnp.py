"""``CNNP``: parallel convolutions of several kernel sizes, summed, then residual blocks.

The seed's multi-head CNN predictor (in the spirit of Inception's parallel receptive
fields, Szegedy et al. 2015, and ResNet blocks, He et al. 2016): heads with kernel
sizes 1, 3 and 5 look at the step inputs at once, their sum goes through residual
blocks of two 3x3 convolutions, and 1x1 heads give the mean and log-scale corrections
over ``interp_prediction`` (``LearnedPredictor``). Everything runs at the level's
resolution, which makes it the more expensive of the two per pixel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .features import IN_CHANNELS, INPUT_ROWS, OUT_CHANNELS
from .learned import LearnedPredictor
from .registry import register

__all__ = ["CNNPConfig", "CNNP"]


@dataclass(frozen=True)
class CNNPConfig:
    features: int = 16  # channels of the heads' sum and the residual blocks
    kernels: tuple[int, ...] = (1, 3, 5)  # kernel size of each parallel head
    blocks: int = 2  # residual blocks of two 3x3 convolutions
    level_conditioning: bool = False  # learned bias per pyramid level (measured: no gain, so off)
    max_level: int = 7  # levels above this share its bias
    slope: float = 0.1  # LeakyReLU negative slope


class _Residual(nn.Module):
    def __init__(self, f: int, slope: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(f, f, 3, padding=1)
        self.conv2 = nn.Conv2d(f, f, 3, padding=1)
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.act(self.conv1(x))))  # (B, F, h, w)


@register
class CNNP(LearnedPredictor):
    """Multi-kernel heads plus residual blocks, predicting corrections over interpolation."""

    name = "CNNP"

    def __init__(self, **config: Any) -> None:
        if "kernels" in config:
            config["kernels"] = tuple(int(k) for k in config["kernels"])
        self.cfg = cfg = CNNPConfig(**config)
        if not cfg.kernels or any(k < 1 or k % 2 == 0 for k in cfg.kernels):
            raise ValueError(f"CNNP kernels must be odd and positive, got {cfg.kernels}")
        super().__init__(cfg.features, cfg.level_conditioning, cfg.max_level)
        f = cfg.features
        # the inputs' reach, the widest head's and two 3x3 convolutions per block
        self.context_rows = INPUT_ROWS + max(cfg.kernels) // 2 + 2 * cfg.blocks
        self.heads = nn.ModuleList(nn.Conv2d(IN_CHANNELS, f, k, padding=k // 2) for k in cfg.kernels)
        self.blocks = nn.Sequential(*(_Residual(f, cfg.slope) for _ in range(cfg.blocks)))
        self.head = nn.Conv2d(f, OUT_CHANNELS, 1)
        self.act = nn.LeakyReLU(cfg.slope)
        nn.init.zeros_(self.head.weight)  # start as the interpolation baseline
        nn.init.zeros_(self.head.bias)

    def config(self) -> dict[str, Any]:
        cfg = asdict(self.cfg)
        cfg["kernels"] = list(cfg["kernels"])
        return cfg

    def trunk(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        a = sum(head(x) for head in self.heads)  # (B, F, h, w)
        a = self.act(a + bias)
        return self.blocks(a)  # (B, F, h, w)
