"""Serving figures: the server's load test (``server/clients/loadtest.py``) run from the benchmark.

Runs the load test as its own process (``python -m server.clients.loadtest``: the core
imports nothing from the server), which starts a real ``hidenet serve`` process on a
free loopback port serving the first benchmark image, has it encode and cache that
image and render its frames once (a warm-up stream), then streams it to 1, 8 and 32
concurrent websocket clients at once over the "unlimited" link. Per concurrency: time
to first level (from the client's ``start`` message to the first level's frame; p50,
p95), delay of each level's frame beyond the link schedule (p50, p95, max), errors,
and the server's memory (largest RSS sampled during the run, and the process's peak).
Each time is also given as a ratio to the same figure with a single stream, measured
in the same run.

Then the same image behind the README's scale-out deployment: ``PROXIED_PROCESSES``
server processes (``hidenet serve --processes 2``, gunicorn) behind nginx with the
README's site configuration, ``PROXIED_STREAMS`` streams at once through the proxy
(each process warmed first); its times are also given as ratios to the single stream
of the single process.

If the server package or its load test cannot be used, the section is reported as
unavailable with the reason and the rest of the benchmark is unaffected; without nginx,
only the proxied row is.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from ...imageio import save_png
from .images import BenchImage
from .timing import ratio

__all__ = ["STREAMS", "QUICK_STREAMS", "LINK", "LOADTEST", "PROXIED_PROCESSES", "PROXIED_STREAMS", "run_serving",
           "rows_from_loadtest"]

STREAMS = (1, 8, 32)
QUICK_STREAMS = (1, 8)
LINK = "unlimited"
#: the server's load test, run as a module in a process of its own
LOADTEST = "server.clients.loadtest"
#: the most the load test may take, server start and warm-up included
TIMEOUT_S = 1200
#: the scale-out row: this many processes behind nginx, this many streams through it
PROXIED_PROCESSES = 2
PROXIED_STREAMS = 64


def rows_from_loadtest(result: dict, ref: dict | None = None) -> list[dict]:
    """The load test's runs as the benchmark reports them; each time also as a ratio to the
    same figure with a single stream (``ref``, a load-test run; by default this result's
    smallest concurrency), measured in the same benchmark."""
    runs = result["runs"]
    if not runs:
        return []
    ref = ref or min(runs, key=lambda r: r["streams"])  # the single-stream run
    rows = []
    for r in runs:
        rows.append({
            "streams": r["streams"],
            "completed": r["completed"],
            "errors": r["errors"],
            "error_messages": r.get("error_messages", []),
            "ttfl_p50_ms": r["first_level_ms_p50"],
            "ttfl_p95_ms": r["first_level_ms_p95"],
            "ttfl_p50_ratio": ratio(r["first_level_ms_p50"], ref["first_level_ms_p50"]),
            "ttfl_p95_ratio": ratio(r["first_level_ms_p95"], ref["first_level_ms_p95"]),
            "lag_p50_ms": r["lag_ms_p50"],
            "lag_p95_ms": r["lag_ms_p95"],
            "lag_p95_ratio": ratio(r["lag_ms_p95"], ref["lag_ms_p95"]),
            "lag_max_ms": r["lag_ms_max"],
            "levels_per_stream": r["levels_per_stream"],
            "wall_s": r["wall_s"],
            "rss_mb_max": r["rss_mb_max"],
            "peak_rss_mb": r["peak_rss_mb"],
        })
    return rows


def _loadtest(folder: Path, image: str, model: str, streams: tuple[int, ...], *extra: str) -> dict:
    """One load-test process: its JSON result, or ``{"available": False, "reason": ...}``."""
    out = folder.parent / f"loadtest-{len(list(folder.parent.glob('loadtest-*')))}.json"
    cmd = [sys.executable, "-m", LOADTEST, "--images", str(folder), "--image", image, "--model", model,
           "--streams", ",".join(map(str, streams)), "--link", LINK, "--json", str(out), *extra]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"available": False, "reason": f"the load test did not finish within {TIMEOUT_S} s"}
    if not out.is_file():  # the server package or nginx is missing, or the server did not start
        return {"available": False, "reason": f"the load test failed (exit {proc.returncode}): "
                                              f"{proc.stderr.strip()[-2000:]}"}
    return {"available": True, **json.loads(out.read_text())}


def run_serving(images: list[BenchImage], model: str, streams: tuple[int, ...], proxied: bool = True) -> dict:
    """The load test's figures for the first image, or ``{"available": False, "reason": ...}``;
    with ``proxied`` also the scale-out row (``"proxied"``: its rows, or why it is missing)."""
    image = images[0]
    with tempfile.TemporaryDirectory(prefix="hidenet-bench-serve-") as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        save_png(image.pixels, folder / f"{image.name}.png")
        result = _loadtest(folder, image.name, model, streams)
        if not result["available"]:
            return result
        scaled = (_loadtest(folder, image.name, model, (PROXIED_STREAMS,), "--processes", str(PROXIED_PROCESSES),
                            "--proxy") if proxied else {"available": False, "reason": "not run"})
    ref = min(result["runs"], key=lambda r: r["streams"]) if result["runs"] else None
    proxied_section = (
        {"available": True, "processes": PROXIED_PROCESSES, "proxy": "nginx",
         "server_exit_code": scaled["server_exit_code"], "rows": rows_from_loadtest(scaled, ref), "raw": scaled}
        if scaled["available"] else scaled
    )
    return {
        "available": True,
        "image": image.name,
        "width": image.width,
        "height": image.height,
        "link": LINK,
        "model": model,
        "server_exit_code": result["server_exit_code"],
        "rows": rows_from_loadtest(result),
        "raw": result,
        "proxied": proxied_section,
    }
