"""First view of a photograph the server has never seen: how soon each chunk is shown.

``python -m server.clients.firstview PHOTO [--link 3g] [--frame 1280x800]`` starts a real
``hidenet serve`` on a free loopback port with PHOTO as its only image (nothing cached),
opens the viewer's websocket, asks for the lossless stream at a display's frame size, and
measures, from the ``start`` message:

* when ``meta`` came and when the first level's frame came;
* for each chunk, when its frame came against when it was *due*: its link arrival time
  or the moment its chunk was encoded, whichever is later (both on the stream's clock,
  from ``meta``); the lateness is the server's decoding and rendering; a chunk whose frame
  the server skipped to keep up (a ``chunk`` message) is shown by the later chunk's frame
  that stands in for it, and counts as shown when that frame came;
* with ``--region``, the exact pixels of a 1:1 view (the viewer's stage size) of the final
  picture, checked against the photograph: when the first answer came (predicted, if the
  server had not decoded level 0 yet) and when the exact one came;
* with ``--follow`` too, the viewer at 1:1 all along: after each frame the same region is
  asked for again (one request at a time, as the viewer's 1:1 view does), and each exact
  answer is timed from its request;
* with ``--race KEYS`` (``pjpeg``, ``png,webp``, ...), the viewer's race: how long the
  server took to prepare the contenders before the race's clock started (``prepared_ms``),
  and for each contender's repaint when it came against its link arrival time, its frame's
  bytes and its PSNR (measured at full size whatever the frame size);
* the server's peak memory (``/api/stats``: ``peak_rss_bytes``), over the whole run.

With ``--upload`` the server starts with no image: PHOTO is uploaded (``POST /api/images``,
which starts its encode in the background), and the viewer opens as soon as the upload is
answered, joining that encode: the gallery's path for a new photograph.

It prints a table and, with ``--json FILE``, writes every figure. Issue 14's "first view"
and "memory" targets are read from it (README, "Real photo sizes").
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import numpy as np
from PIL import Image

from hidenet_core import load_image

from ..storage.store import image_id
from .fetch import ws_url
from .process import start_server, stop_server

__all__ = ["first_view", "main"]


async def _peak_rss(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(f"{base}/api/stats") as r:
        return int((await r.json())["peak_rss_bytes"])


def _centred(region: tuple[int, int], width: int, height: int) -> dict:
    w, h = min(region[0], width), min(region[1], height)
    return {"x": (width - w) // 2, "y": (height - h) // 2, "width": w, "height": h}


async def first_view(base: str, image: str, link: str, frame: tuple[int, int] | None,
                     region: tuple[int, int] | None = None, original: np.ndarray | None = None,
                     follow: bool = False, race: Sequence[str] = (), max_error: int = 0) -> dict:
    """Stream ``image`` once from the server at ``base``; every figure of the module docstring.
    ``follow``: at 1:1 all along, as the viewer's 1:1 view is: after each frame, ask for the
    ``region`` again (one request at a time), and time the answers. ``race``: contenders to race;
    ``max_error``: a near-lossless stream (its region is then checked to be within it)."""
    out: dict = {"chunks": [], "follow": [], "race": []}
    asked: float | None = None  # when the region request now outstanding was sent (follow)
    region_png = False  # the next binary message is a region's PNG
    repaint: dict | None = None  # the next binary message is this contender repaint's frame
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(base), max_msg_size=0) as ws:
        t0 = time.perf_counter()
        await ws.send_json({"type": "start", "image": image, "link": link, "preview": True, "max_error": max_error,
                            "frame": "full" if frame is None else {"width": frame[0], "height": frame[1]},
                            "contenders": list(race)})
        t_meta, pending = None, None
        superseded: list[dict] = []  # chunks without a frame of their own, until the frame that shows them
        fields = ("index", "layer", "level", "total_bytes", "arrival_ms", "encoded_ms")
        while True:
            msg = await ws.receive(timeout=3600)
            now = (time.perf_counter() - t0) * 1000
            if msg.type == aiohttp.WSMsgType.BINARY and region_png:
                region_png = False
                continue
            if msg.type == aiohttp.WSMsgType.BINARY and repaint is not None:
                received = now - t_meta
                out["race"].append({k: repaint[k] for k in ("contender", "frame", "bytes", "arrival_ms", "psnr")}
                                   | {"received_ms": round(received, 1),
                                      "late_ms": round(received - repaint["arrival_ms"], 1),
                                      "frame_bytes": len(msg.data), "frame_width": repaint["frame_width"]})
                repaint = None
                continue
            if msg.type == aiohttp.WSMsgType.BINARY:
                if follow and region is not None and asked is None:
                    await ws.send_json({"type": "region", **_centred(region, out["width"], out["height"])})
                    asked = now
                received = now - t_meta
                shown = [m for m in superseded if m["superseded_by"] == pending["index"]]
                superseded = [m for m in superseded if m["superseded_by"] != pending["index"]]
                for m in [*shown, pending]:
                    due = max(m["arrival_ms"], m["encoded_ms"])
                    row = {k: m[k] for k in fields} | {"received_ms": round(received, 1),
                                                       "late_ms": round(received - due, 1)}
                    if m is pending:
                        row |= {k: m[k] for k in ("frame_width", "frame_height", "psnr")}
                        row["frame_bytes"] = len(msg.data)
                    else:
                        row["superseded_by"] = m["superseded_by"]
                    out["chunks"].append(row)
                if out.get("first_level_ms") is None:
                    out["first_level_ms"] = round(now, 1)
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"the server closed the socket: {msg.type.name} {msg.data!r}")
            data = json.loads(msg.data)
            if data["type"] == "meta":
                t_meta = now
                out["meta_ms"] = round(now, 1)
                out["prepared_ms"] = data["prepared_ms"]
                out["encoding"] = data["encoding"]
                out["width"], out["height"] = data["width"], data["height"]
            elif data["type"] == "level":
                pending = data
            elif data["type"] == "race":
                repaint = data
            elif data["type"] == "chunk":
                superseded.append(data)
            elif data["type"] == "region":
                region_png = True
                if data["exact"]:
                    out["follow"].append({"asked_ms": round(asked - t_meta, 1), "ms": round(now - asked, 1)})
                    asked = None
            elif data["type"] == "error":
                raise RuntimeError(f"the server refused: {data['message']}")
            elif data["type"] == "done":
                out["done_ms"] = round(now, 1)
                out["total_bytes"] = data["total_bytes"]
                break
        while asked is not None:  # the last request of the follow
            msg = await ws.receive(timeout=3600)
            if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data).get("exact"):
                now = (time.perf_counter() - t0) * 1000
                out["follow"].append({"asked_ms": round(asked - t_meta, 1), "ms": round(now - asked, 1)})
                asked = None
                await ws.receive_bytes(timeout=600)
        if region is not None:
            rect = _centred(region, out["width"], out["height"])
            x, y, w, h = rect["x"], rect["y"], rect["width"], rect["height"]
            t1 = time.perf_counter()
            await ws.send_json({"type": "region", "x": x, "y": y, "width": w, "height": h})
            answer = await ws.receive_json(timeout=600)
            png = await ws.receive_bytes(timeout=600)
            first_ms = round((time.perf_counter() - t1) * 1000, 1)
            answers = 1
            if answer.get("exact") is False:  # the predicted answer first: the exact one follows
                answer = await ws.receive_json(timeout=600)
                png = await ws.receive_bytes(timeout=600)
                answers = 2
            out["region"] = {"x": x, "y": y, "width": w, "height": h, "first_ms": first_ms, "answers": answers,
                             "ms": round((time.perf_counter() - t1) * 1000, 1), "frame_bytes": len(png)}
            if original is not None:
                pixels = np.asarray(Image.open(io.BytesIO(png)))
                pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
                expected = original[y : y + h, x : x + w].astype(int)
                out["region"]["exact"] = bool(answer["width"] == w and pixels.shape == expected.shape and (
                    np.abs(pixels.astype(int) - expected).max() <= max_error))
        out["peak_rss_bytes"] = await _peak_rss(session, base)
    late = [c["late_ms"] for c in out["chunks"]]
    out["late_ms_max"] = max(late) if late else None
    return out


async def upload_then_view(base: str, photo: Path, *args, **kwargs) -> dict:
    """Upload ``photo`` to the server at ``base``, then ``first_view`` it; with ``upload_ms``,
    the upload's round trip (its body sent, decoded, stored and its encode started)."""
    form = aiohttp.FormData()
    form.add_field("file", photo.read_bytes(), filename=photo.name, content_type="application/octet-stream")
    t0 = time.perf_counter()
    async with aiohttp.ClientSession() as session, session.post(f"{base}/api/images", data=form) as response:
        answer = await response.json()
        if response.status not in (200, 201):
            raise RuntimeError(f"the upload was refused ({response.status}): {answer.get('error', answer)}")
    upload_ms = round((time.perf_counter() - t0) * 1000, 1)
    return await first_view(base, answer["id"], *args, **kwargs) | {"upload_ms": upload_ms}


def _size(text: str) -> tuple[int, int] | None:
    if text == "full":
        return None
    w, _, h = text.partition("x")
    return int(w), int(h)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m server.clients.firstview", description=__doc__.split("\n\n")[0])
    p.add_argument("photo", type=Path, help="an image file the server has never seen")
    p.add_argument("--link", default="3g", help="link preset (default 3g)")
    p.add_argument("--frame", default="1280x800",
                   help="frame size WxH the viewer asks for, or 'full' (default 1280x800)")
    p.add_argument("--region", default=None, metavar="WxH",
                   help="then ask for the exact pixels of a centred WxH region (the 1:1 view) and check them")
    p.add_argument("--follow", action="store_true",
                   help="with --region: at 1:1 all along, as the viewer's 1:1 view is (a region asked after each "
                        "frame, one at a time), and time the answers")
    p.add_argument("--upload", action="store_true",
                   help="start the server with no image and upload PHOTO first (its encode starts in the "
                        "background; the viewer joins it)")
    p.add_argument("--race", default="", metavar="KEYS",
                   help="race these contenders (comma-separated: pjpeg, png, webp:80, ...), as the viewer does")
    p.add_argument("--max-error", type=int, default=0, metavar="D",
                   help="stream near-losslessly with this max error (default 0: lossless); the region is then "
                        "checked to be within it")
    p.add_argument("--model", default="default", help="server model (default: the shipped weights)")
    p.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = p.parse_args(argv)
    original = load_image(args.photo).pixels
    with tempfile.TemporaryDirectory(prefix="hidenet-firstview-") as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        if not args.upload:
            shutil.copy(args.photo, images / args.photo.name)
        server = start_server(Path(tmp) / "data", args.model, extra=["--images", str(images)], timeout_s=600)
        view = (args.link, _size(args.frame), _size(args.region) if args.region else None, original, args.follow,
                [k for k in args.race.split(",") if k], args.max_error)
        try:
            if args.upload:
                result = asyncio.run(upload_then_view(server.url, args.photo, *view))
            else:
                result = asyncio.run(first_view(server.url, image_id(original), *view))
        finally:
            stop_server(server)
    h, w = original.shape[:2]
    result |= {"photo": args.photo.name, "megapixels": round(w * h / 1e6, 2), "link": args.link, "frame": args.frame}
    print(f"{args.photo.name}: {w}x{h} ({result['megapixels']} MP), link {args.link}, frames {args.frame}, "
          f"encoded as sent: {result['encoding']}")
    if "upload_ms" in result:
        print(f"uploaded in {result['upload_ms'] / 1000:.1f} s (stored, its encode started), then viewed:")
    print(f"meta {result['meta_ms']:.0f} ms (prepared in {result['prepared_ms']:.0f} ms), first level shown "
          f"{result['first_level_ms']:.0f} ms after start; done {result['done_ms'] / 1000:.1f} s; "
          f"{result['total_bytes']} bytes")
    print(f"{'chunk':>5} {'layer':>5} {'level':>5} {'encoded':>9} {'arrival':>9} {'shown':>9} {'late':>8} "
          f"{'frame':>10}")
    for c in result["chunks"]:
        frame = f"in #{c['superseded_by'] + 1}" if "superseded_by" in c else c["frame_bytes"]
        print(f"{c['index'] + 1:>5} {c['layer'] + 1:>5} {c['level']:>5} {c['encoded_ms']:>7.0f}ms "
              f"{c['arrival_ms']:>7.0f}ms {c['received_ms']:>7.0f}ms {c['late_ms']:>6.0f}ms {frame:>10}")
    superseded = sum("superseded_by" in c for c in result["chunks"])
    print(f"latest picture after its chunk was due (arrived and encoded): {result['late_ms_max']:.0f} ms; "
          f"{superseded} of {len(result['chunks'])} chunks shown by a later chunk's frame")
    if result["race"]:
        print(f"{'racer':>10} {'repaint':>7} {'bytes':>9} {'arrival':>9} {'shown':>9} {'late':>8} {'frame':>10} "
              f"{'PSNR':>6}")
        for r in result["race"]:
            db = "exact" if r["psnr"] is None else f"{r['psnr']:.2f}"
            print(f"{r['contender']:>10} {r['frame']:>7} {r['bytes']:>9} {r['arrival_ms']:>7.0f}ms "
                  f"{r['received_ms']:>7.0f}ms {r['late_ms']:>6.0f}ms {r['frame_bytes']:>10} {db:>6}")
    if "region" in result:
        r = result["region"]
        print(f"1:1 region {r['width']}x{r['height']}: first shown after {r['first_ms']:.0f} ms, exact after "
              f"{r['ms']:.0f} ms, {r['frame_bytes']} bytes, "
              f"{'exact' if not args.max_error else f'within max error {args.max_error}'}: {r.get('exact')}")
    if result["follow"]:
        times = sorted(f["ms"] for f in result["follow"])
        print(f"at 1:1 along the stream: {len(times)} regions, answered after {times[len(times) // 2]:.0f} ms "
              f"(median), {times[-1]:.0f} ms at most")
    print(f"server peak memory: {result['peak_rss_bytes'] / 2**30:.2f} GiB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
