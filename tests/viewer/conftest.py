"""Browser tests: a real ``hidenet serve`` process and Debian's headless Chromium.

The server runs once per session with the bundled samples and the fast ``interp``
model; a small synthetic photograph is uploaded through the API so streams are quick.
Nothing here downloads a browser: Chromium comes from HIDENET_CHROMIUM
(default /usr/bin/chromium), and the tests are skipped when it is missing (they fail under CI=true).
"""

from __future__ import annotations

import io
import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from server.clients.process import start_server, stop_server

CHROMIUM = os.environ.get("HIDENET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_TIMEOUT_S = 120
VIEWPORT = {"width": 1440, "height": 960}


@dataclass(frozen=True)
class Server:
    url: str
    log: Path

    def get_json(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.load(response)

    def get_bytes(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            return response.read()


@dataclass(frozen=True)
class UploadedImage:
    id: str
    name: str
    width: int
    height: int
    pixels: np.ndarray  # (H, W, 3) uint8, what was uploaded


def photo_like(height: int, width: int, seed: int) -> np.ndarray:
    """A small RGB image with smooth shapes, edges and noise, so every level looks different."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    for c in range(3):
        img[:, :, c] = 120 + 70 * np.sin(xx / (9 + 4 * c) + seed) * np.cos(yy / (13 - 3 * c))
    disc = (xx - width * 0.6) ** 2 + (yy - height * 0.45) ** 2 < (min(height, width) * 0.25) ** 2
    img[disc] = [230, 80, 40]
    img += rng.normal(0, 5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def post_image(url: str, name: str, data: bytes) -> dict:
    """POST one file as multipart field "file" (urllib, so no extra client library)."""
    boundary = uuid.uuid4().hex
    body = b"".join([
        f"--{boundary}\r\n".encode(),
        f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'.encode(),
        b"Content-Type: image/png\r\n\r\n",
        data,
        f"\r\n--{boundary}--\r\n".encode(),
    ])
    request = urllib.request.Request(
        url + "/api/images", data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 201, response.status
        return json.load(response)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    """``hidenet serve`` on a free loopback port, with the bundled samples and the interp model."""
    root = tmp_path_factory.mktemp("hidenet-server")
    try:
        process = start_server(root / "data", "interp", timeout_s=STARTUP_TIMEOUT_S)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield Server(process.url, process.log_path)
    finally:
        stop_server(process)


@pytest.fixture(scope="session")
def small_image(server: Server) -> UploadedImage:
    """A 256 x 192 photograph-like image (3 levels above a 32 x 24 base), uploaded once."""
    pixels = photo_like(192, 256, seed=7)
    info = post_image(server.url, "synthetic.png", png(pixels))
    return UploadedImage(info["id"], info["name"], info["width"], info["height"], pixels)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):  # in CI a missing browser is a failure, never a silent skip
            pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium")
        pytest.skip(f"no Chromium at {CHROMIUM} (set HIDENET_CHROMIUM; `make chromium` installs Debian's)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class ConsoleLog:
    """Console errors and uncaught exceptions of one page."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[str] = []

    def allow(self, fragment: str) -> None:
        """Tolerate errors containing ``fragment`` (the browser logs every 4xx it receives)."""
        self.allowed.append(fragment)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def page(browser, console: ConsoleLog):
    """A fresh page; the test fails if the page logged any console error or threw."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on("console", lambda m: console.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: console.errors.append(f"pageerror: {e}"))
    try:
        yield page
    finally:
        context.close()
    assert console.unexpected() == [], "errors in the browser console"
