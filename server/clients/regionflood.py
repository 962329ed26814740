"""Region flood: one client asks many 1:1 regions that each need a decode, while another views.

``python -m server.clients.regionflood PHOTO [--sockets N] [--generative-levels G]`` starts a
real ``hidenet serve`` on a free loopback port with PHOTO as its only image. Then:

1. a *visitor* (a client of its own) views PHOTO's default stream once, so that it is cached,
   and the time from ``start`` to its first frame is taken (the baseline);
2. the *flooder* (another client; with ``--clients``, N clients) opens N websockets, streams
   PHOTO's generative stream (its finest G levels predicted, never sent, so a 1:1 region of
   it must decode the stream, and no final picture is kept: seconds at a few megapixels) to
   the end on each, then asks every socket at once for a 1:1 region of the whole picture;
3. while those regions are answered, the visitor views the cached stream again: the time to
   its first frame, against the baseline.

With ``--originals`` the flooder instead asks for PHOTO's ``original.png`` over and over on N
connections at once (a PNG made from the pixels on a worker thread); after 2 s the visitor
views the cached stream three times, and the count of originals sent is printed.

The server trusts this machine as a proxy and each client names itself in
``X-Forwarded-For``, so the two are different clients. It prints what the flooder's
sockets were answered (``region`` pictures, ``region_busy``) and both first-frame times.
README, "Security notes", quotes it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from hidenet_core import load_image

from ..storage.store import image_id
from .fetch import ws_url
from .process import start_server, stop_server

__all__ = ["flood", "flood_originals", "main"]

VISITOR, FLOODER = "198.51.100.7", "203.0.113.9"


async def _first_frame(session: aiohttp.ClientSession, base: str, image: str) -> float:
    """Seconds from ``start`` to the first frame of ``image``'s default stream (display-size frames)."""
    async with session.ws_connect(ws_url(base), headers={"X-Forwarded-For": VISITOR}, max_msg_size=0) as ws:
        t0 = time.perf_counter()
        await ws.send_json({"type": "start", "image": image, "frame": {"width": 800, "height": 600}})
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                return time.perf_counter() - t0
            if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data)["type"] == "error":
                raise RuntimeError(f"the visitor's stream failed: {msg.data}")
        raise RuntimeError("the visitor's socket closed before its first frame")


async def _flood_socket(session: aiohttp.ClientSession, base: str, image: str, generative: int,
                        ready: asyncio.Barrier, answers: Counter, client: str) -> None:
    """Stream the generative stream to its end, then (once every socket is there) ask a region."""
    async with session.ws_connect(ws_url(base), headers={"X-Forwarded-For": client}, max_msg_size=0) as ws:
        await ws.send_json({"type": "start", "image": image, "generative_levels": generative,
                            "frame": {"width": 800, "height": 600}})
        meta: dict = {}
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data["type"] == "meta":
                meta = data
            elif data["type"] == "done":
                break
            elif data["type"] == "error":
                answers[f"error {data['code']}"] += 1
                await ready.wait()
                return
        await ready.wait()
        width, height = meta["width"], meta["height"]
        await ws.send_json({"type": "region", "x": 0, "y": 0, "width": min(width, 1920), "height": min(height, 1080)})
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data["type"] == "region" and data.get("exact", True):
                answers["region (exact)"] += 1
                return
            if data["type"] in ("region_busy", "error"):
                answers[data["type"] if data["type"] != "error" else f"error {data['code']}"] += 1
                return


async def flood_originals(base: str, image: str, connections: int, own_clients: bool = False) -> dict:
    """``--originals``: the visitor's first frame while ``original.png`` is asked for on every connection."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
        await _first_frame(session, base, image)  # encodes and caches the default stream
        baseline = await _first_frame(session, base, image)
        stop, served = asyncio.Event(), Counter()

        async def ask(client: str) -> None:
            while not stop.is_set():
                async with session.get(f"{base}/api/images/{image}/original.png",
                                       headers={"X-Forwarded-For": client}) as response:
                    await response.read()
                    served[response.status] += 1

        flooders = [asyncio.create_task(ask(f"203.0.113.{10 + i}" if own_clients else FLOODER))
                    for i in range(connections)]
        await asyncio.sleep(2)
        during = [round(await _first_frame(session, base, image), 3) for _ in range(3)]
        stop.set()
        await asyncio.gather(*flooders)
        return {"connections": connections, "clients": connections if own_clients else 1,
                "originals_sent": dict(served), "first_frame_s": round(baseline, 3),
                "first_frame_during_flood_s": during}


async def flood(base: str, image: str, sockets: int, generative: int, own_clients: bool = False) -> dict:
    """The figures of the module docstring, from the server at ``base``; ``own_clients``: each flooding
    socket from a client of its own (a distributed flood) instead of all from one."""
    timeout = aiohttp.ClientTimeout(total=3600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _first_frame(session, base, image)  # encodes and caches the default stream
        baseline = await _first_frame(session, base, image)
        answers: Counter = Counter()
        ready = asyncio.Barrier(sockets + 1)
        flooders = [asyncio.create_task(_flood_socket(session, base, image, generative, ready, answers,
                                                      f"203.0.113.{10 + i}" if own_clients else FLOODER))
                    for i in range(sockets)]
        await ready.wait()  # every flooder's stream is done: the regions are asked now
        t0 = time.perf_counter()
        await asyncio.sleep(0.5)
        during = await _first_frame(session, base, image)
        await asyncio.gather(*flooders)
        return {"sockets": sockets, "clients": sockets if own_clients else 1, "answers": dict(sorted(answers.items())),
                "first_frame_s": round(baseline, 3), "first_frame_during_flood_s": round(during, 3),
                "flood_answered_s": round(time.perf_counter() - t0, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m server.clients.regionflood", description=__doc__.split("\n\n")[0])
    p.add_argument("photo", type=Path, help="the image to view (a few megapixels makes each region seconds)")
    p.add_argument("--sockets", type=int, default=8, help="the flooder's websockets (default 8)")
    p.add_argument("--generative-levels", type=int, default=1, help="levels the flooder's stream predicts (default 1)")
    p.add_argument("--clients", action="store_true", help="each flooding socket from a client of its own")
    p.add_argument("--originals", action="store_true", help="flood original.png requests instead of regions")
    p.add_argument("--server-args", default="", help="more arguments for hidenet serve (quoted)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hidenet-regionflood-") as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        shutil.copy(args.photo, images / args.photo.name)
        extra = ["--images", str(images), "--forwarded-allow-ips", "127.0.0.1",
                 "--max-client-sockets", str(max(32, args.sockets)), "--max-client-streams", str(max(8, args.sockets)),
                 *args.server_args.split()]
        server = start_server(Path(tmp) / "data", extra=extra)
        try:
            image = image_id(load_image(args.photo).pixels)
            result = asyncio.run(flood_originals(server.url, image, args.sockets, args.clients) if args.originals
                                 else flood(server.url, image, args.sockets, args.generative_levels, args.clients))
        finally:
            stop_server(server)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
