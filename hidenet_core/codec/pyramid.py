"""The complete odd/even (2x2 polyphase) pyramid.

A level image ``x`` of shape (..., C, H, W) is split into

* ``even = x[..., 0::2, 0::2]``, kept and split again at the next coarser level, and
* ``odd``, the three other phases (0, 1), (1, 0), (1, 1) stacked as channels in that
  fixed order: shape (..., 3C, h, w), channel ``p * C + c`` is phase ``p`` of colour ``c``.

An odd height or width is first padded by edge replication; ``merge`` followed by a
crop to the true size is the exact inverse of ``split``. Level 0 is the full image and
level ``k + 1`` is the even part of level ``k``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "PHASES",
    "BASE_MAX_SIDE",
    "split",
    "merge",
    "pad_even",
    "level_shapes",
    "default_levels",
    "total_levels",
    "odd_valid_mask",
    "window",
    "level_images",
    "LevelImages",
]

#: The odd phases, in the channel order of the odd tensor.
PHASES: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (1, 1))

#: By default the base level's longer side is at most this many pixels.
BASE_MAX_SIDE = 32

T = TypeVar("T", np.ndarray, torch.Tensor)


def pad_even(x: T) -> T:
    """Pad the last two axes of ``x`` to even sizes by replicating the last row/column."""
    h, w = x.shape[-2:]
    ph, pw = h % 2, w % 2
    if not (ph or pw):
        return x
    if isinstance(x, np.ndarray):
        pad = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
        return np.pad(x, pad, mode="edge")
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, h, w)
    if not flat.is_floating_point():
        # replicate padding is only implemented for floating tensors
        padded = F.pad(flat.float(), (0, pw, 0, ph), mode="replicate").to(x.dtype)
    else:
        padded = F.pad(flat, (0, pw, 0, ph), mode="replicate")
    return padded.reshape(*lead, h + ph, w + pw)


def split(x: T) -> tuple[T, T]:
    """Split ``x`` (..., C, H, W) into ``even`` (..., C, h, w) and ``odd`` (..., 3C, h, w).

    ``h = ceil(H / 2)`` and ``w = ceil(W / 2)``; odd sizes are edge padded first.
    """
    xp = pad_even(x)
    even = xp[..., 0::2, 0::2]
    phases = [xp[..., dy::2, dx::2] for dy, dx in PHASES]
    odd = np.concatenate(phases, axis=-3) if isinstance(x, np.ndarray) else torch.cat(phases, dim=-3)
    return even, odd


def merge(even: T, odd: T, size: tuple[int, int] | None = None) -> T:
    """Interleave ``even`` (..., C, h, w) and ``odd`` (..., 3C, h, w) into (..., C, 2h, 2w).

    With ``size = (H, W)`` the result is cropped to that size, which makes
    ``merge(*split(x), x.shape[-2:])`` equal to ``x`` for every ``x``.
    """
    c, h, w = even.shape[-3:]
    if odd.shape[-3:] != (3 * c, h, w):
        raise ValueError(f"odd has shape {tuple(odd.shape)}, expected (..., {3 * c}, {h}, {w})")
    lead = even.shape[:-3]
    if isinstance(even, np.ndarray):
        out = np.empty((*lead, c, 2 * h, 2 * w), dtype=np.result_type(even, odd))
    else:
        out = torch.empty((*lead, c, 2 * h, 2 * w), dtype=even.dtype, device=even.device)
    out[..., 0::2, 0::2] = even
    for p, (dy, dx) in enumerate(PHASES):
        out[..., dy::2, dx::2] = odd[..., p * c : (p + 1) * c, :, :]
    if size is not None:
        out = out[..., : size[0], : size[1]]
    return out


def level_shapes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """Sizes (H, W) of levels 0 (the full image) to ``levels`` (the base)."""
    shapes = [(height, width)]
    for _ in range(levels):
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    return shapes


def total_levels(height: int, width: int) -> int:
    """The number of splits that bring the image down to a single pixel."""
    side = max(height, width)
    return 0 if side <= 1 else math.ceil(math.log2(side))


def default_levels(height: int, width: int, base_max_side: int = BASE_MAX_SIDE) -> int:
    """The smallest level count whose base has its longer side at most ``base_max_side``."""
    levels = 0
    h, w = height, width
    while max(h, w) > base_max_side:
        h, w = (h + 1) // 2, (w + 1) // 2
        levels += 1
    return levels


def odd_valid_mask(height: int, width: int, channels: int, rows_of: tuple[int, int] | None = None) -> np.ndarray:
    """Which odd values of a level of size (H, W) are real pixels, not padding.

    Returns a bool array (3C, h, w) matching ``split``'s odd layout; with ``rows_of`` =
    (r0, r1) only grid rows r0 .. r1 - 1 of it, (3C, r1 - r0, w).
    """
    h, w = (height + 1) // 2, (width + 1) // 2
    r0, r1 = rows_of or (0, h)
    rows = np.arange(r0, r1)[:, None]
    cols = np.arange(w)[None, :]
    masks = []
    for dy, dx in PHASES:
        m = ((2 * rows + dy) < height) & ((2 * cols + dx) < width)
        masks.extend([m] * channels)
    return np.stack(masks, axis=0)


class LevelImages(Sequence[np.ndarray]):
    """Levels 0 (the image, (C, H, W)) to ``levels`` of an image, each the even part of the
    one before, made when first asked for. The even part never reaches into the padding that
    ``split`` adds (row and column ``2i`` exist for every ``i < ceil(H / 2)``), so level k is
    ``image[:, ::2**k, ::2**k]``: level 0 is the image as given (no copy), a coarser level a
    contiguous copy of its pixels, kept. The pyramid of a 12-megapixel photograph took 0.13 s
    and 48 MB before the encoder's first chunk; the base alone takes a few kilobytes."""

    def __init__(self, image: np.ndarray, levels: int) -> None:
        self.image, self.levels = image, levels
        self._made: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.levels + 1

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if not -len(self) <= k < len(self):
            raise IndexError(f"level {k} is outside 0..{self.levels}")
        k %= len(self)
        if k == 0:
            return self.image
        if k not in self._made:
            self._made[k] = np.ascontiguousarray(self.image[:, :: 1 << k, :: 1 << k])
        return self._made[k]


def level_images(image: np.ndarray, levels: int) -> LevelImages:
    """Levels 0 (``image``, (C, H, W)) to ``levels`` of an image, each the even part of the one
    before (``LevelImages``: made on demand)."""
    return LevelImages(image, levels)


def window(plane: np.ndarray, rows: tuple[int, int], pad: int, live: bool = False) -> np.ndarray:
    """Rows ``rows[0] - pad .. rows[1] + pad`` and columns ``-pad .. w + pad`` of a (..., h, w)
    plane, read outside the plane as its nearest edge value. A ``live`` plane (one being coded
    in the strip ``rows``) is read as if the strip were the whole plane: its rows beyond the
    strip repeat the strip's edge rows. With ``rows = (0, h)`` this is edge padding by ``pad``.
    """
    r0, r1 = rows
    lead = [(0, 0)] * (plane.ndim - 2)
    if live:
        return np.pad(plane[..., r0:r1, :], [*lead, (pad, pad), (pad, pad)], mode="edge")
    h = plane.shape[-2]
    a, b = max(0, r0 - pad), min(h, r1 + pad)
    return np.pad(plane[..., a:b, :], [*lead, (pad - (r0 - a), pad - (b - r1)), (pad, pad)], mode="edge")
