"""``hidenet fetch``: stream an image from a running server over the websocket protocol.

Built on the ``websockets`` package: it saves each chunk's frame as it arrives
(``chunk-NN.png``, numbered from 01 in stream order: with quality layers a level comes
back in several chunks, each sharper; with ``--race`` each contender's repaints too,
``race-<contender>-N.png``),
writes ``timeline.json`` (every event of every racer, and the verdict) and prints the
timeline.

Each chunk's PSNR and SSIM are the server's, of the frame it sends, so which frame is the
question: by default the full-size image the viewer shows (the level with the levels not
yet received predicted, against the original), the one figure the viewer also prints;
``--no-preview`` asks for each level at its own size instead, measured against the
original on that level's grid (exact, so "exact", for every level of a lossless stream).
The table's heading names the one it shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from hidenet_core.cli import CliError
from hidenet_core.commands.options import int_range, level_arg, max_error_arg
from hidenet_core.tools.contenders import CONTENDERS, MAX_CONTENDERS, ContenderError, parse_spec

from ..storage.store import ID_RE
from ..streaming.links import PRESETS
from ..streaming.protocol import RACE_DEFAULT, STREAM_KINDS, WS_PATH

__all__ = ["fetch", "ws_url", "parse_race", "frame_name", "HELP", "QUALITY", "configure", "run"]

HELP = "stream an image from a running hideNet server, save each level and print the timeline"
MAX_FRAME = 512 * 1024 * 1024
#: preview or not -> what the PSNR and SSIM columns measure (the table's heading says it)
QUALITY = {
    True: "of the full-size frames, as the viewer shows them, against the original",
    False: "of each level at its own size, against the original on its grid (--no-preview)",
}


def ws_url(url: str) -> str:
    """``http://host:port`` (or ``ws://``) to the server's ``ws://host:port/ws``."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise CliError(f"server URL {url!r} is not http://HOST:PORT or ws://HOST:PORT")
    return urlunsplit((scheme, parts.netloc, WS_PATH, "", ""))


def _http_url(url: str, path: str) -> str:
    parts = urlsplit(ws_url(url))
    return urlunsplit(({"ws": "http", "wss": "https"}[parts.scheme], parts.netloc, path, "", ""))


def resolve_image(url: str, image: str) -> str:
    """An id as is; otherwise look the name up in the server's image list."""
    if ID_RE.match(image):
        return image
    try:
        with urllib.request.urlopen(_http_url(url, "/api/images"), timeout=10) as resp:
            images = json.load(resp)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CliError(f"cannot list the server's images to find {image!r}: {exc}") from None
    for entry in images:
        if entry.get("name") == image:
            return entry["id"]
    raise CliError(f"no image with id or name {image!r}; the server has {[e.get('name') for e in images]}")


def parse_link(text: str) -> str | dict:
    """A preset id, or ``KBPS/RTT_MS`` for a custom link."""
    if text in PRESETS:
        return text
    m = re.fullmatch(r"(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)", text)
    if m:
        return {"down_kbps": float(m[1]), "rtt_ms": float(m[2])}
    raise argparse.ArgumentTypeError(f"{text!r} is not a preset ({', '.join(PRESETS)}) or KBPS/RTT_MS")


def parse_race(text: str) -> list[str]:
    """``pjpeg``, ``pjpeg:75,png,webp``: the contenders to race, checked."""
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise argparse.ArgumentTypeError(f"no contender in {text!r}; use ids from: {', '.join(CONTENDERS)}")
    if len(ids) > MAX_CONTENDERS:
        raise argparse.ArgumentTypeError(f"at most {MAX_CONTENDERS} contenders, got {len(ids)}")
    try:
        return [parse_spec(i).key for i in ids]
    except ContenderError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: a contender key as the server names it ("pjpeg:90", "webp-lossless"): nothing a path could use
_SAFE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}(:[0-9]{1,3})?")


def frame_name(message: dict) -> str:
    """The file a frame is saved as: ``chunk-03.png`` (the stream's third chunk), ``race-pjpeg-q90-2.png``.
    Built from the server's fields, so checked: a name never leaves the output folder."""
    if message["type"] == "level":
        index = message.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 100_000:
            raise CliError(f"the server sent a level message with a bad index {index!r}")
        return f"chunk-{index + 1:02d}.png"
    contender, frame = message.get("contender"), message.get("frame")
    if (not isinstance(contender, str) or not _SAFE_NAME.fullmatch(contender) or not isinstance(frame, int)
            or isinstance(frame, bool) or not 0 <= frame < 100_000):
        raise CliError(f"the server sent a race frame with a bad name: {contender!r}, frame {frame!r}")
    return f"race-{contender.replace(':', '-q')}-{frame}.png"


#: each wait for a busy server is this much longer than the one before (as the web viewer's)
BUSY_BACKOFF = 1.5
#: the longest wait a server's ``retry_ms`` may ask for (s): a server is not trusted to stall the client
BUSY_WAIT_MAX_S = 60.0


async def fetch(url: str, image: str, *, link: str | dict = "unlimited", max_error: int = 0,
                generative_levels: int = 0, preview: bool = False, contenders: list[str] | None = None,
                stream: str = "layered", out: Path | None = None, on_event=None, busy_retries: int = 0,
                on_busy=None) -> dict:
    """Stream one image; return ``{"meta", "levels", "race", "progress", "done"}`` with arrival times.

    Each frame's PNG is written to ``out`` (if given) and kept in its message's ``"png"``;
    ``on_event`` hears every level, race and progress message. A ``start`` the server refuses as
    ``busy`` is sent again on the same socket after the ``retry_ms`` it says, at most
    ``busy_retries`` times, each wait ``BUSY_BACKOFF`` times the last; ``on_busy(message, seconds,
    attempt)`` hears each wait.
    """
    request = {"type": "start", "image": image, "link": link, "max_error": max_error,
               "generative_levels": generative_levels, "preview": preview, "contenders": contenders or [],
               "stream": stream}
    result: dict = {"meta": None, "levels": [], "race": [], "progress": [], "done": None}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    try:
        async with connect(ws_url(url), max_size=MAX_FRAME, open_timeout=10) as ws:
            t0 = time.perf_counter()
            await ws.send(json.dumps(request))
            pending: dict | None = None
            busy_tries = 0
            async for message in ws:
                if isinstance(message, bytes):
                    if pending is None:
                        raise CliError("protocol error: a binary frame without its JSON message")
                    pending["png"] = message
                    if out is not None:
                        (out / frame_name(pending)).write_bytes(message)
                    (result["levels"] if pending["type"] == "level" else result["race"]).append(pending)
                    if on_event:
                        on_event(pending)
                    pending = None
                    continue
                msg = json.loads(message)
                msg["received_ms"] = round((time.perf_counter() - t0) * 1000, 3)
                kind = msg.get("type")
                busy = kind == "error" and msg.get("code") == "busy" and result["meta"] is None
                if busy and busy_tries < busy_retries:
                    asked = msg.get("retry_ms")
                    asked = asked if isinstance(asked, (int, float)) and asked >= 0 else 3000
                    wait = min(BUSY_WAIT_MAX_S, asked / 1000 * BUSY_BACKOFF ** busy_tries)
                    busy_tries += 1
                    if on_busy:
                        on_busy(msg.get("message"), wait, busy_tries)
                    await asyncio.sleep(wait)
                    t0 = time.perf_counter()
                    await ws.send(json.dumps(request))
                    continue
                if kind == "error":
                    raise CliError(f"server: {msg.get('message')}")
                if kind == "progress":
                    result["progress"].append(msg)
                    if on_event:
                        on_event(msg)
                elif kind == "meta":
                    result["meta"] = msg
                elif kind in ("level", "race"):
                    pending = msg
                elif kind == "done":
                    result["done"] = msg
                    break
    except InvalidStatus as exc:
        raise CliError(f"the server refused the websocket: HTTP {exc.response.status_code}") from None
    except WebSocketException as exc:
        raise CliError(f"websocket failed: {exc}") from None
    if result["done"] is None:
        raise CliError("the server closed the stream before it was done")
    return result


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="the server, e.g. http://127.0.0.1:8080")
    p.add_argument("image", metavar="IMAGE_ID", help="image id (or name) from GET /api/images")
    p.add_argument("--link", type=parse_link, default="unlimited", metavar="PRESET",
                   help=f"simulated link: one of {', '.join(PRESETS)}, or KBPS/RTT_MS (default unlimited)")
    p.add_argument("--max-error", type=max_error_arg, default=0, metavar="D", help="0 = lossless (default)")
    p.add_argument("--generative-levels", type=level_arg, default=0, metavar="G")
    p.add_argument("--preview", action=argparse.BooleanOptionalAction, default=True,
                   help="save and measure each level as the viewer shows it: full size, the levels not yet "
                        "received predicted (default); --no-preview: each level at its own size, measured "
                        "against the original on its grid")
    p.add_argument("--race", type=parse_race, nargs="?", const=[RACE_DEFAULT], default=[], metavar="ID[,ID...]",
                   help=f"race up to {MAX_CONTENDERS} contenders on the same link and save their frames: "
                        f"{', '.join(CONTENDERS)}, a quality after a colon (pjpeg:75); "
                        f"--race alone: {RACE_DEFAULT} (GET /api/contenders lists them)")
    p.add_argument("--stream", choices=STREAM_KINDS, default="layered",
                   help="layered: quality layers, a coarse picture of every level first (default); resolution: "
                        "one pass over the levels, smallest first")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="where to write the PNGs (default fetch-<id>)")
    p.add_argument("--retries", type=int_range(0, 20), default=5, metavar="N",
                   help="a start the server refuses as busy is asked again after the wait it says, up to N times, "
                        "each wait half again as long (default 5, as the web viewer; 0: fail at once)")


def _fmt(value: float | None, spec: str, none: str = "exact") -> str:
    return none if value is None else format(value, spec)


def run(args: argparse.Namespace) -> int:
    image = resolve_image(args.url, args.image)
    out = args.out or Path(f"fetch-{image[:12]}")
    print(f"{'chunk':>5} {'layer':>5} {'level':>5} {'size':>11} {'payload':>9} {'total':>9} {'arrival':>9} "
          f"{'recv':>9} {'decode':>8} {'PSNR':>7} {'SSIM':>7}  {QUALITY[args.preview]}")

    def busy(message: str, seconds: float, attempt: int) -> None:
        print(f"server: {message}; trying again in {seconds:.1f} s ({attempt} of {args.retries})", file=sys.stderr,
              flush=True)

    def show(ev: dict) -> None:
        if ev["type"] == "progress":
            print(f"server: {ev['message']} ({ev['elapsed_ms'] / 1000:.1f} s)", file=sys.stderr, flush=True)
        elif ev["type"] == "level":
            print(f"{ev['index'] + 1:>5} {ev['layer'] + 1:>5} {ev['level']:>5} {ev['width']:>5}x{ev['height']:<5} "
                  f"{ev['payload_bytes']:>9} "
                  f"{ev['total_bytes']:>9} "
                  f"{ev['arrival_ms']:>7.0f}ms {ev['received_ms']:>7.0f}ms {ev['decode_ms']:>6.1f}ms "
                  f"{_fmt(ev['psnr'], '7.2f'):>7} {ev['ssim']:>7.4f}", flush=True)
        else:
            racer = f"{ev['contender']} {ev['frame']}/{ev['frames']}"
            print(f"{racer:>29} {ev['bytes']:>9} {ev['arrival_ms']:>7.0f}ms "
                  f"{ev['received_ms']:>7.0f}ms {'':>8} {_fmt(ev['psnr'], '7.2f'):>7} {ev['ssim']:>7.4f}", flush=True)

    result = asyncio.run(fetch(args.url, image, link=args.link, max_error=args.max_error,
                               generative_levels=args.generative_levels, preview=args.preview,
                               contenders=args.race, stream=args.stream, out=out, on_event=show,
                               busy_retries=args.retries, on_busy=busy))
    done = result["done"]
    (out / "timeline.json").write_text(json.dumps(timeline_json(result), indent=2))
    print(f"done: {done['chunks']} chunks, {done['total_bytes']} stream bytes (arrival {done['arrival_ms']:.0f} ms "
          f"on {result['meta']['link']['name']}), {done['frame_bytes']} frame bytes; PNGs in {out}/", file=sys.stderr)
    if args.race:
        print(f"verdict: {done['verdict']['sentence']}", file=sys.stderr)
        if not done["verdict"].get("comparable", True):
            print("note: without --preview hideNet's PSNR is of each level at its own size, not of the full-size "
                  "picture like the contenders': add --preview for a fair verdict", file=sys.stderr)
    return 0


def timeline_json(result: dict) -> dict:
    """What ``timeline.json`` holds: meta and done, every event without its PNG, each racer's own
    events (hideNet's levels and each contender's repaints) and the verdict."""
    def strip(events: list[dict]) -> list[dict]:
        return [{k: v for k, v in e.items() if k != "png"} for e in events]

    done = result["done"]
    racers = {"hidenet": {"label": "hideNet", "events": strip(result["levels"])}}
    for c in result["meta"].get("contenders", []):
        racers[c["key"]] = {"label": c["label"], "events": strip([e for e in result["race"]
                                                                   if e["contender"] == c["key"]])}
    return {"meta": result["meta"], "done": done, "progress": result["progress"], "levels": strip(result["levels"]),
            "race": strip(result["race"]), "racers": racers, "verdict": done.get("verdict")}
