"""What would a refinement layer that codes the lead colour only cost, and show? (issue 13)

    .venv/bin/python docs/lead_layers.py [--sets samples val photos] [--photos DIR]
        [--second 8 4] [--max-images N] [--json out.json]

A second layer (``docs/schedules.py``'s "32+8") shows a far better picture at 30 to 60 KB
than the default "32" but costs 3 to 9% more bytes in all. Measured per coding step (the
chunks of a split pass, docs/format.md "Where a second layer's bytes go"), nearly all of
that is in the steps of red and blue: a layer codes
them at max error d given green known only within d, where the last pass knows green
exactly; red and blue follow green's detail closely in photographs, so their coarse bins are
nearly free under the last pass's context and dear under the layer's.

This script emulates, from real streams of the current format, a second layer that refines
the **lead colour only** (green; every channel of a level it makes exact) and leaves red and
blue in the intervals of the first layer, shown as the interpolation's estimate inside them
(the viewer's estimate between layers, ``loop.estimate_level``: red and blue follow the
refined green through the interpolation's green residual):

* **bytes**: the first layer of the default stream, then the lead-colour parts of the
  "32+N" stream's second layer, every channel of the levels it makes exact (a pass over a
  level of at least 4096 positions is split by coding step, so its green parts are exact
  figures; a smaller level's single part is counted whole, an over-estimate), then a last
  layer whose green parts are the "32+N" stream's and whose red and blue parts are the
  default stream's (the same values coded from the same context: green exact, red and blue
  within the first layer's intervals);
* **picture**: the PSNR of the full-size image at the end of that layer, against the
  "32+N" stream's own picture at the end of its second layer (the model's preview, no
  display filter, as ``hidenet decode --preview`` of that prefix).

No format carries such a layer yet; this measures whether one is worth a format version.
docs/format.md ("Choosing the layers") quotes what it prints.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))
from schedules import levels_of, load_set, parse_schedule  # noqa: E402

from hidenet_core.codec.container import stream_info  # noqa: E402
from hidenet_core.codec.decoder import ProgressiveDecoder  # noqa: E402
from hidenet_core.codec.encoder import EncodeSettings, encode  # noqa: E402
from hidenet_core.codec.loop import estimate_level  # noqa: E402
from hidenet_core.codec.plan import is_lead_step  # noqa: E402
from hidenet_core.metrics import psnr  # noqa: E402
from hidenet_core.predictors import load_model  # noqa: E402
from hidenet_core.predictors.interp import coding_steps, lead_channel  # noqa: E402
from hidenet_core.tools.bench import progressive  # noqa: E402

CHUNK_HEADER = 16  # bytes of a layered chunk's header besides its payload (docs/format.md)


def _snapshot(rec) -> dict[int, tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]]:
    """Each decoded level's odd values and, where a later pass refines them, their intervals."""
    out = {}
    for k, odd in rec.odd.items():
        bounds = rec.intervals.get(k)
        lohi = None
        if bounds is not None:
            lo, hi = bounds.strip(list(range(odd.shape[0])), 0, odd.shape[1])
            lohi = (np.array(lo), np.array(hi))
        out[k] = (odd.copy(), lohi)
    return out


def lead_steps(channels: int) -> set[int]:
    return {s for s in range(len(coding_steps(channels))) if is_lead_step(channels, s)}


def measure(image, model, interp, second: int) -> dict:
    px = image.pixels
    channels = px.shape[2]
    one = len(encode(px, model, progressive.RESOLUTION_ONLY))
    default = encode(px, model, EncodeSettings())
    levels = levels_of(default)
    layers = parse_schedule(f"32+{second}", levels)
    two = encode(px, model, EncodeSettings(layers=layers))
    chunks, chunks1 = stream_info(two)["chunks"], stream_info(default)["chunks"]
    dec = ProgressiveDecoder(model)
    snaps, ends, fed, full = {}, {}, 0, None
    for i, c in enumerate(chunks):
        dec.feed(two[fed : c["total_bytes"]])
        fed = c["total_bytes"]
        if i + 1 == len(chunks) or chunks[i + 1]["layer"] != c["layer"]:
            snaps[c["layer"]], ends[c["layer"]] = _snapshot(dec.reconstruction), c["total_bytes"]
            if c["layer"] == 1:
                full = dec.preview()
                break
    rec = dec.reconstruction
    # the levels the second layer refines without making them exact: only their lead colour is coded
    partial = [k for k in range(levels + 1) if 0 < layers[1][k] < layers[0][k]]
    lead, leads = lead_channel(channels), lead_steps(channels)
    x = rec.image(max(partial) + 1)
    for k in sorted(partial, reverse=True):
        odd2, _ = snaps[1][k]
        _, (lo, hi) = snaps[0][k]
        coded = np.zeros(odd2.shape, bool)
        coded[[p * channels + lead for p in range(3)]] = True
        x = estimate_level(interp, x, rec.shapes[k], k, lo, hi, known=odd2, coded=coded)
    picture = x.transpose(1, 2, 0)

    def is_lead(c: dict) -> bool:  # a part that codes the lead colour only (a small level's one part: all)
        return c["parts"] == 1 or c["part"] in leads

    second_layer = sum(c["payload_bytes"] + CHUNK_HEADER for c in chunks
                       if c["layer"] == 1 and (c["level"] not in partial or is_lead(c)))
    last_two = {(c["level"], c["part"]): c for c in chunks if c["layer"] == 2}
    last = 0
    exact = {k for k in range(levels + 1) if layers[1][k] == 0 < layers[0][k]}  # the second layer finished them
    for c in chunks1:  # the default stream's last layer, green of the partly refined levels from "32+N"
        if c["layer"] == 1 and c["level"] not in exact:
            lead_part = c["level"] in partial and c["parts"] > 1 and c["part"] in leads
            last += (last_two[(c["level"], c["part"])] if lead_part else c)["payload_bytes"] + CHUNK_HEADER
    total = ends[0] + second_layer + last
    return {"image": image.name, "one_pass": one, "default": len(default), "full": len(two), "lead_only": total,
            "first_layer_end": ends[0], "full_second_end": ends[1], "full_second_psnr": psnr(full, px),
            "lead_second_end": ends[0] + second_layer, "lead_second_psnr": psnr(picture, px)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", nargs="+", default=["samples", "val"], choices=["samples", "val", "photos"])
    p.add_argument("--data", default="/work/shared/data", help="the team's data folder (its val/ is used)")
    p.add_argument("--photos", default=None, help="for --sets photos: the PNG folder of large/fetch.sh")
    p.add_argument("--second", nargs="+", type=int, default=[8, 4], help="the second layer's max error at level 0")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    model, interp = load_model("default"), load_model("interp")
    rows = []
    for name in args.sets:
        try:
            images = load_set(name, args.data, args.photos, args.max_images)
        except ValueError as exc:
            p.error(str(exc))
        for image in images:
            for second in args.second:
                t0 = time.perf_counter()
                r = {"set": name, "second": second, **measure(image, model, interp, second)}
                rows.append(r)
                one = r["one_pass"]
                print(f"{name:7s} {image.name[:14]:14s} +{second}: 32 {r['default'] / one - 1:+.2%}, "
                      f"32+{second} {r['full'] / one - 1:+.2%}, lead only {r['lead_only'] / one - 1:+.2%}; "
                      f"after the second layer: {r['full_second_end'] / 1024:.1f} KB {r['full_second_psnr']:.2f} dB,"
                      f" lead only {r['lead_second_end'] / 1024:.1f} KB {r['lead_second_psnr']:.2f} dB "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
