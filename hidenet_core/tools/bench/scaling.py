"""The benchmark's Scaling section: time and peak memory against the image's size.

hideNet at each effort level (``codec.encoder.EFFORTS``), lossless, against JPEG XL
(libjxl, ``effort=7``) and WebP lossless (libwebp, ``method=6``) through imagecodecs, at
about 0.4, 1, 3, 12 and 40 MP. Each size is a centre crop of the smallest photograph
that has that many pixels (a crop keeps a photograph's statistics), or the largest one
scaled up (Lanczos) where none has: so a folder of 12-20 MP photographs gives real
crops up to 12 MP and one photograph scaled up to 40 MP.

Every encode and every decode runs in a child process of its own (``python -m
hidenet_core.tools.bench.scaling``), which reports its time and its peak resident
memory (Linux's ``VmHWM``, else ``getrusage``'s ``ru_maxrss``: torch allocates outside
Python's tracemalloc, so only the process's own figure is the truth). The peak includes what
the process holds before it starts: the interpreter, torch and the model for hideNet
(``idle_mb`` in the results), the decoded input image for the encoders. Times leave
out loading the model and reading or writing files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["SIZES_MP", "CONTENDERS", "prepare_images", "run_scaling", "scaling_markdown"]

#: the sizes measured, in megapixels
SIZES_MP = (0.4, 1.0, 3.0, 12.0, 40.0)
#: the codecs besides hideNet's efforts: key -> label
CONTENDERS = {"jpegxl": "JPEG XL e7", "webp": "WebP lossless m6"}


def _pixels_sha(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def prepare_images(paths: list[Path], sizes_mp: tuple[float, ...], work: Path,
                   log: Callable[[str], None] = print) -> list[dict]:
    """One PNG of about each size in ``work``: a centre crop of the smallest of ``paths``
    with enough pixels, else the largest scaled up. Returns a record per size."""
    from PIL import Image

    from ...imageio import load_image

    if not paths:
        raise ValueError("no images for the scaling section")
    sources = []
    for path in paths:
        with Image.open(path) as im:
            sources.append((im.size[0] * im.size[1], path))
    sources.sort()
    out = []
    for mp in sizes_mp:
        target = mp * 1e6
        fits = [p for n, p in sources if n >= target]
        path = fits[0] if fits else sources[-1][1]
        pixels = load_image(path).pixels
        h, w = pixels.shape[:2]
        if fits:
            cw = min(w, max(1, round(math.sqrt(target * w / h))))
            ch = min(h, max(1, round(target / cw)))
            top, left = (h - ch) // 2, (w - cw) // 2
            pixels = np.ascontiguousarray(pixels[top : top + ch, left : left + cw])
            how = f"centre crop of {path.name} ({w}x{h})"
        else:
            f = math.sqrt(target / (w * h))
            size = (round(w * f), round(h * f))
            mode = {1: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
            img = Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels, mode).resize(size, Image.LANCZOS)
            pixels = np.asarray(img).reshape(size[1], size[0], -1)
            how = f"{path.name} ({w}x{h}) scaled up {f:.2f}x (Lanczos)"
        file = work / f"scaling-{mp:g}mp.png"
        Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(file, compress_level=1)
        rec = {"mp": mp, "file": str(file), "width": pixels.shape[1], "height": pixels.shape[0],
               "channels": pixels.shape[2], "source": how, "pixels_sha256": _pixels_sha(pixels)}
        log(f"scaling: {mp:g} MP = {rec['width']}x{rec['height']}, {how}")
        out.append(rec)
    return out


def _child(job: dict, timeout_s: float) -> dict:
    """Run one job in a fresh interpreter; its JSON report (or the reason it has none)."""
    cmd = [sys.executable, "-m", "hidenet_core.tools.bench.scaling", json.dumps(job)]
    env = dict(os.environ, OMP_NUM_THREADS=str(job["threads"]))
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {"error": tail[0][:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_scaling(paths: list[Path], work: Path, sizes_mp: tuple[float, ...] = SIZES_MP,
                efforts: tuple[int, ...] | None = None, contenders: tuple[str, ...] = tuple(CONTENDERS),
                model: str = "default", threads: int = 1, timeout_s: float = 3600.0,
                log: Callable[[str], None] = print,
                on_row: Callable[[dict], None] | None = None) -> dict:
    """Measure every codec at every size (see the module docstring); the results dict.
    ``on_row`` hears the results so far after each row (a long run can be stopped and
    still leave them)."""
    from ...codec.encoder import DEFAULT_EFFORT, EFFORTS

    efforts = tuple(EFFORTS) if efforts is None else efforts
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    images = prepare_images(paths, sizes_mp, work, log)
    idle = _child({"op": "idle", "codec": "hidenet", "model": model, "threads": threads}, timeout_s)
    codecs = [("hidenet", e) for e in efforts] + [(c, None) for c in contenders]
    rows: list[dict] = []

    def results() -> dict:
        return {"images": images, "rows": rows, "idle_mb": idle.get("peak_mb"), "threads": threads, "model": model,
                "seconds": time.perf_counter() - started}

    for image in images:
        for codec, effort in codecs:
            stream = work / f"scaling-{image['mp']:g}mp-{codec}{effort or ''}.bin"
            job = {"codec": codec, "effort": effort, "model": model, "threads": threads, "stream": str(stream),
                   "image": image["file"], "pixels_sha256": image["pixels_sha256"], "channels": image["channels"]}
            enc = _child({**job, "op": "encode"}, timeout_s)
            dec = _child({**job, "op": "decode"}, timeout_s) if "error" not in enc else {"error": "not encoded"}
            stream.unlink(missing_ok=True)
            label = f"hideNet effort {effort}" + (" (default)" if effort == DEFAULT_EFFORT else "") \
                if codec == "hidenet" else CONTENDERS[codec]
            row = {"mp": image["mp"], "width": image["width"], "height": image["height"], "codec": codec,
                   "effort": effort, "label": label, "encode": enc, "decode": dec}
            if "bytes" in enc:
                row["bpp"] = enc["bytes"] * 8 / (image["width"] * image["height"])
            log(f"scaling: {image['mp']:g} MP {label}: " + _line(row))
            rows.append(row)
            if on_row is not None:
                on_row(results())
        Path(image["file"]).unlink(missing_ok=True)
    return results()


def _line(row: dict) -> str:
    enc, dec = row["encode"], row["decode"]
    parts = []
    for name, rec in (("encode", enc), ("decode", dec)):
        parts.append(f"{name} {rec['error']}" if "error" in rec else
                     f"{name} {rec['seconds']:.2f} s {rec['peak_mb']:.0f} MB")
    return ", ".join(parts)


def _fmt(rec: dict, mp: float) -> tuple[str, str, str, str]:
    if "error" in rec:
        return rec["error"], "", "", ""
    seconds = f"{rec['seconds']:.2f}" + ("" if rec.get("exact", True) else " (not exact!)")
    cpu = rec.get("cpu_s")
    return (seconds, "" if cpu is None else f"{cpu:.2f}", f"{mp / cpu:.2f}" if cpu else "", f"{rec['peak_mb']:.0f}")


def scaling_markdown(results: dict) -> str:
    """The section's table (Markdown)."""
    lines = [
        "| size | codec | bpp | encode s | encode CPU s | encode MP/CPU s | encode peak MB | decode s | decode CPU s |"
        " decode MP/CPU s | decode peak MB | first chunk s |",
        "| :--- | :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["rows"]:
        mp = row["width"] * row["height"] / 1e6
        e, d = _fmt(row["encode"], mp), _fmt(row["decode"], mp)
        first = row["encode"].get("first_chunk_s")
        lines.append(f"| {mp:.{1 if mp >= 1 else 2}f} MP ({row['width']}x{row['height']}) | {row['label']} | "
                     f"{row.get('bpp', float('nan')):.3f} | {' | '.join(e)} | {' | '.join(d)} | "
                     f"{'' if first is None else f'{first:.2f}'} |")
    notes = [f"Peak memory is each process's peak resident set; an idle hideNet process (interpreter, torch, "
             f"model) holds {results['idle_mb']:.0f} MB of it." if results.get("idle_mb") else "",
             f"torch and the imagecodecs codecs on {results['threads']} thread(s); model {results['model']!r}. "
             "s: wall-clock seconds; CPU s: the process's user and system seconds during the call (on a shared "
             "machine the steadier figure; MP/CPU s is the speed on a core of one's own). "
             "First chunk: seconds from the start of hideNet's encode to its first chunk (the base), what a "
             "first view waits for at least."]
    return "\n".join(lines) + "\n\n" + "\n".join(n for n in notes if n) + "\n"


# -- the child ----------------------------------------------------------------------------------


def _cpu_s() -> float:
    """CPU seconds (user and system) this process has used: on a machine shared with other work
    the figure that drifts least (wall time includes waiting for a core)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_mb() -> float:
    """This process's peak resident memory in MB: Linux's VmHWM, which starts afresh at exec
    (``ru_maxrss`` keeps the high-water mark of the parent that forked the process)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux, bytes on macOS


def _run_job(job: dict) -> dict:
    """One encode or decode (``job["op"]``), timed; what the parent records."""
    import torch

    torch.set_num_threads(job["threads"])
    if job["op"] == "idle":
        from ...predictors import load_model

        load_model(job["model"])
        return {"peak_mb": _peak_mb()}
    stream = Path(job["stream"])
    codec = job["codec"]
    if codec == "hidenet":
        from ...codec import warmup
        from ...codec.decoder import decode_image
        from ...codec.encoder import EncodeSettings, encode_chunks
        from ...predictors import load_model

        model = load_model(job["model"])
        warmup.warm_up()  # numba's compiled loops loaded before the clock starts, as the imports are
    if job["op"] == "encode":
        from ...imageio import load_image

        pixels = load_image(job["image"]).pixels
        first = None
        c0 = _cpu_s()
        t0 = time.perf_counter()
        if codec == "hidenet":
            pieces = []
            for chunk in encode_chunks(pixels, model, EncodeSettings(effort=job["effort"])):
                pieces.append(chunk.data)
                if first is None and chunk.spec is not None:
                    first = time.perf_counter() - t0
            data = b"".join(pieces)
        else:
            data = _contender_encode(codec, pixels, job["threads"])
        seconds, cpu = time.perf_counter() - t0, _cpu_s() - c0
        stream.write_bytes(data)
        return {"seconds": seconds, "cpu_s": cpu, "bytes": len(data), "peak_mb": _peak_mb(), "first_chunk_s": first}
    data = stream.read_bytes()
    c0 = _cpu_s()
    t0 = time.perf_counter()
    out = decode_image(data, model) if codec == "hidenet" else _contender_decode(codec, data, job["threads"])
    seconds, cpu = time.perf_counter() - t0, _cpu_s() - c0
    out = np.asarray(out)
    if out.ndim == 2:
        out = out[:, :, None]
    if out.shape[2] == 3 and job["channels"] == 1:  # WebP codes grey as RGB with equal channels
        out = out[:, :, :1]
    return {"seconds": seconds, "cpu_s": cpu, "peak_mb": _peak_mb(), "exact": _pixels_sha(out) == job["pixels_sha256"]}


def _contender_encode(codec: str, pixels: np.ndarray, threads: int) -> bytes:
    import imagecodecs

    if codec == "jpegxl":
        plane = pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
        return imagecodecs.jpegxl_encode(plane, lossless=True, effort=7, numthreads=threads)
    if codec == "webp":
        arr = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels
        return imagecodecs.webp_encode(arr, lossless=True, method=6, numthreads=threads)
    raise ValueError(f"unknown contender {codec!r}")


def _contender_decode(codec: str, data: bytes, threads: int) -> np.ndarray:
    import imagecodecs

    if codec == "jpegxl":
        return imagecodecs.jpegxl_decode(data, numthreads=threads)
    if codec == "webp":
        return imagecodecs.webp_decode(data)
    raise ValueError(f"unknown contender {codec!r}")


if __name__ == "__main__":
    from ...memory import fast_allocator

    fast_allocator()  # as the ``hidenet`` commands do (memory.py)
    print(json.dumps(_run_job(json.loads(sys.argv[1]))))
