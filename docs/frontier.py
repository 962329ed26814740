"""Bits against decode time: every predictor and effort as a point, and which are on the frontier.

    .venv/bin/python docs/frontier.py [--data /work/shared/data] [--sets val val-crops samples]
        [--configs default@4 interp@2 runs/big_e4.pt@4 ...] [--threads 2] [--json out.json]
    .venv/bin/python docs/frontier.py --tables out.json [more.json ...]

Issue 19 asks that every model be reported as bits against decode milliseconds per
megapixel, and that the models kept be those on that frontier. For each configuration
("MODEL@EFFORT": a registered model name or a checkpoint path, and a ``hidenet encode
--effort``; "MODEL@EFFORT/one" for the resolution-only stream, ``--no-layers``) and each
image set it measures, in this process:

* the lossless stream's size, in bits per pixel (the mean over the images, and the sum of
  the bytes against ``interp@2``, or ``interp@2/one`` for a one-pass stream: the built-in
  interpolation with the same per-image stages, the issue's reference for what the
  network earns);
* the decode time (``decoder.decode``, the best of two runs, after a warm-up), as
  milliseconds per megapixel over the set (total time / total pixels), and the encode
  time the same way (one run);

then marks the configurations no other beats on both bits and decode time (the frontier).
The sets: ``val``, the validation photographs of ``--data`` as they are (about 1 MP each);
``val-crops``, their central 768x512 (as issues 13 and 19 quote); ``samples``, the bundled
samples; ``photo-crops``, the central 768x512 of the photographs in ``--photos`` (camera
photographs at their own resolution, whose finest level is unlike a downscaled image's).
Start-up (Python, torch, the model's weights) is not counted: it is the same for every
configuration, about 1.4 s for the CLI. docs/training.md quotes what it prints.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from hidenet_core.codec.decoder import decode  # noqa: E402
from hidenet_core.codec.encoder import DEFAULT_EFFORT, EncodeSettings, encode  # noqa: E402
from hidenet_core.imageio import image_files  # noqa: E402
from hidenet_core.predictors import load_model  # noqa: E402
from hidenet_core.samples import sample_paths  # noqa: E402
from hidenet_core.tools.bench.images import load_images  # noqa: E402
from hidenet_core.tools.bench.progressive import RESOLUTION_ONLY  # noqa: E402
from hidenet_core.tools.bench.timing import best_of, machine_info  # noqa: E402

CONFIGS = ("interp@1", "interp@2", "default@3", f"default@{DEFAULT_EFFORT}", "default@5", "default@4/one")
REFERENCE = "interp@2"
CROP = (768, 512)


@dataclass(frozen=True)
class Config:
    """One point: a model, an effort, layered or not."""

    label: str
    model: str
    effort: int
    one_pass: bool

    @classmethod
    def parse(cls, text: str) -> Config:
        one_pass = text.endswith("/one")
        model, _, effort = text.removesuffix("/one").rpartition("@")
        if not model or not effort.isdigit():
            raise SystemExit(f"a configuration is MODEL@EFFORT or MODEL@EFFORT/one, got {text!r}")
        return cls(text, model, int(effort), one_pass)

    def settings(self) -> EncodeSettings:
        return EncodeSettings(layers=RESOLUTION_ONLY.layers if self.one_pass else None, effort=self.effort)


def measure(config: Config, images) -> dict:
    model = load_model(config.model)
    per_image, total_pixels, decode_s, encode_s = [], 0, 0.0, 0.0
    for image in images:
        t0 = time.perf_counter()
        data = encode(image.pixels, model, config.settings())
        encode_s += time.perf_counter() - t0
        decode(data, model)  # warm-up: the first run pays for allocations the others reuse
        _, seconds = best_of(lambda data=data: decode(data, model), repeats=2, budget_s=0)
        decode_s += seconds
        pixels = image.width * image.height
        total_pixels += pixels
        per_image.append({"image": image.name, "bytes": len(data), "bpp": 8 * len(data) / pixels,
                          "decode_s": seconds})
    mp = total_pixels / 1e6
    return {"per_image": per_image, "bytes": sum(im["bytes"] for im in per_image),
            "bpp": sum(im["bpp"] for im in per_image) / len(per_image),
            "decode_ms_per_mp": 1000 * decode_s / mp, "encode_ms_per_mp": 1000 * encode_s / mp}


def frontier(rows: dict[str, dict]) -> set[str]:
    """The labels no other row of the same kind of stream (layered, or one pass) beats on both
    bits and decode time (ties kept): a one-pass stream is smaller and faster, but it is not
    progressive in quality, so it is its own frontier."""
    def beaten(label: str, a: dict) -> bool:
        return any(_one_pass(other) == _one_pass(label)
                   and b["bytes"] <= a["bytes"] and b["decode_ms_per_mp"] <= a["decode_ms_per_mp"]
                   and (b["bytes"] < a["bytes"] or b["decode_ms_per_mp"] < a["decode_ms_per_mp"])
                   for other, b in rows.items())
    return {label for label, row in rows.items() if not beaten(label, row)}


def _one_pass(label: str) -> bool:
    return Config.parse(label).one_pass


def table(rows: dict[str, dict]) -> list[str]:
    on = frontier(rows)
    lines = ["| configuration | bpp (mean) | bytes vs interp@2 of its kind | decode ms/MP | encode ms/MP "
             "| frontier of its kind |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    for label, row in sorted(rows.items(), key=lambda kv: (_one_pass(kv[0]), kv[1]["decode_ms_per_mp"])):
        ref = rows.get(REFERENCE + ("/one" if _one_pass(label) else ""))
        vs = "" if ref is None else f"{row['bytes'] / ref['bytes'] - 1:+.2%}"
        lines.append(f"| {label} | {row['bpp']:.3f} | {vs} | {row['decode_ms_per_mp']:.0f} | "
                     f"{row['encode_ms_per_mp']:.0f} | {'yes' if label in on else ''} |")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="/work/shared/data", help="the team's data folder (its val/ is used)")
    p.add_argument("--sets", nargs="+", default=["val", "val-crops", "samples"],
                   choices=["val", "val-crops", "samples", "photo-crops"])
    p.add_argument("--photos", default=None, metavar="DIR",
                   help="the photographs of the photo-crops set (their central 768x512), e.g. the held-out "
                        "photographs of ../shared/data/large/fetch.sh")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS))
    p.add_argument("--threads", type=int, default=2, help="torch threads (the machine's 2 cores)")
    p.add_argument("--json", default=None, help="also write every figure here")
    p.add_argument("--tables", nargs="+", default=None, metavar="JSON",
                   help="measure nothing: print the tables of these --json files, merged")
    args = p.parse_args()
    if args.tables:
        merged: dict[str, dict] = {}
        for path in args.tables:
            for name, rows in json.loads(Path(path).read_text())["sets"].items():
                merged.setdefault(name, {}).update(rows)
        for name, rows in merged.items():
            print(f"\n{name}:\n")
            print("\n".join(table(rows)))
        return 0
    torch.set_num_threads(args.threads)
    configs = [Config.parse(c) for c in dict.fromkeys(args.configs)]
    results = {"date": time.strftime("%Y-%m-%d"), "machine": machine_info(), "threads": args.threads, "sets": {}}
    for name in args.sets:
        if name == "samples":
            images = load_images(sample_paths())
        elif name == "photo-crops":
            if not args.photos:
                p.error("the photo-crops set needs --photos DIR")
            images = load_images(image_files(Path(args.photos)), None, CROP)
        else:
            images = load_images(image_files(Path(args.data) / "val"), None, CROP if name == "val-crops" else None)
        rows = {}
        for config in configs:
            rows[config.label] = measure(config, images)
            r = rows[config.label]
            print(f"  {name} {config.label}: {r['bpp']:.3f} bpp, decode {r['decode_ms_per_mp']:.0f} ms/MP, "
                  f"encode {r['encode_ms_per_mp']:.0f} ms/MP", flush=True)
        results["sets"][name] = rows
    for name, rows in results["sets"].items():
        print(f"\n{name}:\n")
        print("\n".join(table(rows)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
