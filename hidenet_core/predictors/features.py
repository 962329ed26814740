"""Inputs and outputs shared by the learned predictors (``UNetLikeLite``, ``CNNP``).

Every learned model is an *RGB network*: it sees one level as an RGB image, split into
its even pixels (3 channels) and odd pixels (9 channels, ``p * 3 + c``), and corrects
the interpolation of ``interp_prediction`` for the channels of one of the four RGB
coding steps (diagonal G, diagonal R B, phases (0,1) (1,0) of G, then of R B).

Other channel counts reuse the same network through *views*:

* RGB (C=3) is one RGB view;
* L (C=1) is a grey view: the channel repeated as R = G = B; the network runs RGB
  steps 0 and 2 only and the G outputs are kept (R and B would equal them);
* RGBA (C=4) is an RGB view of colours 0..2 plus a grey view of alpha; alpha is
  predicted in the same coding steps as R and B (``coding_steps(4)``).

The input of a step is, per position of the level's (h, w) grid,
``even | known odd | known residuals | interpolation mean | log interpolation scale``
(39 channels; pixel values relative to the 3x3 mean of the even pixels of their
colour, over 32; a known residual is a decoded odd value minus the interpolation of
its own step, the "error feedback" context of lossless coders such as CALIC), plus a conditioning vector with the
mask of known odd channels, the mask of target channels and optionally the level.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from .interp import coding_steps, interp_prediction

__all__ = [
    "IN_CHANNELS",
    "OUT_CHANNELS",
    "COND_CHANNELS",
    "RGB_STEPS",
    "ViewTask",
    "view_plan",
    "view_tensors",
    "StepInputs",
    "step_inputs",
    "live_channels",
    "local_mean",
    "exact_local_mean",
    "exact_log",
    "PIXEL_NORM",
    "MEAN_GAIN",
]

RGB_STEPS = coding_steps(3)  # ((7,), (6, 8), (1, 4), (0, 2, 3, 5))
IN_CHANNELS = 3 + 9 + 9 + 9 + 9  # even, known odd, their residuals, interp mean, interp log-scale
OUT_CHANNELS = 18  # mean correction (9) and log-scale correction (9)
COND_CHANNELS = 9 + 9  # known-channel mask, target-channel mask
GREY_STEPS = (0, 2)  # RGB steps a grey view runs; it keeps the G outputs


#: pixel differences are divided by this
PIXEL_NORM = 32.0


#: grid rows above and below a position that its inputs read (``step_inputs``: the 3x3 local
#: mean and the interpolation of each phase from its nearest even and odd neighbours)
INPUT_ROWS = 1


def local_mean(even: torch.Tensor) -> torch.Tensor:
    """The 3x3 mean of each colour of the even image (B, C, h, w), edges replicated.

    Pixel inputs are given relative to it, so the networks see local structure, not
    absolute brightness (which generalises from a few training images much better).
    """
    return F.avg_pool2d(F.pad(even, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def exact_local_mean(even: torch.Tensor) -> torch.Tensor:
    """``local_mean`` of integer pixels as the sum of the nine (exact in float32, in any order) over 9
    (one correctly rounded division): the same on every machine."""
    e = F.pad(even, (1, 1, 1, 1), mode="replicate")
    h, w = even.shape[-2:]
    total = e[..., 0:h, 0:w].clone()
    for dy in range(3):
        for dx in range(3):
            if dy or dx:
                total.add_(e[..., dy : dy + h, dx : dx + w])
    return total.div_(9.0)


#: ``exact_log``'s table: the scale on a grid of 1/LOG_GRID up to LOG_TOP
LOG_GRID, LOG_TOP = 256, 256


@lru_cache(maxsize=1)
def _log_table() -> torch.Tensor:
    """float32 ``log(max(i / LOG_GRID, 1e-3))``, from Python's float64 log (a test pins the table's
    checksum)."""
    import math

    values = [math.log(max(i / LOG_GRID, 1e-3)) for i in range(LOG_GRID * LOG_TOP + 1)]
    return torch.tensor(values, dtype=torch.float64).float()


def exact_log(scale: torch.Tensor) -> torch.Tensor:
    """``log(max(scale, 1e-3))`` of the scale rounded to 1/256 (clamped to 256): a table lookup."""
    key = scale.clamp(0.0, float(LOG_TOP)).mul(float(LOG_GRID)).round_().long()
    return _log_table()[key]


@dataclass(frozen=True)
class ViewTask:
    """One forward of the RGB network that serves (part of) a coding step."""

    colours: tuple[int, int, int]  # source colour of view R, G, B ((c, c, c) for grey)
    rgb_step: int  # RGB coding step run (0..3)
    rgb_channels: tuple[int, ...]  # odd channels of the view (0..8) kept from its output
    channels: tuple[int, ...]  # the same channels in the image's odd layout (0..3C-1)


@lru_cache(maxsize=8)
def view_plan(channels: int) -> tuple[tuple[ViewTask, ...], ...]:
    """For each coding step of ``coding_steps(channels)``, the view tasks that predict it."""
    c = channels
    if c == 1:
        views = [((0, 0, 0), True)]
    elif c == 3:
        views = [((0, 1, 2), False)]
    elif c == 4:
        views = [((0, 1, 2), False), ((3, 3, 3), True)]
    else:
        raise ValueError(f"learned predictors take 1, 3 or 4 channels, got {c}")
    tasks: list[ViewTask] = []
    for colours, grey in views:
        for s in GREY_STEPS if grey else range(4):
            keep = tuple(k for k in RGB_STEPS[s] if not grey or k % 3 == 1)
            tasks.append(ViewTask(colours, s, keep, tuple((k // 3) * c + colours[k % 3] for k in keep)))
    plan = []
    for idx in coding_steps(c):
        mine = tuple(t for t in tasks if set(t.channels) <= set(idx))
        assert sorted(ch for t in mine for ch in t.channels) == sorted(idx), (c, idx)
        plan.append(mine)
    return tuple(plan)


def view_tensors(even: torch.Tensor, odd: torch.Tensor,
                 colours: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The RGB view (B, 3, h, w) and (B, 9, h, w) of an image's even (B, C, h, w) and odd (B, 3C, h, w)."""
    c = even.shape[1]
    if colours == (0, 1, 2) and c == 3:
        return even, odd
    e = even[:, list(colours)]  # (B, 3, h, w)
    o = odd[:, [p * c + colours[k] for p in range(3) for k in range(3)]]  # (B, 9, h, w)
    return e, o


@lru_cache(maxsize=4)
def _masks(rgb_step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(known, target, group) masks over the 9 RGB odd channels, as float (9,)."""
    known = torch.zeros(9)
    for s in range(rgb_step):
        known[list(RGB_STEPS[s])] = 1.0
    target = torch.zeros(9)
    target[list(RGB_STEPS[rgb_step])] = 1.0
    group = torch.zeros(9)
    group[[6, 7, 8] if rgb_step < 2 else [0, 1, 2, 3, 4, 5]] = 1.0
    return known, target, group


class StepInputs:
    """What a learned model needs for one RGB step (see the module docstring)."""

    __slots__ = ("x", "cond", "mean", "scale", "target", "live")

    def __init__(self, x, cond, mean, scale, target, live=None):
        #: (B, IN_CHANNELS, h, w) network input; the exact evaluation's: its ``live`` channels only
        self.x = x
        self.cond = cond  # (B, COND_CHANNELS) known and target masks
        self.mean = mean  # (B, 9, h, w) interpolation mean (pixel units), 0 outside the group
        self.scale = scale  # (B, 9, h, w) interpolation scale, 0 outside the group
        self.target = target  # (9,) float mask of the channels this step predicts
        #: the channels of ``x`` that may be nonzero (``live_channels``); None: any of them
        self.live: tuple[int, ...] | None = live


@lru_cache(maxsize=4)
def live_channels(rgb_step: int) -> tuple[int, ...]:
    """The input channels of RGB step ``rgb_step`` that are not masked to +-0 (``step_inputs``): the
    even pixels, the known odd channels and their residuals, the interpolation of the step's phase
    group. A step reads 9 to 25 of the 39; a convolution over the others adds only zeros."""
    kn, gr = _known_and_group(rgb_step)
    return tuple([0, 1, 2] + [3 + k for k in kn] + [12 + k for k in kn] + [21 + k for k in gr] + [30 + k for k in gr])


@lru_cache(maxsize=4)
def _known_and_group(rgb_step: int) -> tuple[list[int], list[int]]:
    """The odd channels (0..8) known before RGB step ``rgb_step``, and those of its phase group."""
    known, _, group = _masks(rgb_step)
    return [k for k in range(9) if known[k]], [k for k in range(9) if group[k]]


def step_inputs(even: torch.Tensor, odd: torch.Tensor, rgb_step: int,
                memo: dict[int, torch.Tensor] | None = None, exact: bool = False) -> StepInputs:
    """Build the inputs of RGB step ``rgb_step`` from a view's even (B, 3, h, w) and odd (B, 9, h, w).

    Odd channels not decoded before this step are masked out, whatever they hold, so
    training may pass the true odd values for every step (teacher forcing).

    ``memo`` (the codec's, one per view of a level's window, kept across its steps): each
    step's interpolation of its own channels, kept for the later steps' known residuals.
    The odd values a step's interpolation reads are decoded before it and never change
    afterwards, so the later steps would compute exactly these values again; with the
    memo each step's interpolation is computed once instead of once per later step.

    ``exact``: the inputs of the exact evaluation (``exact.py``): the 3x3 mean as a sum of nine
    integers over 9 (``avg_pool2d``'s order of operations is the kernel's) and the logarithm
    from a table (``exact_log``), so that only element-wise IEEE operations remain.
    """
    known, target, group = _masks(rgb_step)
    k = known.view(1, 9, 1, 1)
    mean, scale = interp_prediction(even, odd * k, rgb_step)  # (B, 9, h, w) each
    if memo is not None and rgb_step < len(RGB_STEPS) - 1:  # the last step's is never read
        memo[rgb_step] = mean[:, list(RGB_STEPS[rgb_step])]
    g = group.view(1, 9, 1, 1)
    ref = exact_local_mean(even) if exact else local_mean(even)  # (B, 3, h, w)
    ref9 = ref.repeat(1, 3, 1, 1)  # (B, 9, h, w), colour of channel p * 3 + c is c
    resid = torch.zeros_like(odd)  # (B, 9, h, w): decoded value minus its own step's interpolation
    for s in range(rgb_step):
        if memo is not None and s in memo:
            # the same values as below: 0 + (odd - m) * 1 on the step's channels, 0 + (+-0) elsewhere
            idx = list(RGB_STEPS[s])
            resid[:, idx] = odd[:, idx] - memo[s]
            continue
        ks, ts, _ = _masks(s)
        m, _ = interp_prediction(even, odd * ks.view(1, 9, 1, 1), s)
        resid = resid + (odd - m) * ts.view(1, 9, 1, 1)
    cond = torch.cat([known, target]).expand(even.shape[0], COND_CHANNELS)  # (B, 18)
    live = live_channels(rgb_step)
    if exact:
        x = _live_inputs(even, odd, ref, resid, mean, scale, rgb_step)
        return StepInputs(x, cond, mean, scale, target, live)
    # (B, IN_CHANNELS, h, w), each block computed in place where it lies, operation by operation
    # as the comments write it (the same values as concatenating the blocks, without their copies)
    x = torch.empty((even.shape[0], IN_CHANNELS, *even.shape[2:]), dtype=even.dtype)
    torch.sub(even, ref, out=x[:, 0:3]).div_(PIXEL_NORM)  # (even - ref) / PIXEL_NORM
    torch.sub(odd, ref9, out=x[:, 3:12]).mul_(k).div_(PIXEL_NORM)  # (odd - ref9) * k / PIXEL_NORM
    torch.div(resid, PIXEL_NORM, out=x[:, 12:21])  # resid / PIXEL_NORM
    torch.sub(mean, ref9, out=x[:, 21:30]).mul_(g).div_(PIXEL_NORM)  # (mean - ref9) * g / PIXEL_NORM
    torch.log(scale.clamp_min(1e-3), out=x[:, 30:39]).mul_(g)  # log(max(scale, 1e-3)) * g
    return StepInputs(x, cond, mean, scale, target, live)


def _live_inputs(even, odd, ref, resid, mean, scale, rgb_step: int) -> torch.Tensor:
    """The exact evaluation's input: the channels ``live_channels(rgb_step)`` of ``step_inputs``'s
    (B, IN_CHANNELS, h, w), in that order, laid out channels-last, each computed as there (a
    mask of 1 multiplies exactly; ``exact_log`` for the logarithm) and the rest not at all."""
    kn, gr = _known_and_group(rgb_step)
    b, _, h, w = even.shape
    x = torch.empty((b, h, w, 3 + 2 * len(kn) + 2 * len(gr)), dtype=even.dtype).permute(0, 3, 1, 2)
    torch.sub(even, ref, out=x[:, 0:3]).div_(PIXEL_NORM)  # (even - ref) / PIXEL_NORM
    at = 3
    if kn:
        ref_k = ref[:, [k % 3 for k in kn]]
        torch.sub(odd[:, kn], ref_k, out=x[:, at : at + len(kn)]).div_(PIXEL_NORM)  # (odd - ref9) / PIXEL_NORM
        at += len(kn)
        torch.div(resid[:, kn], PIXEL_NORM, out=x[:, at : at + len(kn)])  # resid / PIXEL_NORM
        at += len(kn)
    torch.sub(mean[:, gr], ref[:, [k % 3 for k in gr]], out=x[:, at : at + len(gr)]).div_(PIXEL_NORM)
    at += len(gr)
    x[:, at:] = exact_log(scale[:, gr])
    return x


#: the network's mean correction is multiplied by this many pixel units
MEAN_GAIN = 4.0
