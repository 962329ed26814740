"""One benchmark run: every section on the same images, in one process, one results dict.

``run_bench(config)`` measures; ``report.write_outputs`` turns the dict into
results.json, results.md and the plots.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ...codec.encoder import EncodeSettings, encode
from ...imageio import image_files
from ...predictors import load_model
from ...predictors.base import Predictor
from ...samples import sample_paths
from ..contenders import parse_spec
from ..pjpeg import JPEG_QUALITY
from . import generative, lossless, prediction, progressive
from . import serving as serving_section
from .images import load_images
from .timing import machine_info, ratio

__all__ = ["BenchConfig", "run_bench", "QUICK_IMAGES", "QUICK_SIDE"]

#: --quick: the first two images, centre crops of at most 256 x 256, one timing run, 1 and 8 streams
QUICK_IMAGES = 2
QUICK_SIDE = 256


@dataclass(frozen=True)
class BenchConfig:
    """What to measure; the CLI's options."""

    images_dir: Path | None = None  # None: the bundled sample photographs
    quick: bool = False  # short version: few, small images, one timing run, fewer streams
    model: str = "default"  # predictor name or checkpoint path
    serving: bool = True  # run the server load test
    repeats: int = 3  # timing runs per codec and image (the fastest counts); 1 with quick
    threads: int = 1  # torch threads during the run (the anchors run single-threaded)
    max_images: int | None = None  # keep only the first N images
    crop: tuple[int, int] | None = None  # (width, height): measure each image's central crop
    budgets_kb: tuple[int, ...] = progressive.BUDGETS_KB
    streams: tuple[int, ...] = field(default=serving_section.STREAMS)
    extra_max_error: int = 4  # also stream a near-lossless hideNet (max error d) in the progressive section; 0: no


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _paths(config: BenchConfig) -> list[Path]:
    return sample_paths() if config.images_dir is None else image_files(config.images_dir)


def _lossless_summary(codecs: list[lossless.Codec], per_image: list[dict]) -> dict:
    """Mean bpp and times per codec; time ratios from sums over the images both finished."""
    summary = {}
    for codec in codecs:
        if not codec.available:
            continue
        recs = [im["codecs"].get(codec.key, {}) for im in per_image]
        ok = [r for r in recs if "bpp" in r]
        summary[codec.key] = {
            "bpp": _mean(r["bpp"] for r in ok),
            "encode_s": _mean(r["encode_s"] for r in ok),
            "decode_s": _mean(r["decode_s"] for r in ok),
            "all_lossless": bool(ok) and len(ok) == len(recs) and all(r["lossless"] for r in ok),
            "images": len(ok),
        }
    for kind, ref in (("encode", lossless.ENCODE_REFERENCE), ("decode", lossless.DECODE_REFERENCE)):
        if ref not in summary:
            ref = "png"
        for key, s in summary.items():
            both = [
                (im["codecs"][key][f"{kind}_s"], im["codecs"][ref][f"{kind}_s"])
                for im in per_image
                if "bpp" in im["codecs"].get(key, {}) and "bpp" in im["codecs"].get(ref, {})
            ]
            s[f"{kind}_ratio"] = ratio(sum(a for a, _ in both), sum(b for _, b in both)) if both else None
            s[f"{kind}_reference"] = ref
    return summary


def _layered_overhead(per_image: list[dict]) -> dict:
    """The layered stream's bytes over the resolution-only stream's, per image, their mean and the largest."""
    ratios = {im["image"]: im["codecs"][lossless.HIDENET]["bytes"] / im["codecs"][lossless.RESOLUTION]["bytes"]
              for im in per_image if "bytes" in im["codecs"].get(lossless.HIDENET, {})
              and "bytes" in im["codecs"].get(lossless.RESOLUTION, {})}
    worst = max(ratios, key=ratios.get) if ratios else None
    return {"per_image": ratios, "mean": _mean(ratios.values()), "max": ratios.get(worst), "max_image": worst}


def _progressive_summary(per_image: list[dict], labels: dict, budgets_kb) -> dict:
    """Per series and budget: pooled PSNR (``inf`` where every image is exact) and mean SSIM;
    hideNet's lead over the JPEG in dB where both are finite."""
    series = {}
    for key in labels:
        at = [progressive.pooled([im["series"][key][i] for im in per_image]) for i in range(len(budgets_kb))]
        series[key] = {"psnr": [a["psnr"] for a in at], "ssim": [a["ssim"] for a in at]}
    hid, jpeg = series["hidenet"]["psnr"], series["jpeg"]["psnr"]
    lead = [h - j if math.isfinite(h) and math.isfinite(j) else None for h, j in zip(hid, jpeg)]
    raw = [progressive.pooled([im["series"][progressive.UNFILTERED][i] for im in per_image])
           for i in range(len(budgets_kb))]
    display_db = [h - r["psnr"] if math.isfinite(h) and math.isfinite(r["psnr"]) else 0.0 for h, r in zip(hid, raw)]
    display_ssim = [s - r["ssim"] for s, r in zip(series["hidenet"]["ssim"], raw)]
    res = series["hidenet_res"]["psnr"]
    over_res = [h - r if math.isfinite(h) and math.isfinite(r) else None for h, r in zip(hid, res)]
    return {"series": series, "hidenet_minus_jpeg_db": lead, "hidenet_ahead": [h > j for h, j in zip(hid, jpeg)],
            "hidenet_minus_resolution_db": over_res,
            "display_filter_db": display_db, "display_filter_ssim": display_ssim}


def run_bench(config: BenchConfig, progress: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """Measure everything ``config`` asks for; return the JSON-able results."""
    started = time.perf_counter()
    paths = _paths(config)
    max_images = QUICK_IMAGES if config.quick else config.max_images
    images = load_images(paths, max_images, (QUICK_SIDE, QUICK_SIDE) if config.quick else config.crop)
    repeats = 1 if config.quick else config.repeats
    streams = config.streams
    if config.quick and streams == serving_section.STREAMS:
        streams = serving_section.QUICK_STREAMS
    model: Predictor = load_model(config.model)
    codecs = [lossless.hidenet_codec(model), lossless.resolution_codec(model), *lossless.anchor_codecs()]

    labels = dict(progressive.SERIES)
    extra_key = f"hidenet_d{config.extra_max_error}"
    if config.extra_max_error:
        labels[extra_key] = f"hideNet max error {config.extra_max_error} (preview)"
    contender_specs = [parse_spec(c) for c in progressive.CONTENDERS]
    contender_labels = {s.key: s.label for s in contender_specs}
    labels.update(contender_labels)

    old_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    seconds: dict[str, float] = {"lossless": 0.0, "progressive": 0.0, "prediction": 0.0, "generative": 0.0,
                                 "serving": 0.0}
    lossless_rows, progressive_rows, prediction_rows, generative_rows = [], [], [], []
    steps = len(images) * (len(codecs) + 3) + (1 if config.serving else 0)
    bar = tqdm(total=steps, desc="hidenet bench", unit="step", disable=not progress, dynamic_ncols=True)
    try:
        for image in images:
            info = {"image": image.name, "width": image.width, "height": image.height, "mode": image.mode}
            t0 = time.perf_counter()
            row = {**info, "codecs": {}}
            hdn = res = b""
            for codec in codecs:
                bar.set_postfix_str(f"{image.name}: {codec.label}")
                if codec.available:
                    rec, data = lossless.measure_image(codec, image, repeats)
                    row["codecs"][codec.key] = rec
                    if codec.key in (lossless.HIDENET, lossless.RESOLUTION):
                        if data is None or not rec.get("lossless"):
                            raise RuntimeError(f"{codec.label} failed on {image.name}: {rec.get('error')}")
                        hdn, res = (data, res) if codec.key == lossless.HIDENET else (hdn, data)
                bar.update()
            lossless_rows.append(row)
            t1 = time.perf_counter()
            bar.set_postfix_str(f"{image.name}: progressive")
            extra = {}
            if config.extra_max_error:
                settings = EncodeSettings(max_error=config.extra_max_error)
                extra[extra_key] = encode(image.pixels, model, settings)
            shown = progressive.measure_image(image, hdn, model, config.budgets_kb, extra, resolution=res)
            progressive_rows.append({**info, **shown})
            bar.update()
            t2 = time.perf_counter()
            bar.set_postfix_str(f"{image.name}: prediction")
            prediction_rows.append({**info, "levels": prediction.measure_image(image, model)})
            bar.update()
            t3 = time.perf_counter()
            bar.set_postfix_str(f"{image.name}: generative")
            generative_rows.append({**info, "levels": generative.measure_image(image, model, len(hdn))})
            bar.update()
            t4 = time.perf_counter()
            seconds["lossless"] += t1 - t0
            seconds["progressive"] += t2 - t1
            seconds["prediction"] += t3 - t2
            seconds["generative"] += t4 - t3
        if config.serving:
            bar.set_postfix_str(f"serving: {', '.join(map(str, streams))} streams")
            t0 = time.perf_counter()
            serving_result = serving_section.run_serving(images, config.model, tuple(streams))
            seconds["serving"] = time.perf_counter() - t0
            bar.update()
        else:
            serving_result = {"available": False, "reason": "skipped (--no-serving)"}
    finally:
        bar.close()
        torch.set_num_threads(old_threads)

    return {
        "meta": {
            "version": 1,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": {**asdict(config), "images_dir": str(config.images_dir) if config.images_dir else None,
                       "repeats": repeats, "streams": list(streams)},
            "model": {"name": model.name, "requested": config.model, "weights_hash": model.weights_hash().hex()},
            "images_dir": str(Path(paths[0]).parent),
            "machine": machine_info(),
            "versions": _versions(),
            "seconds": {**seconds, "total": time.perf_counter() - started},
        },
        "images": [{"image": im.name, "width": im.width, "height": im.height, "mode": im.mode} for im in images],
        "lossless": {
            "codecs": {
                c.key: {"label": c.label, "settings": c.settings, "available": c.available, "reason": c.reason}
                for c in codecs
            },
            "per_image": lossless_rows,
            "mean": _lossless_summary(codecs, lossless_rows),
            "layered_overhead": _layered_overhead(lossless_rows),
        },
        "progressive": {
            "budgets_kb": list(config.budgets_kb),
            "series_labels": labels,
            "main_series": list(progressive.SERIES),
            "contenders": contender_labels,
            "empty_grey": progressive.EMPTY_GREY,
            "psnr": "pooled",  # over the images: the PSNR of all their squared errors; SSIM: mean
            "jpeg_quality": JPEG_QUALITY,
            "per_image": progressive_rows,
            "mean": _progressive_summary(progressive_rows, labels, config.budgets_kb),
        },
        "prediction": {"predictors": dict(prediction.PREDICTORS), "per_image": prediction_rows,
                       "mean": prediction.pooled([r["levels"] for r in prediction_rows])},
        "generative": {"levels": list(generative.GENERATIVE_LEVELS), "per_image": generative_rows,
                       "mean": generative.pooled([r["levels"] for r in generative_rows])},
        "serving": serving_result,
    }


def _versions() -> dict:
    import PIL

    out = {"torch": torch.__version__, "numpy": np.__version__, "pillow": PIL.__version__}
    try:
        import imagecodecs

        out["imagecodecs"] = imagecodecs.__version__
        for name in ("webp", "jpeg2k", "jpegls", "jpegxl"):
            try:
                out[name] = getattr(imagecodecs, f"{name}_version")()
            except Exception:  # a codec missing from the build has no version
                out[name] = None
    except ImportError:
        out["imagecodecs"] = None
    return out
