"""Issue 19's mixture pilot: would a mixture of Laplaces per value code fewer bits than one Laplace?

The shipped model's trunk is frozen; on top of its 16 trunk features a 1x1 head is trained,
teacher forced on crops of the training images (as ``hidenet train`` draws them), in two forms
from the same start (the shipped head), for the same steps and learning rate:

- ``laplace``: the shipped head retrained alone (what more training of the head gives by itself);
- ``mixture``: K Laplace components per value, each with its own mean offset and scale and a
  weight (softmax), all from the trunk features; component 0 starts as the shipped head and the
  others as wider or narrower copies, so the mixture starts at the shipped model's bits or below.

Both are scored on validation crops (192 px, levels 0 to 3) against the shipped model. The gap
between the two rows is what a mixture distribution is worth, before any per-image stage; a
version of the format would pay it back only if it is several percent.

    python docs/mixture_pilot.py --data ../shared/data/train --val ../shared/data/val --steps 1500
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn
from torch.utils.data import DataLoader

from hidenet_core.codec.codelength import laplace_bits
from hidenet_core.codec.pyramid import split
from hidenet_core.predictors import load_model
from hidenet_core.predictors.base import SCALE_MAX, SCALE_MIN
from hidenet_core.predictors.features import MEAN_GAIN, RGB_STEPS, step_inputs
from hidenet_core.predictors.learned import stack_inputs
from hidenet_core.tools.train import CropDataset

_LOG_MIN, _LOG_MAX = math.log(SCALE_MIN), math.log(SCALE_MAX)


class Head(nn.Module):
    """A 1x1 head over the trunk features: K components of (mean offset, log-scale, logit) per odd channel."""

    def __init__(self, shipped: nn.Conv2d, k: int) -> None:
        super().__init__()
        f = shipped.in_channels
        self.k = k
        self.conv = nn.Conv2d(f, 9 * (3 * k - (k == 1)), 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            w, b = shipped.weight, shipped.bias  # (18, F, 1, 1): 9 mean corrections, 9 log-scales
            spread = torch.linspace(-0.7, 0.7, k) if k > 1 else torch.zeros(1)
            for c in range(k):
                self.conv.weight[c * 9 : (c + 1) * 9] = w[:9]  # the mean corrections
                self.conv.bias[c * 9 : (c + 1) * 9] = b[:9]
                s = slice(9 * k + c * 9, 9 * k + (c + 1) * 9)
                self.conv.weight[s] = w[9:]
                self.conv.bias[s] = b[9:] + spread[c]

    def bits(self, features: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor,
             x: torch.Tensor) -> torch.Tensor:
        """(B, 9, h, w) bits of ``x`` given the interpolation's mean and scale (the network's base)."""
        out = self.conv(features)
        k = self.k
        logps, logits = [], []
        for c in range(k):
            m = mean + MEAN_GAIN * out[:, c * 9 : (c + 1) * 9]
            ls = torch.log(scale.clamp_min(SCALE_MIN)) + out[:, 9 * k + c * 9 : 9 * k + (c + 1) * 9]
            s = torch.exp(ls.clamp(_LOG_MIN, _LOG_MAX))
            logps.append(-laplace_bits(x, m, s) * math.log(2.0))
            if k > 1:
                logits.append(out[:, 18 * k + c * 9 : 18 * k + (c + 1) * 9])
        if k == 1:
            return -logps[0] / math.log(2.0)
        logw = torch.log_softmax(torch.stack(logits), 0)
        return -torch.logsumexp(logw + torch.stack(logps), 0) / math.log(2.0)


def batch_terms(model, pixels: torch.Tensor, level: torch.Tensor):
    """Teacher-forced inputs of the four steps: per odd value the trunk features of its own step,
    the interpolation's mean and scale, and the true value (each (B, ., h, w))."""
    even, odd = split(pixels)
    inputs = stack_inputs([step_inputs(even, odd, s) for s in range(len(RGB_STEPS))])
    with torch.no_grad():
        _, _, features = model._predict(inputs, level.repeat(len(RGB_STEPS)))
    b = pixels.shape[0]
    target = inputs.target.view(len(RGB_STEPS), b, 9, 1, 1)
    pick = lambda t: (t.view(len(RGB_STEPS), b, *t.shape[1:]) * target).sum(0)  # noqa: E731
    return features.view(len(RGB_STEPS), b, *features.shape[1:]), target, pick(inputs.mean), pick(inputs.scale), odd


def score(head: Head, model, loader) -> float:
    total, n = 0.0, 0
    with torch.no_grad():
        for pixels, level in loader:
            features, target, mean, scale, odd = batch_terms(model, pixels, level)
            bits = sum(head.bits(features[s], mean, scale, odd) * target[s] for s in range(len(RGB_STEPS)))
            total += float(bits.sum())
            n += odd.numel()
    return total / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--model", default="default")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--components", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    val = DataLoader(CropDataset(args.val, 192, 32, 3, 0.0, 1), batch_size=8)
    shipped = Head(model.head, 1)
    print(f"shipped model: {score(shipped, model, val):.4f} bits per odd value (val crops)", flush=True)
    for k in args.components:
        torch.manual_seed(0)
        head = Head(model.head, k)
        print(f"K={k} at start: {score(head, model, val):.4f}", flush=True)
        opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=1e-4)
        data = CropDataset(args.data, 96, max(1, args.steps * 16 // 15 + 1), 3, 0.1, 0, 0.2, 6.0)
        loader = DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
        t0, step = time.perf_counter(), 0
        for pixels, level in loader:
            features, target, mean, scale, odd = batch_terms(model, pixels, level)
            bits = sum(head.bits(features[s], mean, scale, odd) * target[s] for s in range(len(RGB_STEPS)))
            loss = bits.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % 250 == 0:
                print(f"  step {step}: train {float(loss.detach()):.4f} bits per odd value", flush=True)
            if step >= args.steps:
                break
        print(f"K={k} after {step} steps ({time.perf_counter() - t0:.0f} s): {score(head, model, val):.4f} bits per "
              f"odd value (val crops)", flush=True)


if __name__ == "__main__":
    main()
