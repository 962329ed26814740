"""Quality against bytes received: what a viewer shows after the first N bytes.

Four series per byte budget, all compared with the original at full size:

* hideNet layered, as the server streams by default: the lossless stream in quality
  layers (format version 6, the encoder's default schedule), and on screen the full-size
  preview that the model predicts from the last chunk complete within the budget (the
  stream header counts as received bytes), with the display filter the server's frames
  have (``hidenet_core.display``);
* hideNet resolution-only: the same image in one pass (``EncodeSettings(layers=())``,
  what ``hidenet encode --no-layers`` writes and the server streams with
  ``stream=resolution``), shown the same way;
* a bicubic upscale of the layered stream's finest level decoded by then, without the
  model (what the levels alone give);
* a progressive JPEG (quality 90, Pillow), cut at the budget and decoded as a browser
  shows it: every complete scan, the scans not yet received missing (their
  coefficients zero). A scan is complete when its last entropy-coded byte has arrived.

and, for each other contender of the viewer's race (``hidenet_core.tools.contenders``:
baseline JPEG, interlaced PNG, WebP lossless and lossy, JPEG 2000), what a browser shows
at its last repaint within the budget, exactly as the race shows it.

Before the first hideNet level or the first JPEG scan is complete a browser shows no
image at all; we score that as a flat mid-grey (128) image, the same for every series
(and rows a top-down format has not painted yet likewise). Alpha is ignored (JPEG has none).

Over the images, PSNR is pooled (``pooled``): the PSNR of all their squared errors
together, as the prediction and generative sections pool theirs, so that an image shown
exactly (infinite PSNR on its own) adds no error rather than an infinite, or capped, number
of decibels to a mean. SSIM is the plain mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...codec.container import stream_info
from ...codec.decoder import ProgressiveDecoder
from ...codec.encoder import EncodeSettings, encode
from ...display import display_frame
from ...metrics import mse, psnr_from_sse, ssim
from ...predictors.base import Predictor
from ..contenders import Spec, parse_spec, score
from ..pjpeg import decode_prefix, progressive_jpeg, scan_ends, visible
from .images import BenchImage
from .resample import bicubic_upscale

__all__ = [
    "BUDGETS_KB",
    "SERIES",
    "CONTENDERS",
    "UNFILTERED",
    "EMPTY_GREY",
    "PSNR_CAP",
    "RESOLUTION_ONLY",
    "measure_image",
    "pooled",
]

#: byte budgets of the issue, in KB (1 KB = 1024 bytes)
BUDGETS_KB = (2, 4, 8, 16, 32, 64)
#: series id -> label
SERIES = {
    "hidenet": "hideNet layered (preview)",
    "hidenet_res": "hideNet resolution-only (preview)",
    "bicubic": "hideNet levels, bicubic",
    "jpeg": "progressive JPEG q90",
}
#: the settings of the resolution-only stream (series "hidenet_res"): one pass, no layers
RESOLUTION_ONLY = EncodeSettings(layers=())
#: the race's other contenders, at their default qualities (the progressive JPEG is "jpeg" above)
CONTENDERS: tuple[str, ...] = ("jpeg", "png", "webp-lossless", "webp", "j2k")
#: the "hidenet" series without the display filter: not a series of the tables, the filter's cost (per image)
UNFILTERED = "hidenet_unfiltered"
#: the value of every pixel while nothing can be shown yet
EMPTY_GREY = 128
#: the prediction and generative sections' pooled PSNR of no error at all (infinite) is reported as this
PSNR_CAP = 100.0


@dataclass(frozen=True)
class _Shown:
    """What a viewer shows at one budget for one series."""

    image: np.ndarray | None  # None: nothing yet (scored as flat grey)
    bytes_used: int  # bytes of the complete units shown (0 if none)
    unit: int | None  # hideNet: number of complete chunks; JPEG: number of complete scans


class _Scorer:
    """PSNR (``inf`` when exact), SSIM and the summed squared error against the original,
    computed once per distinct image shown."""

    def __init__(self, original: np.ndarray) -> None:
        self.target = visible(original)
        self._memo: dict[tuple, dict] = {}

    def __call__(self, key: tuple, shown: _Shown) -> dict:
        if shown.image is None:
            key = ("empty",)
        if key not in self._memo:
            image = shown.image if shown.image is not None else np.full_like(self.target, EMPTY_GREY)
            sse, count = mse(image, self.target) * self.target.size, self.target.size
            self._memo[key] = {"psnr": psnr_from_sse(sse, count), "ssim": ssim(image, self.target),
                               "sse": sse, "count": count}
        return {**self._memo[key], "bytes_used": shown.bytes_used, "unit": shown.unit}


def pooled(records: list[dict]) -> dict:
    """One series at one budget over the images: the PSNR of their pooled squared errors
    (``inf`` only if every image is shown exactly) and the mean SSIM."""
    return {"psnr": psnr_from_sse(sum(r["sse"] for r in records), sum(r["count"] for r in records)),
            "ssim": float(np.mean([r["ssim"] for r in records]))}


def _hidenet_views(data: bytes, model: Predictor, budgets: list[int], height: int, width: int):
    """For each budget: the model's full-size preview of the stream's last complete chunk as
    shown (display filter), the bicubic upscale of the finest level coded by then, and the
    preview without the display filter (or nothing)."""
    info = stream_info(data)
    ends = [c["total_bytes"] for c in info["chunks"]]  # in stream order
    pick = [sum(1 for e in ends if e <= b) - 1 for b in budgets]  # the last chunk complete within each budget
    needed = {i for i in pick if i >= 0}
    views: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    if needed:
        dec = ProgressiveDecoder(model)
        pos = 0
        for i, end in enumerate(ends[: max(needed) + 1]):
            dec.feed(data[pos:end])
            pos = end
            if i in needed:
                k = dec.current_level
                image = visible(dec.level_image(k))
                raw = dec.preview()
                shown = display_frame(raw, k, info["generative_levels"], full_size=True)
                views[i] = (visible(shown), bicubic_upscale(image, 2**k, (height, width)), visible(raw))
    out = []
    for i in pick:
        if i < 0:
            out.append((_Shown(None, 0, None),) * 3)
        else:
            out.append(tuple(_Shown(view, ends[i], i + 1) for view in views[i]))
    return out, info


def _contender(spec: Spec, reference: np.ndarray, budgets: list[int]) -> tuple[list[dict], dict]:
    """What a browser shows of ``spec``'s file at each budget: its last repaint within it."""
    data = spec.contender.encode(reference, spec.quality)
    cuts = spec.contender.cuts(data)
    memo: dict[int, dict] = {}
    out = []
    for b in budgets:
        n = sum(1 for c in cuts if c.end <= b)  # repaints complete within the budget
        if n not in memo:
            if n == 0:
                image = np.full_like(reference, EMPTY_GREY)
                s = ssim(image, reference)
            else:
                shown, _, s = score(spec.contender.shown(data, cuts[n - 1].end), reference)
                image = shown.scored()
            sse, count = mse(image, reference) * reference.size, reference.size
            memo[n] = {"psnr": psnr_from_sse(sse, count), "ssim": s, "sse": sse, "count": count}
        out.append({**memo[n], "bytes_used": cuts[n - 1].end if n else 0, "unit": n})
    return out, {"bytes": len(data), "repaint_ends": [c.end for c in cuts]}


def measure_image(image: BenchImage, hdn: bytes, model: Predictor, budgets_kb=BUDGETS_KB,
                  extra: dict[str, bytes] | None = None, contenders=CONTENDERS,
                  resolution: bytes | None = None) -> dict:
    """PSNR and SSIM of each series at each budget for one image, plus where each
    hideNet chunk and each JPEG scan ends.

    ``hdn`` is the lossless layered stream (series "hidenet" and "bicubic"), ``resolution``
    the lossless resolution-only one (series "hidenet_res"; None: encoded here with
    ``RESOLUTION_ONLY``); ``extra`` maps
    further series ids to other hideNet streams of the same image (for example a
    near-lossless one), scored as the model's preview. ``contenders`` are the race's
    contenders (ids, default qualities) also measured, each under its key ("webp:80").
    """
    budgets = [kb * 1024 for kb in budgets_kb]
    px = image.pixels
    score = _Scorer(px)
    hid, info = _hidenet_views(hdn, model, budgets, image.height, image.width)
    per_series: dict[str, list[dict]] = {key: [] for key in SERIES}
    per_series[UNFILTERED] = []
    for preview, bicubic, raw in hid:
        per_series["hidenet"].append(score(("hidenet", preview.unit), preview))
        per_series[UNFILTERED].append(score((UNFILTERED, raw.unit), raw))
        per_series["bicubic"].append(score(("bicubic", bicubic.unit), bicubic))
    streams = {"hidenet": {"bytes": len(hdn), "level_ends": _level_ends(info)}}
    if resolution is None:
        resolution = encode(px, model, RESOLUTION_ONLY)
    for key, data in {"hidenet_res": resolution, **(extra or {})}.items():
        views, extra_info = _hidenet_views(data, model, budgets, image.height, image.width)
        per_series[key] = [score((key, preview.unit), preview) for preview, _, _ in views]
        streams[key] = {"bytes": len(data), "level_ends": _level_ends(extra_info)}

    jpeg = progressive_jpeg(px)
    ends = scan_ends(jpeg)
    scans: dict[int, np.ndarray] = {}
    for b in budgets:
        n_scans = sum(1 for e in ends if e <= b)
        if n_scans and n_scans not in scans:
            scans[n_scans] = decode_prefix(jpeg, ends[n_scans - 1])
        shown = _Shown(scans.get(n_scans), ends[n_scans - 1] if n_scans else 0, n_scans)
        per_series["jpeg"].append(score(("jpeg", n_scans), shown))
    reference = visible(px)
    files = {}
    for cid in contenders:
        spec = parse_spec(cid)
        per_series[spec.key], files[spec.key] = _contender(spec, reference, budgets)
    return {
        "hidenet_bytes": len(hdn),
        "resolution_bytes": len(resolution),
        "streams": streams,
        "jpeg_bytes": len(jpeg),
        "jpeg_scan_ends": ends,
        "contender_files": files,
        "series": per_series,
    }


def _level_ends(info: dict) -> list[dict]:
    return [{"layer": c["layer"], "level": c["level"], "part": c["part"], "max_error": c["max_error"],
             "bytes": c["total_bytes"]} for c in info["chunks"]]
