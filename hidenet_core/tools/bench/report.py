"""The outputs of a run: results.json, results.md (tables) and PNG plots.

Plots are drawn with matplotlib's object API on a ``Figure`` (Agg canvas), so no
global backend is chosen and nothing opens a window. Plot files are named
``results-*.png`` so that results.md and its plots can be copied next to each other
(docs/ keeps the README's copy).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from ...codec.versions import VERSION

__all__ = ["write_outputs", "render_markdown", "PLOTS", "behind"]

#: plot file -> what it shows
PLOTS = {
    "results-progressive.png": "PSNR (pooled) and SSIM (mean) over the images against bytes received",
    "results-lossless.png": "lossless bits per pixel and decode time per codec",
    "results-prediction.png": "per-level PSNR of the predicted odd pixels against bicubic",
    "results-serving.png": "time to first level against concurrent streams",
}


def _json_safe(x):
    """Non-finite floats become null (JSON has no Infinity/NaN)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def _f(x, digits=2, unit="") -> str:
    return "n/a" if x is None else f"{x:.{digits}f}{unit}"


def _db(x) -> str:
    """A PSNR: ``exact`` where it is infinite (no error at all)."""
    return "exact" if x is not None and math.isinf(x) else _f(x)


def _lead(d) -> str:
    """A difference in dB, in bold where hideNet's layered stream is ahead."""
    return "n/a" if d is None else (f"**{d:+.2f}**" if d > 0 else f"{d:+.2f}")


def _ms(seconds) -> str:
    if seconds is None:
        return "n/a"
    ms = seconds * 1000
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def _x(r) -> str:
    return "n/a" if r is None else f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    return ["| " + " | ".join(cells) + " |" for cells in (header, sep, *rows)]


def behind(results: dict) -> list[str]:
    """Plain sentences: every place where hideNet is behind an anchor or a baseline."""
    out = []
    ll = results["lossless"]
    mean = ll["mean"]
    h = mean.get("hidenet", {}).get("bpp")
    if h is not None:
        better = [(ll["codecs"][k]["label"], v["bpp"]) for k, v in mean.items()
                  if k not in ("hidenet", "hidenet_res") and v["bpp"] is not None and v["bpp"] < h]
        if better:
            names = ", ".join(f"{n} ({b:.3f} bpp)" for n, b in sorted(better, key=lambda t: t[1]))
            out.append(f"Lossless size: hideNet's mean {h:.3f} bpp is larger than {names}.")
        for key, v in mean.items():  # anchors larger on average, but not on every image
            if key in ("hidenet", "hidenet_res") or v["bpp"] is None or v["bpp"] < h:
                continue
            worse = [im["image"] for im in ll["per_image"]
                     if im["codecs"].get("hidenet", {}).get("bytes", 0) > im["codecs"].get(key, {}).get("bytes", 1e18)]
            if worse:
                out.append(f"Lossless size: hideNet is larger than {ll['codecs'][key]['label']} on "
                           + ", ".join(worse) + " (smaller on average).")
        hd, ref = mean["hidenet"].get("decode_ratio"), mean["hidenet"].get("decode_reference")
        if hd is not None and hd > 1:
            out.append(f"Decode speed: hideNet decodes {hd:.1f} times slower than {ll['codecs'][ref]['label']}.")
        he, ref = mean["hidenet"].get("encode_ratio"), mean["hidenet"].get("encode_reference")
        if he is not None and he > 1:
            out.append(f"Encode speed: hideNet encodes {he:.1f} times slower than {ll['codecs'][ref]['label']}.")
    over = ll.get("layered_overhead") or {}
    if over.get("mean") is not None and over["mean"] > 1:
        out.append(f"Layers: the layered lossless stream is {over['mean'] - 1:.1%} larger than the resolution-only "
                   f"one on average ({over['max'] - 1:.1%} on {over['max_image']}).")
    pr = results["progressive"]
    lead = pr["mean"]["hidenet_minus_jpeg_db"]
    lost = [(kb, d) for kb, d in zip(pr["budgets_kb"], lead) if d is not None and d <= 0]
    if lost:
        out.append("Progressive: the progressive JPEG shows a better image (PSNR) at "
                   + ", ".join(f"{kb} KB ({-d:.1f} dB ahead)" for kb, d in lost) + ".")
    for key, label in pr.get("contenders", {}).items():
        ahead = [kb for kb, h, c in zip(pr["budgets_kb"], pr["mean"]["series"]["hidenet"]["psnr"],
                                        pr["mean"]["series"][key]["psnr"]) if h is not None and c is not None and c > h]
        if ahead:
            out.append(f"Progressive: {label} shows a better image (PSNR) than hideNet at "
                       + ", ".join(f"{kb} KB" for kb in ahead) + ".")
    below = [(kb, d) for kb, d in zip(pr["budgets_kb"], pr["mean"].get("hidenet_minus_resolution_db", []))
             if d is not None and d < 0]
    if below:
        out.append("Progressive: the layered stream shows a worse image (PSNR) than the resolution-only one at "
                   + ", ".join(f"{kb} KB ({-d:.2f} dB)" for kb, d in below) + ".")
    hs, bs = pr["mean"]["series"]["hidenet"], pr["mean"]["series"]["bicubic"]
    worse = [kb for kb, a, b in zip(pr["budgets_kb"], hs["psnr"], bs["psnr"])
             if a is not None and b is not None and a < b]
    if worse:
        out.append("Progressive: the model's preview is below a plain bicubic upscale of the same level at "
                   + ", ".join(f"{kb} KB" for kb in worse) + ".")
    neg = [lv for lv in results["prediction"]["mean"] if lv["gain_db"] is not None and lv["gain_db"] < 0]
    if neg:
        out.append("Prediction: the model alone predicts odd pixels worse than bicubic at level(s) "
                   + ", ".join(f"{lv['level']} ({lv['gain_db']:+.2f} dB)" for lv in neg) + ".")
    sv = results["serving"]
    if sv.get("available"):
        for row in sv.get("rows", []):
            if row.get("errors"):
                out.append(f"Serving: {row['errors']} errors with {row['streams']} concurrent streams.")
        px = sv.get("proxied") or {}
        for row in px.get("rows", []) if px.get("available") else []:
            if row.get("errors"):
                out.append(f"Serving behind nginx: {row['errors']} errors with {row['streams']} concurrent streams.")
    return out


def render_markdown(results: dict) -> str:
    meta = results["meta"]
    cfg = meta["config"]
    lines = ["# hideNet benchmark results", ""]
    sizes = ", ".join(f"{im['image']} {im['width']}x{im['height']} {im['mode']}" for im in results["images"])
    lines += [
        f"Measured by `{meta.get('command', 'hidenet bench')}` on {meta['date']}"
        f" ({meta['machine']['cpu_count']} CPU cores, shared; torch threads: {cfg['threads']}; "
        f"every codec single-threaded; best of {cfg['repeats']} timing run(s)); "
        f"total {meta['seconds']['total']:.0f} s.",
        f"Model: `{meta['model']['requested']}` = {meta['model']['name']} (weights {meta['model']['weights_hash']})"
        + (" - no trained weights were installed, so the default is the non-learned predictor."
           if meta["model"]["requested"] == "default" and meta["model"]["name"] == "interp" else "."),
        f"Images ({len(results['images'])}): {sizes}."
        + (" **Quick run: small crops, few images.**" if cfg["quick"] else ""),
        "Methodology: docs/bench.md.",
        "",
    ]

    # lossless
    ll = results["lossless"]
    codecs, mean = ll["codecs"], ll["mean"]
    enc_ref = codecs.get(next(iter(mean.values()), {}).get("encode_reference", "png"), {}).get("label", "PNG")
    dec_ref = codecs.get(next(iter(mean.values()), {}).get("decode_reference", "png"), {}).get("label", "PNG")
    hbpp = mean.get("hidenet", {}).get("bpp")
    lines += ["## Lossless", "",
              f"Mean over the images; times are the fastest of the timing runs; ratios are to {enc_ref} (encode) "
              f"and {dec_ref} (decode) on the same images in this run.", ""]
    rows = []
    for key, c in codecs.items():
        if key not in mean:
            continue
        m = mean[key]
        rel = None if hbpp is None or m["bpp"] is None else m["bpp"] / hbpp
        rows.append([c["label"], c["settings"], _f(m["bpp"], 3), _f(rel, 3), _ms(m["encode_s"]), _x(m["encode_ratio"]),
                     _ms(m["decode_s"]), _x(m["decode_ratio"]), "yes" if m["all_lossless"] else "**no**"])
    lines += _table(["Codec", "Settings", "bpp", "bpp / hideNet", "Encode ms", f"Encode / {enc_ref}",
                     "Decode ms", f"Decode / {dec_ref}", "Exact"], rows, "llrrrrrrl")
    missing = [f"{c['label']} ({c['reason']})" for c in codecs.values() if not c["available"]]
    if missing:
        lines += ["", "Unavailable in this build: " + "; ".join(missing) + "."]
    lines += ["", "Bits per pixel per image:", ""]
    keys = [k for k in codecs if k in mean]
    over = ll.get("layered_overhead") or {"per_image": {}}
    rows = [[im["image"], f"{im['width']}x{im['height']} {im['mode']}"]
            + [_f(im["codecs"].get(k, {}).get("bpp"), 3) for k in keys]
            + [_f(over["per_image"].get(im["image"]), 3)] for im in ll["per_image"]]
    lines += _table(["Image", "Size"] + [codecs[k]["label"] for k in keys] + ["Layered / resolution-only"], rows,
                    "ll" + "r" * (len(keys) + 1))
    if over.get("mean") is not None:
        lines += ["", f"hideNet is the layered stream the encoder writes by default (quality layers, format "
                  f"version {VERSION}); hideNet resolution-only is the same image in one pass "
                  f"(`hidenet encode --no-layers`). "
                  f"The layers cost {over['mean'] - 1:+.1%} in bytes on average, at most {over['max'] - 1:+.1%} "
                  f"({over['max_image']})."]
    lines += ["", "![lossless](results-lossless.png)", ""]

    # progressive
    pr = results["progressive"]
    s = pr["mean"]["series"]
    labels = pr["series_labels"]
    lines += ["## Quality after N bytes received", "",
              "What a viewer shows after the first N bytes (1 KB = 1024 bytes): PSNR (dB) / SSIM over the images, "
              "the PSNR pooled (of all their squared errors together: an image shown exactly adds no error) and "
              "the SSIM a mean. "
              f"hideNet layered: the lossless stream as the server sends it by default (quality layers), shown as "
              f"the model's full-size preview of the last complete chunk (between a layer's boundaries the "
              f"levels below the refinement under way estimated inside their intervals, docs/format.md); "
              f"resolution-only: the same image in one "
              f"pass (`hidenet encode --no-layers`, the server's `stream=resolution`), shown the same way; bicubic: "
              f"the layered stream's finest decoded level upscaled without the model; JPEG: progressive, "
              f"quality {pr['jpeg_quality']}, every complete scan decoded. Nothing complete yet = flat grey "
              f"{pr['empty_grey']}.", ""]
    contenders = pr.get("contenders", {})
    extras = [k for k in labels if k not in pr["main_series"] and k not in contenders]
    if extras:
        lines += ["Also shown, not part of the comparison: " + "; ".join(
            f"{labels[k]}, the same model's preview of a near-lossless stream (every pixel within "
            f"{k.removeprefix('hidenet_d')} of the original), a mode the server streams on request"
            for k in extras) + ".", ""]
    order = ["hidenet", "hidenet_res", "bicubic", "jpeg", *extras]
    over_res = pr["mean"].get("hidenet_minus_resolution_db") or [None] * len(pr["budgets_kb"])
    rows = []
    for i, kb in enumerate(pr["budgets_kb"]):
        cells = [f"{kb} KB"]
        for key in order:
            cells.append(f"{_db(s[key]['psnr'][i])} / {_f(s[key]['ssim'][i], 3)}")
        diffs = [_lead(pr["mean"]["hidenet_minus_jpeg_db"][i]), _lead(over_res[i])]
        rows.append(cells[:5] + diffs + cells[5:])
    header = ["Received", *(labels[k] for k in order[:4]), "layered - JPEG (dB)", "layered - resolution-only (dB)"]
    lines += _table(header + [labels[k] for k in extras], rows)
    display_db = pr["mean"].get("display_filter_db")
    if display_db:
        lines += ["", "hideNet's preview is the frame the server sends: the decoder's preview with the display filter "
                  "(docs/viewer.md), which changes its PSNR by "
                  + ", ".join(f"{d:+.3f}" if abs(d) >= 0.0005 else "0.000" for d in display_db)
                  + " dB and its SSIM by "
                  + ", ".join(f"{d:+.4f}" if abs(d) >= 0.00005 else "0.0000"
                              for d in pr["mean"].get("display_filter_ssim", []))
                  + " at these budgets."]
    lines += ["", "Bytes of each stream, the number of complete hideNet chunks at each budget (- = nothing yet; "
              "`hidenet info` lists a stream's chunks) and of complete JPEG scans, per image:", ""]
    rows = []
    for im in pr["per_image"]:
        hl, rl = ([("-" if r["unit"] is None else str(r["unit"])) for r in im["series"][k]]
                  for k in ("hidenet", "hidenet_res"))
        js = [str(r["unit"]) for r in im["series"]["jpeg"]]
        ex = [str(im["streams"][k]["bytes"]) for k in ("hidenet_res", *extras)]
        rows.append([im["image"], str(im["hidenet_bytes"]), *ex, str(im["jpeg_bytes"]), " ".join(hl), " ".join(rl),
                     " ".join(js)])
    extra_heads = [f"hideNet d={k.removeprefix('hidenet_d')} bytes" for k in extras]
    lines += _table(["Image", "layered bytes (lossless)", "resolution-only bytes (lossless)", *extra_heads,
                     "JPEG bytes", "layered chunks per budget", "resolution-only chunks per budget",
                     "JPEG scans per budget"], rows, "l" + "r" * (3 + len(extras)) + "lll")
    if contenders:
        lines += ["", "### Every contender of the race", "",
                  "The viewer's race puts up to three of these beside hideNet: what each shows after the first N "
                  "bytes, PSNR (dB, pooled) / SSIM (mean) over the images, cut and decoded exactly as the race "
                  "shows it "
                  "(`hidenet_core/tools/contenders`): baseline JPEG and WebP top-down (the rows decoded so far; "
                  "the rest counts as flat grey), interlaced PNG pass by pass, JPEG 2000 layer by layer. The "
                  "progressive JPEG is the column above.", ""]
        keys = ["hidenet", "jpeg", *contenders]
        rows = [[f"{kb} KB"] + [f"{_db(s[k]['psnr'][i])} / {_f(s[k]['ssim'][i], 3)}" for k in keys]
                for i, kb in enumerate(pr["budgets_kb"])]
        lines += _table(["Received"] + [labels[k] for k in keys], rows)
        lines += ["", "File bytes of each contender, per image:", ""]
        rows = [[im["image"], str(im["hidenet_bytes"]), str(im["jpeg_bytes"])]
                + [str(im["contender_files"][k]["bytes"]) for k in contenders] for im in pr["per_image"]]
        lines += _table(["Image", "hideNet layered (lossless)", labels["jpeg"]] + [labels[k] for k in contenders],
                        rows)
    lines += ["", "![progressive](results-progressive.png)", ""]

    # prediction
    lines += ["## Prediction", "",
              "PSNR (dB) of the odd pixels of each level predicted from its even pixels "
              "(the squared errors of all images "
              "pooled, every channel: the figures `hidenet eval` prints, plus the coding loop). "
              "Model: the network's rounded means alone; with preview filter: refined by the level's per-image "
              "preview filter, fitted as the encoder fits it (what the stream's preview and generative levels show; "
              "levels under 1024 positions carry none); in the coding loop: later coding steps also "
              "see the odd values decoded before them (what the entropy coder codes against).", ""]
    rows = [[str(lv["level"]), str(lv["images"]), _f(lv["model_psnr"]), _f(lv["model_filtered_psnr"]),
             _f(lv["model_in_loop_psnr"]), _f(lv["bicubic_psnr"]), _f(lv["gain_db"], 2), _f(lv["filtered_gain_db"], 2)]
            for lv in results["prediction"]["mean"]]
    lines += _table(["Level", "Images", "Model", "With preview filter", "Model in coding loop", "Bicubic",
                     "Model - bicubic", "Filtered - bicubic"], rows)
    lines += ["", "![prediction](results-prediction.png)", ""]

    # generative
    gen = results.get("generative", {}).get("mean", [])
    if gen:
        lines += ["## Generative levels", "",
                  "The finest g levels not sent (the decoder shows the prediction), every other level lossless: "
                  "the stream's bytes (in brackets: the mean fraction of the lossless stream) and the decoded image's "
                  "PSNR (dB, pooled) / SSIM, with the per-image preview filters (format version 5, the default) and "
                  "without them (`--format-version 4`).", ""]
        def variant(v: dict) -> list[str]:
            return [f"{v['bytes']} ({v['fraction']:.2f})", f"{_f(v['psnr'])} / {_f(v['ssim'], 3)}"]

        rows = [[str(r["g"]), str(r["images"]), *variant(r["filtered"]), *variant(r["plain"]),
                 f"{r['filter_bytes']:+d}", f"{r['filter_db']:+.2f}"] for r in gen]
        lines += _table(["g", "Images", "Bytes", "PSNR / SSIM", "Bytes, no filter", "PSNR / SSIM, no filter",
                         "Filter bytes", "Filter dB"], rows)
        lines += ["", "The same (version 5) images as the viewer shows them, with the display filter that softens the "
                  "grid of exact pixels among the predicted ones (docs/viewer.md), and the grid's contrast: a grid "
                  "pixel's squared difference from the mean of its 8 neighbours over the same for every pixel "
                  "(about 1 in a photograph).", ""]
        rows = [[str(r["g"]), f"{_f(r['filtered']['psnr'])} / {_f(r['filtered']['ssim'], 3)}",
                 f"{_f(r['display']['psnr'])} / {_f(r['display']['ssim'], 3)}",
                 f"{r['display']['psnr'] - r['filtered']['psnr']:+.3f}",
                 f"{_f(r['display']['contrast_before'])} → {_f(r['display']['contrast_after'])}"] for r in gen]
        lines += _table(["g", "PSNR / SSIM", "PSNR / SSIM, display filter", "Display filter dB", "Grid contrast"], rows)
        lines += [""]

    # serving
    sv = results["serving"]
    lines += ["## Serving", ""]
    if not sv.get("available"):
        lines += [f"Not measured: {sv.get('reason', 'unknown')}.", ""]
    else:
        lines += [f"`{sv['image']}` ({sv['width']}x{sv['height']}), cached, streamed to N clients at once over the "
                  f"`{sv['link']}` link by a real `hidenet serve` on loopback (model `{sv['model']}`), sharing this "
                  "machine with the clients. TTFL: time to first level, from `start` to the first frame; lag: each "
                  "level's frame beyond the link schedule; memory: the server's largest RSS during the run / "
                  "its peak.", ""]
        rows = [[str(r["streams"]), f"{r['completed']}/{r['streams']}", str(r["errors"]),
                 f"{_f(r['ttfl_p50_ms'], 1)} ({_x(r['ttfl_p50_ratio'])})",
                 f"{_f(r['ttfl_p95_ms'], 1)} ({_x(r['ttfl_p95_ratio'])})",
                 f"{_f(r['lag_p95_ms'], 1)} ({_x(r['lag_p95_ratio'])})", _f(r["lag_max_ms"], 1),
                 f"{_f(r['rss_mb_max'], 0)} / {_f(r['peak_rss_mb'], 0)}"] for r in sv["rows"]]
        lines += _table(["Streams", "Completed", "Errors", "TTFL p50 ms", "TTFL p95 ms", "Lag p95 ms", "Lag max ms",
                         "Memory MB"], rows)
        lines += ["", "In brackets: the ratio to the same figure with one stream in this run."]
        lines += ["", *_proxied_lines(sv.get("proxied") or {"available": False, "reason": "not run"})]
        lines += ["", "![serving](results-serving.png)", ""]

    lines += ["## Where hideNet is behind", ""]
    items = behind(results)
    lines += [f"- {b}" for b in items] if items else ["Nowhere in this run."]
    lines.append("")
    return "\n".join(lines)


def _plot_progressive(results: dict, path: Path) -> None:
    pr = results["progressive"]
    kb = pr["budgets_kb"]
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    styles = {"hidenet": ("C0", "o", "-"), "hidenet_res": ("C1", "D", "-"), "bicubic": ("C2", "s", "-"),
              "jpeg": ("C3", "^", "-")}
    for n, key in enumerate(pr.get("contenders", {})):  # the race's other contenders: thinner, dotted
        styles[key] = (f"C{4 + n}", "v", ":")
    for i, metric in enumerate(("psnr", "ssim")):
        ax = fig.add_subplot(1, 2, i + 1)
        for key, label in pr["series_labels"].items():
            # nothing to draw where every image is exact (infinite PSNR)
            ys = [math.nan if y is None or math.isinf(y) else y for y in pr["mean"]["series"][key][metric]]
            color, marker, line = styles.get(key, ("C0", "x", "--"))
            ax.plot(kb, ys, marker=marker, color=color, linestyle=line, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(kb, [str(k) for k in kb])
        ax.set_xlabel("bytes received (KB)")
        ax.set_ylabel("PSNR (dB, pooled)" if metric == "psnr" else "SSIM (mean)")
        ax.grid(True, alpha=0.3)
        if i == 0:
            ax.legend(fontsize="small")
    fig.suptitle(f"What the viewer shows after N bytes ({len(results['images'])} images)")
    fig.savefig(path, dpi=100)


def _plot_lossless(results: dict, path: Path) -> None:
    ll = results["lossless"]
    keys = list(ll["mean"])
    labels = [ll["codecs"][k]["label"] for k in keys]
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax = fig.add_subplot(1, 2, 1)
    bpp = [ll["mean"][k]["bpp"] or 0 for k in keys]
    ax.bar(labels, bpp, color=["C0" if k == "hidenet" else "C1" if k == "hidenet_res" else "C7" for k in keys])
    ax.set_ylabel("bits per pixel (mean)")
    ax.tick_params(axis="x", rotation=30)
    ax.set_title("Lossless size")
    ax2 = fig.add_subplot(1, 2, 2)
    for k, label in zip(keys, labels):
        m = ll["mean"][k]
        if m["decode_s"] is not None and m["bpp"] is not None:
            ax2.scatter([m["decode_s"] * 1000], [m["bpp"]], color="C0" if k == "hidenet" else "C7")
            ax2.annotate(label, (m["decode_s"] * 1000, m["bpp"]), textcoords="offset points", xytext=(4, 4))
    ax2.set_xscale("log")
    ax2.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax2.xaxis.set_major_formatter(ScalarFormatter())
    ax2.xaxis.set_minor_formatter(NullFormatter())
    ax2.set_xlabel("decode time (ms, mean, log scale)")
    ax2.set_ylabel("bits per pixel")
    ax2.set_title("Size against decode time")
    ax2.grid(True, alpha=0.3)
    fig.savefig(path, dpi=100)


def _plot_prediction(results: dict, path: Path) -> None:
    rows = results["prediction"]["mean"]
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    lv = [r["level"] for r in rows]
    for key, label, color in (("model_psnr", "model", "C0"), ("model_filtered_psnr", "model + preview filter", "C3"),
                              ("model_in_loop_psnr", "model in coding loop", "C1"), ("bicubic_psnr", "bicubic", "C2")):
        ax.plot(lv, [math.nan if r[key] is None else r[key] for r in rows], marker="o", label=label, color=color)
    ax.set_xticks(lv)
    ax.set_xlabel("level (0 = full image)")
    ax.set_ylabel("PSNR of odd pixels (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100)


def _proxied_lines(px: dict) -> list[str]:
    """The scale-out row: several processes behind nginx, as the README's "Scaling out" sets them up."""
    if not px.get("available"):
        return [f"Behind nginx: not measured: {px.get('reason', 'unknown')}."]
    lines = [f"Behind nginx: the same image through the README's scale-out deployment, {px['processes']} server "
             f"processes (`hidenet serve --processes {px['processes']}`, gunicorn) behind nginx with the README's "
             "site configuration, each process warmed; memory is one process's. In brackets: the ratio to one "
             "stream on one process (above).", ""]
    rows = [[f"{r['streams']}, {px['processes']} processes + nginx", f"{r['completed']}/{r['streams']}",
             str(r["errors"]), f"{_f(r['ttfl_p50_ms'], 1)} ({_x(r['ttfl_p50_ratio'])})",
             f"{_f(r['ttfl_p95_ms'], 1)} ({_x(r['ttfl_p95_ratio'])})",
             f"{_f(r['lag_p95_ms'], 1)} ({_x(r['lag_p95_ratio'])})", _f(r["lag_max_ms"], 1),
             f"{_f(r['rss_mb_max'], 0)} / {_f(r['peak_rss_mb'], 0)}"] for r in px["rows"]]
    return lines + _table(["Streams", "Completed", "Errors", "TTFL p50 ms", "TTFL p95 ms", "Lag p95 ms",
                           "Lag max ms", "Memory MB"], rows)


def _plot_serving(results: dict, path: Path) -> None:
    sv = results["serving"]
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    if sv.get("available") and sv.get("rows"):
        n = [r["streams"] for r in sv["rows"]]
        for key, label in (("ttfl_p50_ms", "TTFL p50"), ("ttfl_p95_ms", "TTFL p95"), ("lag_p95_ms", "lag p95")):
            ax.plot(n, [math.nan if r.get(key) is None else r[key] for r in sv["rows"]], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(n, [str(k) for k in n])
        ax.set_xlabel("concurrent streams")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("ms (log scale)")
        ax.set_title(f"{sv['image']} over '{sv['link']}', concurrent streams")
        ax.grid(True, alpha=0.3)
        ax.legend()
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"serving not measured:\n{sv.get('reason', '')}", ha="center", va="center", wrap=True)
    fig.savefig(path, dpi=100)


def write_outputs(results: dict, out: Path) -> list[Path]:
    """Write results.json, results.md and the plots into ``out``; return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("results-progressive.png", _plot_progressive), ("results-lossless.png", _plot_lossless),
                       ("results-prediction.png", _plot_prediction), ("results-serving.png", _plot_serving)):
        draw(results, out / name)
        written.append(out / name)
    (out / "results.json").write_text(json.dumps(_json_safe(results), indent=2, allow_nan=False) + "\n")
    (out / "results.md").write_text(render_markdown(results))
    return [out / "results.json", out / "results.md", *written]
