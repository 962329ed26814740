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

If the server package or its load test cannot be used, the section is reported as
unavailable with the reason and the rest of the benchmark is unaffected.
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

__all__ = ["STREAMS", "QUICK_STREAMS", "LINK", "LOADTEST", "run_serving", "rows_from_loadtest"]

STREAMS = (1, 8, 32)
QUICK_STREAMS = (1, 8)
LINK = "unlimited"
#: the server's load test, run as a module in a process of its own
LOADTEST = "server.clients.loadtest"
#: the most the load test may take, server start and warm-up included
TIMEOUT_S = 1200


def rows_from_loadtest(result: dict) -> list[dict]:
    """The load test's runs as the benchmark reports them; each time also as a ratio to the
    same figure with a single stream (the smallest concurrency run), measured in the same run."""
    runs = result["runs"]
    if not runs:
        return []
    ref = min(runs, key=lambda r: r["streams"])  # the single-stream run
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


def run_serving(images: list[BenchImage], model: str, streams: tuple[int, ...]) -> dict:
    """The load test's figures for the first image, or ``{"available": False, "reason": ...}``."""
    image = images[0]
    with tempfile.TemporaryDirectory(prefix="hidenet-bench-serve-") as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        save_png(image.pixels, folder / f"{image.name}.png")
        out = Path(tmp) / "loadtest.json"
        cmd = [sys.executable, "-m", LOADTEST, "--images", str(folder), "--image", image.name, "--model", model,
               "--streams", ",".join(map(str, streams)), "--link", LINK, "--json", str(out)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return {"available": False, "reason": f"the load test did not finish within {TIMEOUT_S} s"}
        if not out.is_file():  # the server package is missing, or the server did not start
            return {"available": False, "reason": f"the load test failed (exit {proc.returncode}): "
                                                  f"{proc.stderr.strip()[-2000:]}"}
        result = json.loads(out.read_text())
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
    }
