"""Reconstruct one pyramid level from the next coarser one: the closed loop's core.

The encoder and the decoder run exactly this code; they differ only in the ``code``
callback, which for the encoder codes the true odd values and returns their
reconstruction and for the decoder reads them from the stream. ``code=None`` is a
generative level: every odd value is the predicted mean.
"""

from __future__ import annotations

import zlib
from typing import Callable, Protocol

import numpy as np
import torch

from .predictors.base import Predictor, snap
from .pyramid import merge, odd_valid_mask

__all__ = ["CodeFn", "reconstruct_level", "level_crc", "to_tensor"]


class CodeFn(Protocol):
    def __call__(self, channels: list[int], valid: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Values (uint8, 1-D) of ``channels`` at ``valid`` positions, given their prediction.

        channels: odd channel indices of this step; valid: bool (k, h, w);
        mean, scale: float32 arrays of the valid values, in the order of ``valid``.
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
) -> np.ndarray:
    """The (C, H, W) uint8 level ``level`` from its reconstructed even image (C, h, w)."""
    c, h, w = even.shape
    height, width = size
    valid = odd_valid_mask(height, width, c)  # (3C, h, w)
    even_t = to_tensor(even)  # (1, C, h, w)
    odd_t = torch.zeros((1, 3 * c, h, w))  # (1, 3C, h, w)
    odd = np.zeros((3 * c, h, w), dtype=np.uint8)
    for step, channels in enumerate(predictor.steps(c)):
        idx = list(channels)
        pred = snap(predictor(even_t, odd_t, step, level))
        mean = pred.mean[0].numpy()  # (k, h, w)
        vals = np.clip(np.round(mean), 0, 255).astype(np.uint8)
        if code is not None:
            v = valid[idx]
            vals[v] = code(idx, v, mean[v], pred.scale[0].numpy()[v])
        odd[idx] = vals
        odd_t[0, idx] = torch.from_numpy(vals).float()
    return merge(even, odd, (height, width))
