"""Take the viewer screenshots in docs/: the gallery, a stream over 3G, and a race of three contenders.

    .venv/bin/python docs/screenshots.py            # writes docs/screenshot-*.png

Starts ``hidenet serve`` (bundled samples, the default model unless --model says otherwise)
on a free loopback port with a temporary data directory, and drives Debian's headless
Chromium (HIDENET_CHROMIUM, default /usr/bin/chromium) with Playwright. The PNGs are
reduced to a 256-colour palette so each stays well under 300 KB.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from server.clients.process import start_server, stop_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("HIDENET_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1440, "height": 900}
IMAGE = "astronaut"
#: the README's race: hideNet against three formats people meet on the web
RACE = "pjpeg,png,webp"


def save_small(png: bytes, path: Path, width: int = 1280) -> None:
    """Scale to `width` and store as a 256-colour PNG."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    palette = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)
    print(f"{path}: {image.width}x{image.height}, {path.stat().st_size // 1024} KB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where to write the PNGs (default docs/)")
    parser.add_argument("--model", default="default", help="predictor for the server (default: the shipped model)")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_server(Path(data_dir), args.model)
        url = server.url
        try:
            with urllib.request.urlopen(url + "/api/images", timeout=10) as r:
                image_id = next(i["id"] for i in json.load(r) if i["name"] == IMAGE)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
                page.on("pageerror", lambda e: sys.exit(f"screenshots: page error {e}"))

                page.goto(url + "/")
                page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
                save_small(page.screenshot(), args.out / "screenshot-gallery.png")

                # Warm the caches so the shots show the link, not the first encode.
                page.goto(f"{url}/view/{image_id}?link=unlimited&race={RACE}")
                page.wait_for_function("() => document.querySelector('#viewer').dataset.streamState === 'done'",
                                       timeout=120_000)

                # Over 3G, caught after the second-finest level arrived, before the last.
                page.goto(f"{url}/view/{image_id}?link=3g&mode=lossless&preview=1")
                page.wait_for_selector("#timeline-body tr[data-level='1'][data-state=arrived]", timeout=60_000)
                page.wait_for_timeout(400)
                save_small(page.screenshot(), args.out / "screenshot-3g.png")

                # The race on the same link, once every racer is complete.
                page.goto(f"{url}/view/{image_id}?link=3g&race={RACE}")
                page.wait_for_function("() => document.querySelector('#viewer').dataset.streamState === 'done'",
                                       timeout=60_000)
                page.wait_for_timeout(600)
                save_small(page.screenshot(), args.out / "screenshot-race.png")
                browser.close()
        finally:
            stop_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
