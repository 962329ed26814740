"""The predictors' arithmetic, computed in place for speed, gives the values of its formulas
bit for bit: every stream depends on them."""

from __future__ import annotations

import pytest
import torch

from hidenet_core.predictors.features import PIXEL_NORM, RGB_STEPS, _masks, local_mean, step_inputs
from hidenet_core.predictors.interp import (
    Interp,
    _interp_prediction_torch,
    _pair_blend,
    coding_steps,
    interp_prediction,
)


def _as_written(a, b, c, d):
    g1 = (a - b).abs()
    g2 = (c - d).abs()
    w1 = 1.0 / (1.0 + g1) ** 2
    w2 = 1.0 / (1.0 + g2) ** 2
    mean = (w1 * (a + b) + w2 * (c + d)) / (2.0 * (w1 + w2))
    stack = torch.stack([a, b, c, d])
    activity = (stack - stack.mean(0, keepdim=True)).abs().mean(0)
    return mean, activity


@pytest.mark.parametrize("shape", [(1, 3, 9, 7), (1, 3, 130, 211), (2, 6, 33, 45)])
@pytest.mark.parametrize("values", ["pixels", "fractions"])
def test_the_pair_blend_is_its_formula_bit_for_bit(shape, values):
    torch.manual_seed(sum(shape))
    b_, c_, h, w = shape
    grid = torch.rand(b_, c_, h + 1, w + 1) * 255
    if values == "pixels":
        grid = grid.round()
    # the views interpolate() passes: shifted windows of one padded plane
    a, b, c, d = grid[..., :-1, :-1], grid[..., :-1, 1:], grid[..., 1:, :-1], grid[..., 1:, 1:]
    before = grid.clone()
    mean, activity = _pair_blend(a, b, c, d)
    expected_mean, expected_activity = _as_written(a, b, c, d)
    assert torch.equal(mean, expected_mean) and torch.equal(activity, expected_activity)
    assert torch.equal(grid, before)  # the inputs are left as they were


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("values", ["pixels", "fractions"])
@pytest.mark.parametrize("size", [(23, 31), (1, 1), (1, 6), (5, 1), (2, 2)])
def test_interp_predicts_each_step_as_its_torch_definition_bit_for_bit(channels, values, size):
    """``Interp.forward`` (a compiled loop over the step's channels) and ``interp_prediction`` (the
    same loop over the phase group's) against ``_interp_prediction_torch`` (torch, the definition),
    edges included."""
    torch.manual_seed(channels)
    even = torch.rand(2, channels, *size) * 255
    odd = torch.rand(2, 3 * channels, *size) * 255
    if values == "pixels":
        even, odd = even.round(), odd.round()
    decoded = torch.zeros_like(odd)  # the odd values as the codec has them at each step
    for step, idx in enumerate(coding_steps(channels)):
        mean, scale = _interp_prediction_torch(even, decoded, step)
        got = Interp()(even, decoded, step, 0)
        assert torch.equal(got.mean, mean[:, list(idx)]), step
        assert torch.equal(got.scale, scale[:, list(idx)]), step
        every = interp_prediction(even, decoded, step)
        assert torch.equal(every[0], mean) and torch.equal(every[1], scale), step
        # a tensor the compiled loop does not take (autograd) gets the torch definition's values
        slow = Interp()(even.requires_grad_(), decoded, step, 0)
        even.requires_grad_(False)
        assert torch.equal(slow.mean, got.mean) and torch.equal(slow.scale, got.scale), step
        decoded[:, list(idx)] = odd[:, list(idx)]


def _inputs_as_written(even, odd, rgb_step):
    known, target, group = _masks(rgb_step)
    k = known.view(1, 9, 1, 1)
    mean, scale = interp_prediction(even, odd * k, rgb_step)
    g = group.view(1, 9, 1, 1)
    ref = local_mean(even)
    ref9 = ref.repeat(1, 3, 1, 1)
    resid = torch.zeros_like(odd)
    for s in range(rgb_step):
        ks, ts, _ = _masks(s)
        m, _ = interp_prediction(even, odd * ks.view(1, 9, 1, 1), s)
        resid = resid + (odd - m) * ts.view(1, 9, 1, 1)
    return torch.cat([(even - ref) / PIXEL_NORM, (odd - ref9) * k / PIXEL_NORM, resid / PIXEL_NORM,
                      (mean - ref9) * g / PIXEL_NORM, torch.log(scale.clamp_min(1e-3)) * g], 1)


@pytest.mark.parametrize("batch", [1, 2])
def test_the_network_inputs_are_their_formulas_bit_for_bit(batch):
    torch.manual_seed(batch)
    even = (torch.rand(batch, 3, 37, 29) * 255).round()
    odd = (torch.rand(batch, 9, 37, 29) * 255).round()
    memo: dict = {}
    for rgb_step in range(len(RGB_STEPS)):
        expected = _inputs_as_written(even, odd, rgb_step)
        assert torch.equal(step_inputs(even, odd, rgb_step).x, expected), rgb_step
        assert torch.equal(step_inputs(even, odd, rgb_step, memo).x, expected), rgb_step


def test_snapping_is_its_formula_bit_for_bit():
    from hidenet_core.predictors import base

    torch.manual_seed(3)
    mean, scale = torch.rand(1, 4, 30, 20) * 300 - 20, torch.rand(1, 4, 30, 20) * 200
    context = (torch.randn(1, 1, 16, 30, 20) * 5).expand(1, 4, 16, 30, 20)
    before = [t.clone() for t in (mean, scale, context)]
    got = base.snap(base.Prediction(mean, scale, context))
    grid = base.MEAN_GRID
    assert torch.equal(got.mean, torch.round(mean.clamp(0.0, 255.0) * grid) / grid)
    expected_scale = torch.round(scale.clamp(base.SCALE_MIN, base.SCALE_MAX) * grid) / grid
    assert torch.equal(got.scale, expected_scale.clamp_min(base.SCALE_MIN))
    expected_context = torch.round(context.clamp(-base.CONTEXT_MAX, base.CONTEXT_MAX) * base.CONTEXT_GRID)
    assert torch.equal(got.context, expected_context)
    assert all(torch.equal(t, b) for t, b in zip((mean, scale, context), before))  # inputs untouched
