"""Pilot: does the coarser level's error still tell anything once the per-image stages have run?

    .venv/bin/python docs/coarser_context.py [IMAGE ...] [--model default] [--full]

Issue 19 lists "features of the coarser level and of its residuals (where the coarser
level was hard to predict, so is this one)" among the contexts to try. Before any training
or format change, this measures what such a feature could still save on top of everything
a version-6 stream already does. For each image (by default the validation photographs of
``../shared/data/val``, cropped to their central 768x512; ``--full`` as they are) it
encodes the lossless one-pass stream (``--no-layers``) with the model and records, for
every odd value, the value and the mean and scale it was *actually* coded with (the
network, the calibration, the linear prediction and the scale context applied). Then, per
image, level and odd channel, it fits one feature of the level above to those
distributions and counts the bits (``codelength.laplace_bits``) saved on every value:

* **scale**: ``scale * 2 ** (a * (f - mean f))``, ``f`` the mean surprise
  (``scalecontext.surprise``, every colour) of the four pixels of the level above
  (this level's even image) around the value, a fitted on a subsample of 8192 values;
* **mean**: ``mean + a * g``, ``g`` the mean residual (value minus the mean it was coded
  with) of the same colour's odd values of the level above among those four pixels.

An upper bound in one respect (the weights are fitted on the image itself and cost no bits)
and a lower one in another (one weight per channel and level, not a network); docs/training.md
quotes what it prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from hidenet_core.codec import loop  # noqa: E402
from hidenet_core.codec.codelength import laplace_bits  # noqa: E402
from hidenet_core.codec.encoder import EncodeSettings, encode  # noqa: E402
from hidenet_core.codec.pyramid import PHASES, merge  # noqa: E402
from hidenet_core.codec.stages.scalecontext import surprise  # noqa: E402
from hidenet_core.imageio import center_crop, load_image  # noqa: E402
from hidenet_core.predictors import load_model  # noqa: E402

SCALE_WEIGHTS = np.arange(-0.30, 0.301, 0.025)  # octaves of scale per unit of mean surprise
BIASES = np.arange(-0.4, 0.401, 0.05)  # octaves: a recalibration alone, fitted with the weight
MEAN_WEIGHTS = np.arange(-0.6, 0.601, 0.05)  # of the level above's mean residual
FIT_VALUES = 8192


def coded_levels(pixels: np.ndarray, model) -> dict[int, dict[str, np.ndarray]]:
    """Encode ``pixels`` in one pass; per level its (3C, h, w) odd values, the means and scales they
    were coded with, which were coded, and its (C, h, w) even image."""
    levels: dict[int, dict[str, np.ndarray]] = {}
    original = loop.LevelPass._code_values

    def recording(self, chans, rows, means, scales, coder):
        original(self, chans, rows, means, scales, coder)
        r0, r1 = rows.start, rows.stop
        d = levels.setdefault(self.level, {"mean": np.zeros(self.odd.shape, np.float32),
                                           "scale": np.zeros(self.odd.shape, np.float32),
                                           "coded": np.zeros(self.odd.shape, bool), "even": self.even.copy()})
        valid = self.valid(r0, r1)[chans]
        for j, ch in enumerate(chans):
            d["mean"][ch, r0:r1][valid[j]] = means[j][valid[j]]
            d["scale"][ch, r0:r1][valid[j]] = scales[j][valid[j]]
            d["coded"][ch, r0:r1] |= valid[j]
        d["odd"] = self.odd

    loop.LevelPass._code_values = recording
    try:
        encode(pixels, model, EncodeSettings(layers=()))
    finally:
        loop.LevelPass._code_values = original
    for d in levels.values():
        d["odd"] = d["odd"].copy()
    return levels


def _bits(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    t = [torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in (x, mean, scale)]
    return laplace_bits(*t).numpy()


def _around(plane: np.ndarray, phase: int, h: int, w: int) -> np.ndarray:
    """The mean of ``plane`` (the level above's full image, at least h x w) over the four pixels
    around each odd value of ``phase`` (its even neighbours), on the (h, w) grid."""
    p = np.pad(plane[:h, :w], ((0, 1), (0, 1)), mode="edge")
    dy, dx = PHASES[phase]
    return (p[:h, :w] + p[dy:dy + h, :w] + p[:h, dx:dx + w] + p[dy:dy + h, dx:dx + w]) / 4


def pilot(levels: dict[int, dict[str, np.ndarray]], rng: np.random.Generator) -> dict[int, list[float]]:
    """Per level: [bits as coded, with the scale feature, with the mean feature]."""
    top = max(levels)
    c = levels[0]["even"].shape[0]
    shape = levels[top]["even"].shape
    surprises, residuals = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    full: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for k in range(top, -1, -1):  # each level's full image: its own odd values' surprise and residual
        d = levels[k]
        q, r = np.zeros(d["odd"].shape, np.float32), np.zeros(d["odd"].shape, np.float32)
        cd = d["coded"]
        q[cd] = surprise(d["odd"][cd], d["mean"][cd], d["scale"][cd])
        r[cd] = d["odd"][cd].astype(np.float32) - d["mean"][cd]
        h, w = d["even"].shape[1:]
        surprises = merge(surprises[:, :h, :w], q, None)  # the levels above keep theirs at the even pixels
        residuals = merge(np.zeros_like(residuals[:, :h, :w]), r, None)  # this level's residuals only
        full[k] = (surprises, residuals)
    out: dict[int, list[float]] = {}
    for k in range(top):
        d = levels[k]
        h, w = d["even"].shape[1:]
        above_q, above_r = full[k + 1]
        f_all = above_q.sum(0)
        for ch in range(3 * c):
            coded = d["coded"][ch]
            if coded.sum() < 64:
                continue
            x, m, s = d["odd"][ch][coded], d["mean"][ch][coded], d["scale"][ch][coded]
            f = _around(f_all, ch // c, h, w)[coded]
            f = f - f.mean()
            g = _around(above_r[ch % c], ch // c, h, w)[coded]
            sub = rng.choice(x.size, min(x.size, FIT_VALUES), replace=False)
            a, b = min(((a, b) for a in SCALE_WEIGHTS for b in BIASES),
                       key=lambda ab: _bits(x[sub], m[sub], s[sub] * 2.0 ** (ab[0] * f[sub] + ab[1])).sum())
            am = min(MEAN_WEIGHTS, key=lambda a: _bits(x[sub], m[sub] + a * g[sub], s[sub]).sum())
            base = _bits(x, m, s).sum()
            row = out.setdefault(k, [0.0, 0.0, 0.0])
            row[0] += base
            row[1] += min(base, _bits(x, m, s * 2.0 ** (a * f + b)).sum())
            row[2] += min(base, _bits(x, m + am * g, s).sum())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "val"
    p.add_argument("images", nargs="*", type=Path, help=f"images (default: {default}/*.png)")
    p.add_argument("--model", default="default", help="model name or checkpoint (default: default)")
    p.add_argument("--full", action="store_true", help="the images as they are, not their central 768x512")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.model)
    rng = np.random.default_rng(0)
    totals: dict[int, list[float]] = {}
    for path in args.images or sorted(default.glob("*.png")):
        pixels = load_image(path).pixels
        if not args.full:
            pixels = center_crop(pixels, 768, 512)
        per_level = pilot(coded_levels(pixels, model), rng)
        base, scaled, meaned = (sum(v[i] for v in per_level.values()) for i in range(3))
        print(f"{path.name}: {base / 8 / 1024:.1f} KB coded; the scale feature saves {100 * (1 - scaled / base):.2f}%, "
              f"the mean feature {100 * (1 - meaned / base):.2f}%", flush=True)
        for k, row in per_level.items():
            total = totals.setdefault(k, [0.0, 0.0, 0.0])
            for i in range(3):
                total[i] += row[i]
    print("\n| level | KB coded | scale feature | mean feature |\n| ---: | ---: | ---: | ---: |")
    for k, (base, scaled, meaned) in sorted(totals.items()):
        print(f"| {k} | {base / 8 / 1024:.1f} | {100 * (1 - scaled / base):.2f}% | {100 * (1 - meaned / base):.2f}% |")
    base, scaled, meaned = (sum(v[i] for v in totals.values()) for i in range(3))
    print(f"| all | {base / 8 / 1024:.1f} | {100 * (1 - scaled / base):.2f}% | {100 * (1 - meaned / base):.2f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
