"""Which layer schedule should the encoder use by default? Measure candidates by rate-distortion.

    .venv/bin/python docs/schedules.py [--data /work/shared/data] [--sets samples val]
        [--schedules 64 32 16 32+8 ...] [--max-images N] [--json out.json]
        [--sets photos --photos DIR]

For each candidate schedule (the layers before the last, lossless one) and each image set
it measures, with the shipped default model:

* the lossless stream's total bytes against the one-pass (resolution-only) stream of the
  same image: per image, their mean and the worst;
* the PSNR the viewer shows after 2, 4, 8, 16, 32 and 64 KB: the model's full-size
  preview of the last complete chunk, with the display filter, pooled over the images,
  exactly as `hidenet bench` computes it (``hidenet_core.tools.bench.progressive``),
  against the progressive JPEG q90 cut at the same budgets.

A schedule is written as its layers joined by "+", each layer by its max error at level 0,
halved at each coarser level, the base exact ("32" = 32,16,8,4,2,0 for 768x512, the
default of versions 6 to 9; "32+8" adds a second layer 8,4,2,1,0,0), or a
layer given in full, level 0 first ("8,8,4,2,1,0"), or as level 0's max error and level
1's, halved from there ("48:16" = 48,16,8,4,2,0 for 768x512); a layer may add, after "@", the
max error of the colours other than green, written the same way (format version 10: "16@64+8@32",
green within 16 and red and blue within 64, then 8 and 32, is the encoder's default,
``DEFAULT_LAYERS``); "one pass" is the resolution-only stream. The sets: the bundled samples as
they are, the validation photographs of ``--data`` (its README) cropped to their central
768x512, as issue 13 asks, and with ``--sets photos --photos DIR`` the real photographs of
``../shared/data/large/fetch.sh``
(its PNG folder), each scaled down (Lanczos) until it just covers 768x512 and cropped to
its centre: whole photographs at the size issue 13 measures, as a viewer would get them.
The images are only read here, never copied. docs/format.md ("Choosing the layers")
quotes what it prints.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from hidenet_core.codec.encoder import DEFAULT_LAYERS, EncodeSettings, default_schedule, encode  # noqa: E402
from hidenet_core.codec.pyramid import level_shapes  # noqa: E402
from hidenet_core.imageio import image_files  # noqa: E402
from hidenet_core.predictors import load_model  # noqa: E402
from hidenet_core.samples import sample_paths  # noqa: E402
from hidenet_core.tools.bench import progressive  # noqa: E402
from hidenet_core.tools.bench.images import load_images  # noqa: E402

DEFAULT = "+".join(f"{lead}@{other}" for lead, other in DEFAULT_LAYERS)  # "16@64+8@32"
SCHEDULES = ("32", "32@64", "16@64", DEFAULT, "16@64+4@32", "32+8")
CROP = (768, 512)
ONE_PASS = "one pass"


def parse_schedule(text: str, levels: int) -> tuple[tuple[int, ...], ...]:
    """The layers before the last of a schedule written as above, for an image of ``levels`` + 1 levels
    (the lead colour's max errors: a layer's part after "@" is the other colours', ``parse_colours``)."""
    return _parse_layers([part.split("@")[0] for part in text.split("+")], levels)


def parse_colours(text: str, levels: int) -> tuple[tuple[int, ...], ...] | None:
    """The other colours' max errors of each layer of a schedule whose layers say them after "@"
    ("32@64+8@64": a first layer with green at 32 and red and blue at 64, halved at each coarser
    level, then a layer refining green to 8); a layer without "@" codes them as the lead. None:
    no layer says them."""
    parts = text.split("+")
    if not any("@" in part for part in parts):
        return None
    return _parse_layers([part.split("@")[-1] for part in parts], levels)


def _parse_layers(parts: list[str], levels: int) -> tuple[tuple[int, ...], ...]:
    layers = []
    for part in parts:
        if "," in part:
            values = [int(v) for v in part.split(",")]
            values += [0] * (levels + 1 - len(values))
            layers.append(tuple(values[: levels + 1]))
        elif ":" in part:  # "48:16": level 0 at 48, then 16 at level 1 halved at each coarser level
            zero, one = (int(v) for v in part.split(":"))
            layers.append(tuple(zero if k == 0 else one >> (k - 1) if k < levels else 0 for k in range(levels + 1)))
        else:
            first = int(part)
            layers.append(tuple(first >> k if k < levels else 0 for k in range(levels + 1)))
    return tuple(layers)


def photographs(folder: Path, max_images: int | None) -> list:
    """The photographs of ``folder`` scaled down until they just cover ``CROP`` and cropped to its centre."""
    from PIL import Image

    from hidenet_core.tools.bench.images import BenchImage

    Image.MAX_IMAGE_PIXELS = None  # the fetched photographs are up to 20 MP, and trusted
    out = []
    for path in image_files(folder)[: max_images or None]:
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = max(CROP[0] / im.width, CROP[1] / im.height)
            size = (max(CROP[0], round(im.width * scale)), max(CROP[1], round(im.height * scale)))
            im = im.resize(size, Image.LANCZOS)
            left, top = (size[0] - CROP[0]) // 2, (size[1] - CROP[1]) // 2
            out.append(BenchImage(path.stem, np.asarray(im.crop((left, top, left + CROP[0], top + CROP[1])))))
    return out


def load_set(name: str, data: str, photos: str | None, max_images: int | None) -> list:
    """The images of set ``name`` ("samples", "val" or "photos", above); ValueError without the folder it needs."""
    if name == "samples":
        return load_images(sample_paths(), max_images)
    if name == "photos":
        if not photos:
            raise ValueError("--sets photos needs --photos DIR (the PNG folder of ../shared/data/large/fetch.sh)")
        return photographs(Path(photos), max_images)
    return load_images(image_files(Path(data) / "val"), max_images, CROP)


def levels_of(data: bytes) -> int:
    from hidenet_core.codec.container import stream_info

    return len(stream_info(data)["max_error"]) - 1


def measure_set(name: str, images, model, schedules: list[str], budgets_kb) -> dict:
    per_image = []
    for image in images:
        t0 = time.perf_counter()
        one_pass = encode(image.pixels, model, progressive.RESOLUTION_ONLY)
        default = encode(image.pixels, model, EncodeSettings())
        levels = levels_of(one_pass)
        streams = {}
        grey = image.pixels.shape[2] == 1  # one colour: a schedule's colours (after "@") do not apply
        for sched in schedules:
            colours = None if grey else parse_colours(sched, levels)
            if sched == DEFAULT:
                shapes = level_shapes(*image.pixels.shape[:2], levels)
                layers, default_colours = default_schedule((0,) * (levels + 1), channels=image.pixels.shape[2],
                                                           shapes=shapes)
                if parse_schedule(sched, levels) != layers or (colours or ()) != default_colours:
                    raise RuntimeError(f"schedule {sched} is not the encoder's default on {image.name}")
                streams[sched] = default
            else:
                streams[sched] = encode(image.pixels, model, EncodeSettings(layers=parse_schedule(sched, levels),
                                                                            colour_layers=colours))
        extra = {f"s:{s}": data for s, data in streams.items() if s != DEFAULT}
        rec = progressive.measure_image(image, default, model, budgets_kb, extra, contenders=(), resolution=one_pass)
        series = {ONE_PASS: rec["series"]["hidenet_res"], DEFAULT: rec["series"]["hidenet"],
                  "jpeg": rec["series"]["jpeg"]}
        series.update({s: rec["series"][f"s:{s}"] for s in schedules if s != DEFAULT})
        per_image.append({"image": image.name, "size": f"{image.width}x{image.height}", "levels": levels,
                          "bytes": {ONE_PASS: len(one_pass), **{s: len(d) for s, d in streams.items()}},
                          "jpeg_bytes": rec["jpeg_bytes"], "series": series})
        print(f"  {name} {image.name}: {time.perf_counter() - t0:.0f} s; one pass {len(one_pass)} B, "
              + ", ".join(f"{s} {len(d) / len(one_pass) - 1:+.2%}" for s, d in streams.items()), flush=True)
    summary = {}
    for key in [ONE_PASS, *schedules, "jpeg"]:
        psnr = [progressive.pooled([im["series"][key][i] for im in per_image])["psnr"]
                for i in range(len(budgets_kb))]
        row = {"psnr": psnr}
        if key != "jpeg":
            over = [(im["bytes"][key] / im["bytes"][ONE_PASS] - 1, im["image"]) for im in per_image]
            row["larger_mean"] = float(np.mean([o for o, _ in over]))
            row["larger_worst"], row["worst_image"] = max(over)
        summary[key] = row
    return {"images": [im["image"] for im in per_image], "per_image": per_image, "summary": summary}


def _db(x: float) -> str:
    return "exact" if math.isinf(x) else f"{x:.2f}"


def table(result: dict, schedules: list[str], budgets_kb) -> list[str]:
    s = result["summary"]
    jpeg, one = s["jpeg"]["psnr"], s[ONE_PASS]["psnr"]
    head = ["schedule", "lossless vs one pass: mean", "worst"] + [f"{kb} KB" for kb in budgets_kb] + [
        "above JPEG at", "within 0.3 dB of one pass"]
    lines = ["| " + " | ".join(head) + " |", "| --- | " + " | ".join(["---:"] * (len(head) - 1)) + " |"]
    for key in [ONE_PASS, *schedules]:
        r = s[key]
        label = key + (" (**default**)" if key == DEFAULT else "")
        above = [kb for kb, a, b in zip(budgets_kb, r["psnr"], jpeg) if a > b]
        within = all(a >= b - 0.3 for a, b in zip(r["psnr"], one))
        sizes = ["0 (the reference)", ""] if key == ONE_PASS else [
            f"{r['larger_mean']:+.1%}", f"{r['larger_worst']:+.1%} ({r['worst_image']})"]
        lines.append("| " + " | ".join([label, *sizes] + [_db(x) for x in r["psnr"]]
                                        + ["every budget" if len(above) == len(budgets_kb) else
                                           ", ".join(map(str, above)) + " KB" if above else "none",
                                           "" if key == ONE_PASS else "yes" if within else "no"]) + " |")
    lines.append("| progressive JPEG q90 | | | " + " | ".join(_db(x) for x in jpeg) + " | | |")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="/work/shared/data", help="the team's data folder (its val/ is used)")
    p.add_argument("--sets", nargs="+", default=["samples", "val"], choices=["samples", "val", "photos"])
    p.add_argument("--photos", default=None, help="for --sets photos: the PNG folder of large/fetch.sh")
    p.add_argument("--schedules", nargs="+", default=list(SCHEDULES))
    p.add_argument("--max-images", type=int, default=None, help="only the first N images of each set")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--json", default=None, help="also write every figure here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("default")
    budgets = progressive.BUDGETS_KB
    schedules = list(dict.fromkeys(args.schedules))
    results = {"model": model.name, "weights_hash": model.weights_hash().hex(), "budgets_kb": list(budgets),
               "date": time.strftime("%Y-%m-%d"), "sets": {}}
    for name in args.sets:
        try:
            images = load_set(name, args.data, args.photos, args.max_images)
        except ValueError as exc:
            p.error(str(exc))
        print(f"{name}: {len(images)} images", flush=True)
        results["sets"][name] = measure_set(name, images, model, schedules, budgets)
    for name, result in results["sets"].items():
        print(f"\n{name} ({', '.join(result['images'])}): PSNR (dB, pooled) shown after N KB\n")
        print("\n".join(table(result, schedules, budgets)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=lambda x: None) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
