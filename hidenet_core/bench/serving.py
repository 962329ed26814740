"""Serving figures: the server's load test (``server/loadtest.py``) run from the benchmark.

Starts a real ``hidenet serve`` process on a free loopback port serving the first
benchmark image, has it encode and cache that image and render its frames once (a
warm-up stream), then streams it to 1, 8 and 32 concurrent websocket clients at once
over the "unlimited" link. Per concurrency: time to first level (from the client's
``start`` message to the first level's frame; p50, p95), delay of each level's frame
beyond the link schedule (p50, p95, max), errors, and the server's memory (largest RSS
sampled during the run, and the process's peak). Each time is also given as a ratio to
the same figure with a single stream, measured in the same run.

If the server package or its load test cannot be used, the section is reported as
unavailable with the reason and the rest of the benchmark is unaffected.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from PIL import Image

from .images import BenchImage
from .timing import ratio

__all__ = ["STREAMS", "QUICK_STREAMS", "LINK", "run_serving", "rows_from_loadtest"]

STREAMS = (1, 8, 32)
QUICK_STREAMS = (1, 8)
LINK = "unlimited"


def _save(image: BenchImage, folder: Path) -> Path:
    px = image.pixels
    path = folder / f"{image.name}.png"
    Image.fromarray(px[:, :, 0] if px.shape[2] == 1 else px).save(path)
    return path


async def _prepare(loadtest, base_url: str, name: str) -> str:
    """The server's id of ``name``, its stream encoded and cached, its frames rendered once."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base_url}/api/images") as resp:
            resp.raise_for_status()
            images = await resp.json()
        match = [i for i in images if i["name"] in (name, f"{name}.png")]
        if not match:
            raise RuntimeError(f"the server does not list the image {name!r}: {[i['name'] for i in images]}")
        image_id = match[0]["id"]
        async with session.get(f"{base_url}/api/images/{image_id}/stream.hdn") as resp:
            resp.raise_for_status()
            await resp.read()
        warm = await loadtest.stream_once(session, base_url, image_id)
        if warm["error"]:
            raise RuntimeError(f"the warm-up stream failed: {warm['error']}")
        return image_id


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
    try:
        from server import loadtest, process
    except ImportError as exc:
        return {"available": False, "reason": f"the server's load test is not importable ({exc})"}
    image = images[0]
    server = None
    try:
        with tempfile.TemporaryDirectory(prefix="hidenet-bench-serve-") as tmp:
            folder = Path(tmp) / "images"
            folder.mkdir()
            _save(image, folder)
            data_dir = Path(tmp) / "data"
            data_dir.mkdir()
            try:
                server = process.start_server(data_dir, model, max_streams=max(streams) + 8,
                                              extra=["--images", str(folder)])
                base = server.url
                image_id = asyncio.run(_prepare(loadtest, base, image.name))
                result = asyncio.run(loadtest.run_loadtest(base, image_id, list(streams), LINK))
            finally:
                exit_code = process.stop_server(server) if server is not None else None
    except Exception as exc:  # the server is another component: report, don't crash the benchmark
        return {"available": False, "reason": f"the load test failed: {type(exc).__name__}: {exc}"}
    return {
        "available": True,
        "image": image.name,
        "width": image.width,
        "height": image.height,
        "link": LINK,
        "model": model,
        "server_exit_code": exit_code,
        "rows": rows_from_loadtest(result),
        "raw": result,
    }
