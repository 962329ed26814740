"""The non-learned predictor: edge-directed interpolation with a gradient-based scale.

It fixes the coding order every predictor in this package uses (after the hierarchical
interpolation of lossless coders such as CALIC's and FLIF's interlaced mode):

1. the diagonal phase (1, 1), from its four diagonal even neighbours;
2. the phases (0, 1) and (1, 0), from their two even and two diagonal neighbours, which
   step 1 has just decoded (a four-connected neighbourhood).

Within each phase group, colour images code green first and then red and blue with
green's residual added to their interpolation (inter-channel decorrelation), so a
phase group is two steps. The learned models predict a correction on top of these
functions and keep the same steps.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..codec.compiled import jit
from .base import Prediction, Predictor

__all__ = ["Interp", "coding_steps", "interpolate", "lead_channel", "lead_odd_channels", "warm_up"]

# scale = SCALE_BIAS + SCALE_SLOPE * neighbourhood activity (fitted on photographs)
SCALE_BIAS = 0.9
SCALE_SLOPE = 0.55


def lead_channel(channels: int) -> int:
    """The colour coded first in each phase group: green for RGB(A), else the only one."""
    return 1 if channels >= 3 else 0


def lead_odd_channels(channels: int) -> tuple[int, ...]:
    """The lead colour's channels among a level's 3C odd channels (phase-major: channel ``ch`` is
    colour ``ch % C`` of phase ``ch // C``)."""
    return tuple(ch for ch in range(3 * channels) if ch % channels == lead_channel(channels))


def coding_steps(channels: int) -> tuple[tuple[int, ...], ...]:
    """Odd channel indices per coding step: diagonal phase, then the two others.

    Each phase group is split into (lead colour) and (the other channels).
    """
    c = channels
    lead = lead_channel(c)
    others = [k for k in range(c) if k != lead]
    diag = 2 * c  # channel offset of phase (1, 1)
    steps: list[tuple[int, ...]] = [(diag + lead,)]
    if others:
        steps.append(tuple(diag + k for k in others))
    steps.append((lead, c + lead))
    if others:
        steps.append(tuple(p * c + k for p in (0, 1) for k in others))
    return tuple(steps)


def phase_group(channels: int, step: int) -> tuple[int, range]:
    """The phase group coding step ``step`` belongs to (0: the diagonal phase, 1: phases (0, 1) and
    (1, 0)) and the odd channels of that group."""
    c = channels
    if min(coding_steps(c)[step]) >= 2 * c:
        return 0, range(2 * c, 3 * c)
    return 1, range(0, 2 * c)


def _pair_blend(a, b, c, d):
    """Blend the averages of pairs (a, b) and (c, d), favouring the smoother pair:
    ``w1 = 1 / (1 + |a - b|)^2``, ``w2`` likewise, the mean ``(w1 (a + b) + w2 (c + d)) /
    (2 (w1 + w2))``, and the activity the mean absolute deviation of the four values.

    Computed in place, operation by operation as written above (the same values, bit for
    bit: tests/core/predictors/test_in_place.py), on the fewest temporaries: a third of the
    time of the plain expressions on a large level."""
    w1 = torch.sub(a, b).abs_().add_(1.0).pow_(2).reciprocal_()
    w2 = torch.sub(c, d).abs_().add_(1.0).pow_(2).reciprocal_()
    mean = torch.add(a, b).mul_(w1)
    mean.add_(torch.add(c, d).mul_(w2))
    mean.div_(w1.add_(w2).mul_(2.0))
    stack = torch.stack([a, b, c, d])
    activity = stack.sub_(stack.mean(0, keepdim=True)).abs_().mean(0)
    return mean, activity


def interpolate(even: torch.Tensor, odd: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolated values and neighbourhood activity for a phase group.

    even: (B, C, h, w); odd: (B, 3C, h, w) with the diagonal phase decoded when group == 1.
    group 0: the diagonal phase, returns (B, C, h, w) twice.
    group 1: phases (0, 1) and (1, 0), returns (B, 2C, h, w) twice in that order.
    """
    c = even.shape[1]
    if group == 0:
        e = F.pad(even, (0, 1, 0, 1), mode="replicate")  # (B, C, h+1, w+1)
        tl, tr = e[..., :-1, :-1], e[..., :-1, 1:]
        bl, br = e[..., 1:, :-1], e[..., 1:, 1:]
        return _pair_blend(tl, br, tr, bl)
    diag = odd[:, 2 * c : 3 * c]  # (B, C, h, w), pixel (2i+1, 2j+1)
    e = F.pad(even, (0, 1, 0, 1), mode="replicate")
    d = F.pad(diag, (1, 0, 1, 0), mode="replicate")  # d[i+1, j+1] = diag[i, j]
    # phase (0, 1) at (2i, 2j+1): left/right even, up/down diagonal
    m01, a01 = _pair_blend(e[..., :-1, :-1], e[..., :-1, 1:], d[..., :-1, 1:], d[..., 1:, 1:])
    # phase (1, 0) at (2i+1, 2j): up/down even, left/right diagonal
    m10, a10 = _pair_blend(e[..., :-1, :-1], e[..., 1:, :-1], d[..., 1:, :-1], d[..., 1:, 1:])
    return torch.cat([m01, m10], 1), torch.cat([a01, a10], 1)


class Interp(Predictor):
    """Edge-directed interpolation plus a scale from the local gradient. No weights.

    The baseline every learned predictor must beat, and a fast model for tests.
    """

    name = "interp"
    distribution = "laplace"
    #: a phase is interpolated from its nearest even and diagonal neighbours: one row each way
    context_rows = 1

    def steps(self, channels: int) -> tuple[tuple[int, ...], ...]:
        return coding_steps(channels)

    def forward(self, even: torch.Tensor, odd: torch.Tensor, step: int, level: int) -> Prediction:
        """``interp_prediction``'s mean and scale of the step's channels, computed for those alone
        (``_compiled``) where the tensors are plain float32 on the CPU."""
        idx = coding_steps(even.shape[1])[step]
        if _plain(even, odd):
            return Prediction(*_compiled(even, odd, step, idx))
        mean, scale = interp_prediction(even, odd, step)
        return Prediction(mean[:, list(idx)], scale[:, list(idx)])


def _plain(*tensors: torch.Tensor) -> bool:
    """Whether the compiled loop takes these tensors: float32 on the CPU, outside autograd."""
    return all(t.dtype == torch.float32 and t.device.type == "cpu" and not t.requires_grad for t in tensors)


def _compiled(even: torch.Tensor, odd: torch.Tensor, step: int, chans: tuple[int, ...],
              out: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``_interp_prediction_torch``'s mean and scale of the odd channels ``chans`` (of the step's
    phase group) at ``step``, (B, len(chans), h, w) each (``out`` where given), by a compiled loop
    (``_step_kernel``): the same float32 values bit for bit (tests/core/predictors/test_in_place.py),
    at a fraction of the cost (a tenth on a 12 MP photograph's levels)."""
    c = even.shape[1]
    idx = coding_steps(c)[step]
    lead = lead_channel(c)
    corrected = c >= 3 and lead not in [k % c for k in idx]  # red and blue: green's residual added
    b, _, h, w = even.shape
    if out is None:
        out = (torch.empty((b, len(chans), h, w), dtype=torch.float32) for _ in range(2))
    mean, scale = out
    group, _ = phase_group(c, step)
    channels = np.array(chans, dtype=np.int64)
    for i in range(b):
        _step_kernel(even[i].contiguous().numpy(), odd[i].contiguous().numpy(), group, channels, corrected, lead,
                     mean[i].numpy(), scale[i].numpy())
    return mean, scale


_F = np.float32
_ONE, _TWO, _QUARTER = _F(1.0), _F(2.0), _F(0.25)
_BIAS, _SLOPE = _F(SCALE_BIAS), _F(SCALE_SLOPE)
_HALF, _RESID_SLOPE, _RESID_BIAS = _F(0.5), _F(0.35), _F(0.3)


@jit(ieee_division=True)
def _blend(a, b, c, d):  # pragma: no cover - compiled
    """``_pair_blend`` of four float32 values: its operations in its order, in float32 (torch
    multiplies by a Python number as a float32, and takes the mean of four as their sum in order
    times 1/4). Its divisors are at least 1."""
    g1 = abs(a - b) + _ONE
    g2 = abs(c - d) + _ONE
    w1 = _ONE / (g1 * g1)
    w2 = _ONE / (g2 * g2)
    mean = (a + b) * w1 + (c + d) * w2
    mean = mean / ((w1 + w2) * _TWO)
    mu = (((a + b) + c) + d) * _QUARTER
    activity = (((abs(a - mu) + abs(b - mu)) + abs(c - mu)) + abs(d - mu)) * _QUARTER
    return mean, activity


@jit(ieee_division=True)
def _blend_rows(a, b, c, d, mean, activity):  # pragma: no cover - compiled
    """``_blend`` of four rows (1-D views of one length) into ``mean`` and ``activity``."""
    for j in range(mean.size):
        mean[j], activity[j] = _blend(a[j], b[j], c[j], d[j])


@jit(ieee_division=True)
def _interp_row(even, diag, group, k, p, i, mean, activity):  # pragma: no cover - compiled
    """``interpolate``'s values and activities of colour ``k`` on grid row ``i`` of phase ``p``
    (2: diagonal; 0: (0, 1); 1: (1, 0)), edges replicated: the inner positions as whole rows
    (which the compiler vectorises), the one at the edge on its own."""
    h, w = even.shape[1], even.shape[2]
    e, e1 = even[k, i], even[k, min(i + 1, h - 1)]
    last = w - 1
    if group == 0:  # tl, br, tr, bl
        _blend_rows(e[:last], e1[1:], e[1:], e1[:last], mean[:last], activity[:last])
        mean[last], activity[last] = _blend(e[last], e1[last], e[last], e1[last])
    elif p == 0:  # left and right even, the diagonal values above and below
        d, up = diag[k, i], diag[k, max(i - 1, 0)]
        _blend_rows(e[:last], e[1:], up[:last], d[:last], mean[:last], activity[:last])
        mean[last], activity[last] = _blend(e[last], e[last], up[last], d[last])
    else:  # the even values above and below, the diagonal ones left and right
        d = diag[k, i]
        _blend_rows(e[1:], e1[1:], d[:last], d[1:], mean[1:], activity[1:])
        mean[0], activity[0] = _blend(e[0], e1[0], d[0], d[0])


@jit(ieee_division=True)
def _step_kernel(even, odd, group, chans, corrected, lead, mean, scale):  # pragma: no cover - compiled
    """``Interp.forward`` of one image: (C, h, w) even, (3C, h, w) odd, float32; the odd channels
    ``chans`` of the step into ``mean`` and ``scale`` (k, h, w)."""
    c, h, w = even.shape
    diag = odd[2 * c : 3 * c]
    activity = np.empty(w, dtype=np.float32)
    green, green_activity = np.empty(w, dtype=np.float32), np.empty(w, dtype=np.float32)
    for i in range(h):
        done = -1  # the phase whose green row is in ``green``
        for t in range(chans.size):
            ch = chans[t]
            k = ch % c
            p = 2 if group == 0 else ch // c
            m, s = mean[t, i], scale[t, i]
            _interp_row(even, diag, group, k, p, i, m, activity)
            for j in range(w):
                s[j] = _BIAS + _SLOPE * activity[j]
            if corrected and (k == 0 or k == 2):  # red and blue: green's residual added
                if done != p:
                    _interp_row(even, diag, group, lead, p, i, green, green_activity)
                    done = p
                g = odd[p * c + lead, i]
                for j in range(w):
                    resid = g[j] - green[j]
                    m[j] = m[j] + resid
                    s[j] = _HALF * s[j] + _RESID_SLOPE * abs(resid) + _RESID_BIAS


def interp_prediction(even: torch.Tensor, odd: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolation mean and scale for *all* 3C odd channels as seen at ``step``.

    Channels outside the step's phase group are zero. Useful as the base that learned
    models correct. Computed by ``_compiled`` where the tensors are plain float32 on the CPU,
    else by ``_interp_prediction_torch``, the definition.
    """
    if not _plain(even, odd):
        return _interp_prediction_torch(even, odd, step)
    _, group = phase_group(even.shape[1], step)
    first, stop = group.start, group.stop
    mean, scale = (torch.zeros_like(odd, memory_format=torch.contiguous_format) for _ in range(2))
    _compiled(even, odd, step, tuple(group), (mean[:, first:stop], scale[:, first:stop]))
    return mean, scale


def _interp_prediction_torch(even: torch.Tensor, odd: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``interp_prediction`` in torch, operation by operation: its definition."""
    c = even.shape[1]
    idx = coding_steps(c)[step]
    group, group_channels = phase_group(c, step)
    interp, activity = interpolate(even, odd, group)
    mean = torch.zeros_like(odd)
    scale = torch.zeros_like(odd)
    lo = group_channels.start
    mean[:, lo : lo + interp.shape[1]] = interp
    scale[:, lo : lo + interp.shape[1]] = SCALE_BIAS + SCALE_SLOPE * activity
    lead = lead_channel(c)
    if c >= 3 and lead not in [k % c for k in idx]:
        # red and blue: add green's residual, already decoded in the previous step
        phases = (2,) if group == 0 else (0, 1)
        for p in phases:
            g = p * c + lead
            resid = odd[:, g] - mean[:, g]
            for k in (0, 2):
                mean[:, p * c + k] = mean[:, p * c + k] + resid
                scale[:, p * c + k] = 0.5 * scale[:, p * c + k] + 0.35 * resid.abs() + 0.3
    return mean, scale


def warm_up() -> None:
    """Compile (or load from numba's cache) ``Interp``'s loops for grey and colour images, so that a
    server pays it at start-up, not its first viewer."""
    model = Interp()
    for c in (1, 3):
        even, odd = torch.zeros(1, c, 2, 3), torch.zeros(1, 3 * c, 2, 3)
        for step in range(len(coding_steps(c))):
            model(even, odd, step, 0)
