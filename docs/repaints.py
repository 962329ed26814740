"""What does a browser paint while an image is still arriving? Measure it in Chromium.

    .venv/bin/python docs/repaints.py [--image astronaut] [--seconds 6]

Serves one image in each of the race's formats from a local aiohttp server that sends
its bytes evenly over ``--seconds``, loads each in Debian's headless Chromium
(HIDENET_CHROMIUM, default /usr/bin/chromium) on a magenta page, and screenshots it
every 0.1 s. For each moment it prints how much of the file had been sent, how many rows
showed something other than the page behind the image, and the mean error against
the original: enough to see whether a format is drawn top-down, pass by pass, or only
once complete, and how often the browser repaints. docs/viewer.md quotes what it shows.
The encoders are the race's (``hidenet_core/tools/contenders``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
from aiohttp import web
from PIL import Image
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from hidenet_core import load_image, sample_paths  # noqa: E402
from hidenet_core.tools.contenders import parse_spec  # noqa: E402

CHROMIUM = os.environ.get("HIDENET_CHROMIUM", "/usr/bin/chromium")
FORMATS = {"pjpeg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp-lossless": "image/webp",
           "webp": "image/webp"}  # JPEG 2000 is left out: no browser shows it
PIECES = 120


def serve(files: dict[str, tuple[bytes, str]], seconds: float) -> tuple[str, asyncio.AbstractEventLoop]:
    async def page(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        w, h = request.query["w"], request.query["h"]
        html = (f'<html><body style="margin:0;background:#f0f"><img src="/img/{name}?t={time.time()}" '
                f'width="{w}" height="{h}"></body></html>')
        return web.Response(text=html, content_type="text/html")

    async def image(request: web.Request) -> web.StreamResponse:
        data, ctype = files[request.match_info["name"]]
        resp = web.StreamResponse(headers={"Content-Type": ctype, "Content-Length": str(len(data)),
                                           "Cache-Control": "no-store"})
        await resp.prepare(request)
        for i in range(PIECES):
            await resp.write(data[i * len(data) // PIECES : (i + 1) * len(data) // PIECES])
            await asyncio.sleep(seconds / PIECES)
        await resp.write_eof()
        return resp

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    where: list[str] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_get("/page/{name}", page)
        app.router.add_get("/img/{name}", image)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        where.append(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}")  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return where[0], loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="astronaut", help="a bundled sample (default astronaut)")
    parser.add_argument("--seconds", type=float, default=6.0, help="how long each file takes to arrive (default 6)")
    args = parser.parse_args(argv)
    pixels = load_image(next(p for p in sample_paths() if p.stem == args.image)).pixels[:, :, :3]
    h, w = pixels.shape[:2]
    files = {}
    for key, ctype in FORMATS.items():
        spec = parse_spec(key)
        files[key] = (spec.contender.encode(pixels, spec.quality), ctype)
    url, _ = serve(files, args.seconds)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True)
        for key in FORMATS:
            page = browser.new_page(viewport={"width": w, "height": h})
            page.goto(f"{url}/page/{key}?w={w}&h={h}", wait_until="commit")
            t0, seen = time.monotonic(), []
            while time.monotonic() - t0 < args.seconds + 1:
                shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(int)
                page_behind = (shot[:, :, 0] > 240) & (shot[:, :, 1] < 15) & (shot[:, :, 2] > 240)
                rows = int((~page_behind).any(axis=1).sum())
                sent = min(1.0, (time.monotonic() - t0) / args.seconds)
                seen.append(f"{sent:4.0%} sent: {rows:4d} rows, error {np.abs(shot - pixels).mean():5.1f}")
                time.sleep(0.1)
            changes = [s for i, s in enumerate(seen) if i == 0 or s.split(": ")[1] != seen[i - 1].split(": ")[1]]
            print(f"{key} ({len(files[key][0])} bytes): " + "; ".join(changes))
            page.close()
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
