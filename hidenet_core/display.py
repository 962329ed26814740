"""What a viewer is shown of a frame with predicted levels: a display filter, not part of the format.

A frame whose finest ``n`` levels are predicted (a preview, or a stream's generative
levels) holds exact pixels only on the grid of the finest level that was coded: every
``2**n``-th row and column, counted from 0 (the pyramid's even pixels, recursively). The
predictions between them are smooth, the exact pixels keep their texture, so with two or
more predicted levels they stand out as a faint dotted grid (fur, whiskers). The display
filter does two things (docs/viewer.md has the measured figures):

1. **The grid**: each pixel of it moves ``1 - 2**(1 - n)`` of the way to the mean of its
   8 neighbours (half way for n = 2, three quarters for n = 3, ...; not at all for n <= 1,
   where the grid is every other pixel and shows no dots). It costs PSNR on those pixels
   only, one in ``4**n``; the grid's contrast (``lattice_contrast``, about 1 in a
   photograph, 7 to 40 in such frames) falls to 1.5 to 3.5.
2. **The finest level of a preview from level 2 or above**: the network's mean for it is
   predicted from level 1, which is itself predicted and smooth, not the real even pixels
   the network was trained on; there plain bilinear interpolation from level 0's even
   pixels predicts better. Each odd pixel of level 0 moves 3/4 of the way to it. This
   gains more PSNR than step 1 costs, so a preview is shown at a higher PSNR and SSIM
   than the decoder's, without its dotted grid.

The server's frames and ``hidenet decode --preview`` are filtered (``display_frame``); the
decoder's output (``ProgressiveDecoder.preview``, decoded levels) never is: the stream's
bytes and CRCs are about the unfiltered image. A generative level is not step 2's case
(it is rebuilt with its preview filter), so there step 1 costs a little PSNR: 0.02 dB with
two generative levels (no filter of the frame alone was found that removes the grid for
nothing there).
"""

from __future__ import annotations

import numpy as np

__all__ = ["display_frame", "display_filter", "predicted_levels", "lattice_contrast", "FINEST_BLEND"]

#: how far each odd pixel of a preview's finest level moves toward bilinear interpolation (step 2)
FINEST_BLEND = 0.75

_NEIGHBOURS = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]


def predicted_levels(level: int, generative_levels: int, full_size: bool) -> int:
    """How many predicted levels a frame has above its exact grid: for a frame decoded up
    to ``level`` of a stream with ``generative_levels``, shown at full size (a preview) or
    at the level's own size."""
    coded = max(level, generative_levels)  # the finest level whose pixels came with residuals
    return coded if full_size else max(0, coded - level)


def _neighbour_mean(image: np.ndarray, step: int) -> np.ndarray:
    """(h, w, C) float32: the mean of the 8 neighbours of every ``step``-th pixel (edges replicated)."""
    height, width = image.shape[:2]
    rows, cols = np.arange(0, height, step), np.arange(0, width, step)
    total = np.zeros((len(rows), len(cols), image.shape[2]), dtype=np.float32)
    for di, dj in _NEIGHBOURS:
        r = np.clip(rows + di, 0, height - 1)
        c = np.clip(cols + dj, 0, width - 1)
        total += image[r[:, None], c[None, :]]
    return total / len(_NEIGHBOURS)


def display_frame(image: np.ndarray, level: int, generative_levels: int, full_size: bool,
                  interpolated: bool = False) -> np.ndarray:
    """The frame shown for ``image`` of a stream with ``generative_levels``: with ``full_size``,
    the preview from ``level``, the finest level decoded so far
    (``ProgressiveDecoder.current_level``); otherwise ``level`` itself at its own size.
    ``interpolated``: the preview's predicted levels are bilinear already (``preview`` with
    ``model_pixels=0``), so step 2 would leave them as they are and is skipped (on a
    3-megapixel frame it is most of the filter's 0.4 s)."""
    return display_filter(image, predicted_levels(level, generative_levels, full_size),
                          interpolate_finest=full_size and level >= 2 and not interpolated)


def display_filter(image: np.ndarray, predicted: int, interpolate_finest: bool = False) -> np.ndarray:
    """The (H, W, C) uint8 ``image`` with ``predicted`` levels as it is shown: with
    ``interpolate_finest`` (a preview from level 2 or above) its odd pixels moved toward
    bilinear interpolation, then the exact grid pulled toward its neighbours. A new array,
    or ``image`` itself when there is nothing to do (n <= 1)."""
    if predicted <= 1:
        return image
    step = 1 << predicted
    pull = 1.0 - 2.0 ** (1 - predicted)
    # without step 2 only the grid moves: the rest is copied as it is, not converted to floats and back
    x = _toward_bilinear(image.astype(np.float32), FINEST_BLEND) if interpolate_finest else image
    grid = x[::step, ::step].astype(np.float32)  # (h, w, C)
    grid += pull * (_neighbour_mean(x, step) - grid)
    out = np.clip(np.rint(x), 0, 255).astype(np.uint8) if interpolate_finest else image.copy()
    out[::step, ::step] = np.clip(np.rint(grid), 0, 255).astype(np.uint8)
    return out


def _toward_bilinear(x: np.ndarray, blend: float) -> np.ndarray:
    """(H, W, C) float32 with each odd pixel moved ``blend`` of the way to the bilinear
    interpolation of its even neighbours: phase (0, 1) from left and right, (1, 0) from above
    and below, (1, 1) from the four diagonal ones (edges replicated)."""
    p = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    height, width = x.shape[:2]

    def at(di: int, dj: int) -> np.ndarray:
        return p[1 + di : 1 + di + height, 1 + dj : 1 + dj + width]

    out = x.copy()
    for (pi, pj), ends in (((0, 1), [(0, -1), (0, 1)]), ((1, 0), [(-1, 0), (1, 0)]),
                           ((1, 1), [(-1, -1), (-1, 1), (1, -1), (1, 1)])):
        target = sum(at(di, dj)[pi::2, pj::2] for di, dj in ends) / len(ends)
        out[pi::2, pj::2] += blend * (target - x[pi::2, pj::2])
    return out


def lattice_contrast(image: np.ndarray, predicted: int) -> float:
    """How much the grid of exact pixels stands out: the mean squared difference between a
    grid pixel and the mean of its 8 neighbours, over the same for every pixel (about 1 in a
    photograph, for any grid; 7 in a frame with 2 predicted levels before the filter)."""
    x = image.astype(np.float32)
    everywhere = float(np.mean((x - _neighbour_mean(x, 1)) ** 2))
    step = 1 << predicted
    on_grid = float(np.mean((x[::step, ::step] - _neighbour_mean(x, step)) ** 2))
    return on_grid / everywhere if everywhere > 0 else 1.0
