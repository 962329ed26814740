"""Load test: many concurrent streams of one cached image against a running server.

``run_loadtest`` measures, for each concurrency, the time to the first level (from
the ``start`` message to its frame), each level's delay beyond the link schedule (its
frame's arrival at the client, counted from ``meta``, minus its ``arrival_ms``),
errors, and the server's memory (``/api/stats``: RSS sampled during the run and the
process's peak; with several processes, of whichever process answered). ``python -m
server.clients.loadtest`` starts a real server on a free loopback port (with
``--processes N --proxy``: N processes under gunicorn behind nginx with the README's
site configuration, the clients talking to nginx), pre-warms its cache, runs it and
prints a table and JSON (``hidenet bench`` runs it so, in a process of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp

from .fetch import ws_url
from .process import free_port, start_server, stop_server
from .proxy import NGINX_SITE, site_for, start_nginx, stop_nginx

__all__ = ["run_loadtest", "stream_once", "percentile", "main"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


async def stream_once(session: aiohttp.ClientSession, base_url: str, image_id: str, link: str | dict = "unlimited",
                      preview: bool = True, ready: asyncio.Event | None = None,
                      on_frame: Callable[[bytes], None] | None = None) -> dict:
    """One stream; returns its timings or its error (and ``close_code``: the socket's close code
    if the server closed it mid-stream). Waits for ``ready`` before sending start; hands each
    chunk's frame to ``on_frame``; ``levels`` counts the frames received, ``chunks`` is the stream's
    chunk count (from ``done``)."""
    out: dict = {"first_level_ms": None, "lags_ms": [], "levels": 0, "chunks": None, "error": None, "frame_bytes": 0,
                 "close_code": None}
    try:
        async with session.ws_connect(ws_url(base_url), max_msg_size=0) as ws:
            if ready is not None:
                await ready.wait()
            t_start = time.perf_counter()
            await ws.send_json({"type": "start", "image": image_id, "link": link, "preview": preview})
            t_meta, pending = None, None
            async for msg in ws:
                now = time.perf_counter()
                if msg.type == aiohttp.WSMsgType.BINARY and pending is not None:
                    if pending["type"] == "level":
                        out["levels"] += 1
                        out["frame_bytes"] += len(msg.data)
                        if out["first_level_ms"] is None:
                            out["first_level_ms"] = (now - t_start) * 1000
                        out["lags_ms"].append((now - t_meta) * 1000 - pending["arrival_ms"])
                        if on_frame is not None:
                            on_frame(msg.data)
                    pending = None
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if data["type"] == "meta":
                        t_meta = now
                    elif data["type"] in ("level", "race"):
                        pending = data
                    elif data["type"] == "error":
                        out["error"] = data.get("message", "error")
                        break
                    elif data["type"] == "done":
                        out["chunks"] = data["chunks"]
                        break
                else:
                    out["error"] = f"socket closed ({msg.type.name})"
                    out["close_code"] = ws.close_code
                    break
            else:  # the server closed the socket (async for ends on a close frame)
                out["error"] = f"socket closed before done (close code {ws.close_code})"
                out["close_code"] = ws.close_code
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


async def _sample_memory(session: aiohttp.ClientSession, base_url: str, stop: asyncio.Event,
                         samples: list[int]) -> None:
    while not stop.is_set():
        with contextlib.suppress(aiohttp.ClientError, OSError, ValueError):
            async with session.get(f"{base_url}/api/stats") as resp:
                samples.append((await resp.json())["rss_bytes"])
        with contextlib.suppress(TimeoutError):  # asyncio.timeout: 3.11's wait_for can lose a cancel
            async with asyncio.timeout(0.1):
                await stop.wait()


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


async def run_loadtest(base_url: str, image_id: str, streams: Sequence[int] = (1, 8, 32), link="unlimited") -> dict:
    """For each concurrency in ``streams``: time to first level (p50, p95), delay beyond the
    link schedule, errors and server memory. The image should already be cached."""
    base_url = base_url.rstrip("/")
    runs = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as session:
        for n in streams:
            ready, stop, samples = asyncio.Event(), asyncio.Event(), []
            sampler = asyncio.create_task(_sample_memory(session, base_url, stop, samples))
            tasks = [asyncio.create_task(stream_once(session, base_url, image_id, link, True, ready)) for _ in range(n)]
            await asyncio.sleep(0.2)  # let every socket connect, then start them together
            t0 = time.perf_counter()
            ready.set()
            results = await asyncio.gather(*tasks)
            wall = time.perf_counter() - t0
            stop.set()
            await sampler
            async with session.get(f"{base_url}/api/stats") as resp:
                stats = await resp.json()
            firsts = [r["first_level_ms"] for r in results if r["first_level_ms"] is not None]
            lags = [lag for r in results for lag in r["lags_ms"]]
            errors = [r["error"] for r in results if r["error"]]
            runs.append({
                "streams": n,
                "completed": n - len(errors),
                "errors": len(errors),
                "error_messages": sorted(set(errors))[:5],
                "first_level_ms_p50": _round(percentile(firsts, 50)),
                "first_level_ms_p95": _round(percentile(firsts, 95)),
                "first_level_ms_max": _round(max(firsts, default=None)),
                "lag_ms_p50": _round(percentile(lags, 50)),
                "lag_ms_p95": _round(percentile(lags, 95)),
                "lag_ms_max": _round(max(lags, default=None)),
                "levels_per_stream": max((r["levels"] for r in results), default=0),
                "wall_s": round(wall, 3),
                "rss_mb_max": _round(max(samples, default=stats["rss_bytes"]) / 2**20),
                "peak_rss_mb": _round(stats["peak_rss_bytes"] / 2**20),
            })
    return {"base_url": base_url, "image": image_id, "link": link, "runs": runs}


# --- command line: a real server process --------------------------------------------------------


async def _warm_every_process(base_url: str, image_id: str, processes: int) -> None:
    """Several processes share one port: warm-up streams on new connections until each process
    has rendered the frames once (as one warm-up stream does for a single process)."""
    warmed: set[int] = set()
    for _ in range(20 * processes):
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base_url}/api/stats") as resp:
                stats = await resp.json()
            if stats["frame_misses"] > 0:
                warmed.add(stats["pid"])
            if len(warmed) >= processes:
                return
            await asyncio.gather(*(stream_once(session, base_url, image_id) for _ in range(2)))


async def _prepare(base_url: str, image: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base_url}/api/images") as resp:
            images = await resp.json()
        match = [i for i in images if image in (i["id"], i["name"])]
        if not match:
            raise SystemExit(f"loadtest: no image {image!r}; the server has {[i['name'] for i in images]}")
        image_id = match[0]["id"]
        async with session.get(f"{base_url}/api/images/{image_id}/stream.hdn") as resp:
            await resp.read()  # encoded and cached
        warm = await stream_once(session, base_url, image_id)  # frames rendered and cached
        if warm["error"]:
            raise SystemExit(f"loadtest: warm-up stream failed: {warm['error']}")
        return image_id


def format_table(result: dict) -> str:
    head = (f"{'streams':>7} {'ok':>4} {'err':>4} {'first p50':>10} {'first p95':>10} {'lag p50':>8} {'lag p95':>8} "
            f"{'lag max':>8} {'wall s':>7} {'RSS max':>8} {'peak':>7}")
    lines = [head]
    for r in result["runs"]:
        lines.append(f"{r['streams']:>7} {r['completed']:>4} {r['errors']:>4} {r['first_level_ms_p50']:>8}ms "
                     f"{r['first_level_ms_p95']:>8}ms {r['lag_ms_p50']:>6}ms {r['lag_ms_p95']:>6}ms "
                     f"{r['lag_ms_max']:>6}ms {r['wall_s']:>7} {r['rss_mb_max']:>6}MB {r['peak_rss_mb']:>5}MB")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m server.clients.loadtest", description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", default="1,8,32", help="concurrencies, comma-separated (default 1,8,32)")
    p.add_argument("--link", default="unlimited", help="link preset (default unlimited)")
    p.add_argument("--image", default="astronaut", help="image name or id (default astronaut)")
    p.add_argument("--images", type=Path, default=None, metavar="DIR",
                   help="the server serves the images in DIR instead of the bundled samples")
    p.add_argument("--model", default="default", help="server model (default: the shipped weights)")
    p.add_argument("--url", default=None, help="use this running server instead of starting one (its viewers all come "
                   "from this machine: start it with --max-client-streams and --max-client-sockets above the "
                   "concurrency)")
    p.add_argument("--server-cpus", default=None, metavar="LIST",
                   help="pin the server to these CPUs, e.g. 0,1 (to measure a 2-core server on a bigger machine)")
    p.add_argument("--processes", type=int, default=None, metavar="N",
                   help="run N server processes (hidenet serve --processes N) instead of one")
    p.add_argument("--proxy", action="store_true",
                   help="put nginx in front, with the README's site configuration (needs nginx)")
    p.add_argument("--json", type=Path, default=None, help="also write the JSON result here")
    args = p.parse_args(argv)
    try:
        streams = [int(s) for s in args.streams.split(",")]
    except ValueError:
        p.error(f"--streams {args.streams!r} is not a comma-separated list of integers")
    if args.proxy and args.url:
        p.error("--proxy starts its own server; it cannot be combined with --url")
    server = proxy = None
    with tempfile.TemporaryDirectory(prefix="hidenet-loadtest-") as tmp:
        try:
            if args.url:
                base = args.url.rstrip("/")
            else:
                cpus = {int(c) for c in args.server_cpus.split(",")} if args.server_cpus else None
                extra = ["--images", str(args.images)] if args.images else []
                # every viewer comes from this machine: one client, allowed as many streams as the server
                room = str(max(streams) + 8)
                extra += ["--max-client-streams", room, "--max-client-sockets", room]
                if args.proxy:
                    extra += ["--forwarded-allow-ips", "127.0.0.1"]
                server = start_server(Path(tmp) / "data", args.model, max_streams=max(streams) + 8, extra=extra,
                                      cpus=cpus, processes=args.processes)
                base = server.url
                if args.proxy:
                    listen = free_port()
                    site = site_for(NGINX_SITE, listen, int(base.rsplit(":", 1)[1]))
                    proxy = start_nginx(site, Path(tmp) / "nginx", listen)
                    base = proxy.url
            image_id = asyncio.run(_prepare(base, args.image))
            if args.processes and args.processes > 1:
                asyncio.run(_warm_every_process(base, image_id, args.processes))
            result = asyncio.run(run_loadtest(base, image_id, streams, args.link))
        finally:
            if proxy is not None:
                stop_nginx(proxy)
            exit_code = stop_server(server) if server is not None else None
    result.update({"model": args.model, "machine_cpus": os.cpu_count(), "server_cpus": args.server_cpus,
                   "server_exit_code": exit_code, "processes": args.processes or 1,
                   "proxy": "nginx" if args.proxy else None})
    print(format_table(result))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if all(r["errors"] == 0 for r in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
