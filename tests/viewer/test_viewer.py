"""The viewer page in a real Chromium against a real server: progressive painting,
pixel-exact lossless display at 1:1, the race, and the state kept in the URL."""

from __future__ import annotations

import base64
import io
import json
import re
import time
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from PIL import Image
from websockets.sync import client as ws_client

from tests.viewer.conftest import UploadedImage, photo_like, png, post_image

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# A digest of what the hideNet stage shows: a sparse sum over the image's pixels.
CANVAS_DIGEST = """() => {
    const canvas = document.querySelector("#stage-hidenet canvas");
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let h = 0;
    for (let i = 0; i < data.length; i += 53) h = (h * 31 + data[i]) % 2147483647;
    return h;
}"""

OBSERVE = """() => ({
    arrived: [...document.querySelectorAll("#timeline-body tr:is([data-state=arrived], [data-state=superseded])")]
        .map(tr => Number(tr.dataset.index)),
    rows: [...document.querySelectorAll("#timeline-body tr")]
        .map(tr => [Number(tr.dataset.index), Number(tr.dataset.layer), Number(tr.dataset.level)]),
    frames: Number(document.querySelector("#stage-hidenet canvas").dataset.frames || 0),
    settled: document.querySelector("#stage-hidenet canvas").dataset.settled,
    state: document.querySelector("#viewer").dataset.streamState,
})"""


def wait_done(page, timeout_s: float = 60) -> None:
    page.wait_for_function(
        "() => ['done', 'error'].includes(document.querySelector('#viewer').dataset.streamState)",
        timeout=timeout_s * 1000,
    )
    state = page.locator("#viewer").get_attribute("data-stream-state")
    assert state == "done", page.locator("#stream-error").text_content()


def wait_no_encode(server, timeout_s: float = 30) -> None:
    """Wait until the server encodes nothing: a stream an earlier test left when its page closed is
    cancelled, but its encode counts toward this client's cap of one until its job has ended."""
    deadline = time.monotonic() + timeout_s
    while server.get_json("/api/stats")["encoding"] and time.monotonic() < deadline:
        time.sleep(0.05)


def wait_settled(page, stage: str = "hidenet") -> None:
    """Wait until the stage's last crossfade has finished."""
    page.wait_for_function(
        f"() => {{ const c = document.querySelector('#stage-{stage} canvas');"
        " return Number(c.dataset.frames) > 0 && c.dataset.settled === c.dataset.frames; }"
    )


def stage_pixels(page, stage: str, width: int, height: int) -> np.ndarray:
    """The image's rectangle of a stage canvas at 1:1, read with getImageData: (H, W, 4) uint8."""
    b64 = page.evaluate(
        """([stage, w, h]) => {
            const canvas = document.querySelector(`#stage-${stage} canvas`);
            if (canvas.dataset.scale !== "1") throw new Error(`not at 1:1: scale ${canvas.dataset.scale}`);
            const x = Number(canvas.dataset.x), y = Number(canvas.dataset.y);
            const data = canvas.getContext("2d").getImageData(x, y, w, h).data;
            let s = "";
            for (let i = 0; i < data.length; i += 0x8000) s += String.fromCharCode(...data.subarray(i, i + 0x8000));
            return btoa(s);
        }""",
        [stage, width, height],
    )
    return np.frombuffer(base64.b64decode(b64), np.uint8).reshape(height, width, 4)


def viewer_url(server, image, **query) -> str:
    return f"{server.url}/view/{image.id}?" + "&".join(f"{k}={v}" for k, v in query.items())


def test_a_slow_link_paints_the_base_first_then_each_chunk_in_order(server, small_image, page):
    total = len(server.get_bytes(f"/api/images/{small_image.id}/stream.hdn"))
    down_kbps = max(1, round(total * 8 / 6000))  # the whole stream takes about 6 s
    page.goto(viewer_url(server, small_image, link="custom", down_kbps=down_kbps, rtt_ms=200, mode="lossless",
                         preview=0))
    observations = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = page.evaluate(OBSERVE)
        seen["digest"] = page.evaluate(CANVAS_DIGEST)
        observations.append(seen)
        if seen["state"] in ("done", "error"):
            break
        time.sleep(0.03)
    final = observations[-1]
    assert final["state"] == "done"
    rows = final["rows"]  # [index, layer, level]: one row per chunk, in stream order
    indices = [r[0] for r in rows]
    base = rows[0][2]
    assert indices == list(range(len(rows))) and base >= 3 and rows[-1][2] == 0, rows
    layers = sorted({r[1] for r in rows})
    assert len(layers) >= 2  # quality layers: each goes down the pyramid, base first
    for layer in layers:
        levels = [r[2] for r in rows if r[1] == layer]
        assert levels == sorted(levels, reverse=True), (layer, levels)
    assert final["arrived"] == indices
    # At every moment, what had arrived was a prefix of the stream: chunks come in order.
    for seen in observations:
        assert seen["arrived"] == indices[: len(seen["arrived"])], seen
    # Partial pictures were shown on the way (each settled after its crossfade), and they differ from the final one.
    partial = [s for s in observations if 1 <= s["frames"] < len(rows) and s["settled"] == str(s["frames"])]
    assert partial, "no partial picture was ever shown on its own"
    wait_settled(page)
    final_digest = page.evaluate(CANVAS_DIGEST)
    assert partial[0]["digest"] != final_digest
    assert len({s["digest"] for s in partial}) >= 3
    # The timeline is complete (a chunk whose frame the server skipped, had it fallen behind, is
    # "superseded": a later chunk's frame shows it), and the totals are filled in.
    superseded = page.locator("#timeline-body tr[data-state=superseded]").count()
    assert int(page.locator("#stage-hidenet canvas").get_attribute("data-frames")) == len(rows) - superseded
    assert page.locator("#timeline-body tr[data-state=arrived]").count() == len(rows) - superseded
    hidenet = page.locator("#verdict-body tr[data-racer=hidenet]")
    assert hidenet.locator(".col-first").text_content() != "–"
    assert hidenet.locator(".col-final").text_content().endswith("exact")
    last = page.locator("#timeline-body tr").last
    assert last.locator(".col-psnr").text_content() == "∞ (exact)"
    assert last.locator(".col-error").text_content() == "exact"


@pytest.mark.parametrize("preview", [0, 1])
def test_lossless_at_1to1_shows_the_original_pixels(server, small_image, page, preview):
    page.goto(viewer_url(server, small_image, link="unlimited", mode="lossless", preview=preview, view="1to1"))
    wait_done(page)
    wait_settled(page)
    shown = stage_pixels(page, "hidenet", small_image.width, small_image.height)
    stored = server.get_bytes(f"/api/images/{small_image.id}/original.png")
    original = np.asarray(Image.open(io.BytesIO(stored)).convert("RGB"))
    assert np.array_equal(original, small_image.pixels)
    assert (shown[:, :, 3] == 255).all()
    assert np.array_equal(shown[:, :, :3], original)
    errors = page.locator("#timeline-body tr .col-error").all_text_contents()
    # the full-size previews of the last layer estimate the levels it has not refined yet; never the last
    assert any(e.endswith("est.") for e in errors) == bool(preview) and errors[-1] == "exact", errors


VISIBLE_PIXELS = """() => {
    const canvas = document.querySelector("#stage-hidenet canvas");
    const x = Number(canvas.dataset.x), y = Number(canvas.dataset.y);
    const left = Math.max(0, x), top = Math.max(0, y);
    const data = canvas.getContext("2d").getImageData(left, top, canvas.width - left, canvas.height - top).data;
    let s = "";
    for (let i = 0; i < data.length; i += 0x8000) s += String.fromCharCode(...data.subarray(i, i + 0x8000));
    return { x, y, left, top, width: canvas.width - left, height: canvas.height - top, b64: btoa(s) };
}"""


def visible_pixels(page) -> tuple[np.ndarray, int, int]:
    """What hideNet's stage shows at 1:1 ((h, w, 4) uint8) and where in the image it starts (x, y)."""
    seen = page.evaluate(VISIBLE_PIXELS)
    shown = np.frombuffer(base64.b64decode(seen["b64"]), np.uint8).reshape(seen["height"], seen["width"], 4)
    return shown, seen["left"] - seen["x"], seen["top"] - seen["y"]


def test_a_chunk_without_a_frame_fills_its_row_and_a_later_frame_shows_it(server, small_image, page):
    """The server skips the frames of chunks that would be shown late (docs/protocol.md, `chunk`).
    The real server's stream of the image is recorded, chunks 2 and 3 rewritten as `chunk`
    messages without their frames (as a server behind its chunks sends them), chunk 1 as a
    first view's (its frame from the encoder's state), and replayed to the page in order."""
    skipped, by = {1, 2}, 3
    frame_fields = ("decode_ms", "shared", "psnr", "ssim", "psnr_level", "frame_bytes", "frame_width", "frame_height")
    recorded: list[str | bytes] = []
    with ws_client.connect(server.url.replace("http", "ws", 1) + "/ws", max_size=None) as ws:
        # full frames: the server itself skips none, however slow this machine is at the moment
        ws.send(json.dumps({"type": "start", "image": small_image.id, "link": "3g", "preview": True}))
        drop = False
        while True:
            message = ws.recv(timeout=60)
            if isinstance(message, bytes):
                if not drop:
                    recorded.append(message)
                drop = False
                continue
            data = json.loads(message)
            if data["type"] == "level" and data["index"] in skipped:
                data = {k: v for k, v in data.items() if k not in frame_fields} | {"type": "chunk", "superseded_by": by}
                drop = True
            elif data["type"] == "level" and data["index"] == 0:  # as a first view's frame is sent
                data = data | {"frame_from": "encoder", "decode_ms": 0}
            recorded.append(json.dumps(data))
            if data["type"] == "done":
                break

    def route(ws):  # the page's socket gets the recorded stream once it asks for it
        ws.on_message(lambda message: [ws.send(m) for m in recorded] if '"start"' in str(message) else None)

    page.route_web_socket(re.compile(r"/ws$"), route)
    page.goto(viewer_url(server, small_image, link="3g", mode="lossless"))
    wait_done(page)
    rows = page.locator("#timeline-body tr")
    assert page.locator("#timeline-body tr[data-index='0'] .col-decode").text_content() == "from encoder"
    assert page.locator(f"#timeline-body tr[data-index='{by}'] .col-decode").text_content().endswith("ms")
    for i in skipped:
        row = page.locator(f"#timeline-body tr[data-index='{i}']")
        assert row.get_attribute("data-state") == "superseded"
        assert row.locator(".col-psnr").text_content() == f"in #{by + 1}'s frame"
        assert row.locator(".col-received").text_content() not in ("", "·")
    arrived = page.locator("#timeline-body tr[data-state=arrived]").count()
    superseded = page.locator("#timeline-body tr[data-state=superseded]").count()  # and any the server skipped
    assert arrived + superseded == rows.count() and superseded >= len(skipped)
    assert int(page.locator("#stage-hidenet canvas").get_attribute("data-frames")) == arrived
    assert rows.last.locator(".col-psnr").text_content() == "∞ (exact)"


def test_a_large_image_comes_at_the_stage_size_and_1to1_shows_exact_regions(server, page):
    page.set_viewport_size({"width": 1000, "height": 800})
    pixels = photo_like(640, 1100, seed=11)  # wider than the stage: frames come shrunk to it
    info = post_image(server.url, "large.png", png(pixels))
    page.goto(viewer_url(server, UploadedImage(info["id"], "large", 1100, 640, pixels), link="unlimited",
                         mode="lossless", view="1to1"))
    wait_done(page, 300)
    canvas = page.locator("#stage-hidenet canvas")
    assert int(canvas.get_attribute("data-frame-width")) <= int(canvas.evaluate("c => c.width")) < 1100
    page.wait_for_function("() => document.querySelector('#stage-hidenet canvas').dataset.region === 'current'")
    shown, x, y = visible_pixels(page)
    h, w = shown.shape[:2]
    assert np.array_equal(shown[:, :, :3], pixels[y : y + h, x : x + w])  # the exact pixels, not the shrunk frame
    canvas.focus()
    page.keyboard.press("Shift+ArrowLeft")  # pan: the newly visible pixels are asked for and exact too
    page.wait_for_function("() => document.querySelector('#stage-hidenet canvas').dataset.region === 'current'")
    moved, x2, y2 = visible_pixels(page)
    assert x2 != x and np.array_equal(moved[:, :, :3], pixels[y2 : y2 + moved.shape[0], x2 : x2 + moved.shape[1]])


def test_a_viewer_told_region_busy_keeps_its_picture_and_asks_again(server, page):
    """The server answers ``region_busy`` when its region decodes are all taken: the page keeps the
    shrunk frame (``data-region`` "busy"), asks for the same rectangle again after ``retry_ms``,
    and shows the exact pixels once answered; the stream is not failed."""
    page.set_viewport_size({"width": 1000, "height": 800})
    pixels = photo_like(640, 1100, seed=13)
    info = post_image(server.url, "busy.png", png(pixels))
    asked: list[dict] = []

    def route(ws):  # the real server behind, but the page's first region request is answered busy
        upstream = ws.connect_to_server()

        def from_page(message):
            data = json.loads(message) if isinstance(message, str) else {}
            if data.get("type") == "region":
                asked.append(data)
                if len(asked) == 1:
                    rect = {k: data[k] for k in ("x", "y", "width", "height")}
                    ws.send(json.dumps({"type": "region_busy", **rect, "retry_ms": 400, "message": "busy (test)"}))
                    return
            upstream.send(message)

        ws.on_message(from_page)

    page.route_web_socket(re.compile(r"/ws$"), route)
    page.goto(viewer_url(server, UploadedImage(info["id"], "busy", 1100, 640, pixels), link="unlimited",
                         mode="lossless", view="1to1"))
    page.wait_for_function("() => document.querySelector('#stage-hidenet canvas').dataset.region === 'busy'")
    wait_done(page, 300)
    page.wait_for_function("() => document.querySelector('#stage-hidenet canvas').dataset.region === 'current'")
    assert len(asked) >= 2 and {k: asked[1][k] for k in ("x", "y", "width", "height")} == {
        k: asked[0][k] for k in ("x", "y", "width", "height")}
    shown, x, y = visible_pixels(page)
    h, w = shown.shape[:2]
    assert np.array_equal(shown[:, :, :3], pixels[y : y + h, x : x + w])
    assert page.locator("#viewer").get_attribute("data-stream-state") != "error"


#: In the page, before its scripts: the region answers its websockets receive (each a JSON message and
#: its PNG, in the order they came) are held back until ``__release(n)`` hands answer n to the
#: viewer; every other message goes through at once. ``__levels``: the index of each level message.
HOLD_REGIONS = """(() => {
  const Native = window.WebSocket;
  window.__held = [];
  window.__levels = [];
  window.WebSocket = class extends Native {
    addEventListener(type, handler, options) {
      if (type !== "message") return super.addEventListener(type, handler, options);
      let open = null;  // a region answer waiting for its PNG
      return super.addEventListener("message", (event) => {
        const message = typeof event.data === "string" ? JSON.parse(event.data) : null;
        if (message?.type === "level") window.__levels.push(message.index);
        if (message?.type === "region") {
          open = { message, events: [event], handler };
          window.__held.push(open);
        } else if (open && message === null) {
          open.events.push(event);
          open = null;
        } else {
          handler.call(this, event);
        }
      }, options);
    }
  };
  window.__release = (n) => { const h = window.__held[n]; for (const e of h.events) h.handler(e); };
})();"""


def test_an_answer_to_an_earlier_region_request_is_not_taken_for_the_picture_shown_now(server, page):
    """At 1:1 the viewer asks for the same rectangle after every picture. An answer the server made
    for an earlier picture can arrive after the page has shown the last one (the page asked again
    meanwhile): it is marked "stale", never "current", and only the answer of the last picture is
    "current", with the original's pixels. Before, the viewer took an answer's picture from the
    request last sent, and showed such an answer as current: the colours of a picture before the
    last layer's at 1:1 after "done" (a flaky failure under load)."""
    page.set_viewport_size({"width": 1000, "height": 800})
    pixels = photo_like(640, 1100, seed=14)
    info = post_image(server.url, "late-region.png", png(pixels))
    page.add_init_script(HOLD_REGIONS)
    page.goto(viewer_url(server, UploadedImage(info["id"], "late-region", 1100, 640, pixels), link="unlimited",
                         mode="lossless", view="1to1"))
    wait_done(page, 300)
    last = page.evaluate("() => Math.max(...window.__levels)")
    # the answer for the last picture, asked after it
    page.wait_for_function(f"() => window.__held.some((h) => h.message.index === {last} && h.events.length === 2)")
    answers = page.evaluate("() => window.__held.map((h) => h.message)")
    answers = answers[: next(n for n, a in enumerate(answers) if a["index"] == last) + 1]
    assert len(answers) > 1 and all(a["index"] < last for a in answers[:-1])  # answers for earlier pictures
    canvas = page.locator("#stage-hidenet canvas")
    for n, answer in enumerate(answers):
        page.evaluate("n => window.__release(n)", n)
        page.wait_for_function(f"() => Number(document.querySelector('#stage-hidenet canvas').dataset.regions) > {n}")
        assert canvas.get_attribute("data-region") == ("current" if answer["index"] == last else "stale"), answer
    shown, x, y = visible_pixels(page)
    h, w = shown.shape[:2]
    assert np.array_equal(shown[:, :, :3], pixels[y : y + h, x : x + w])


def test_a_race_on_a_large_image_comes_at_the_stage_size_and_at_1to1_starts_again_full_size(server, page):
    """Every racer's frames fit the stage in fit mode (the server still measures them at full
    size); switching the race to 1:1 starts it again with full-size frames, its contender's too."""
    from tests.viewer.test_race import record_messages

    page.set_viewport_size({"width": 1000, "height": 800})
    pixels = photo_like(640, 1100, seed=12)
    info = post_image(server.url, "large-race.png", png(pixels))
    messages = record_messages(page)
    page.goto(viewer_url(server, UploadedImage(info["id"], "large-race", 1100, 640, pixels), link="unlimited",
                         race="pjpeg"))
    wait_done(page, 300)
    meta = next(m for m in messages if m["type"] == "meta")
    stage = int(page.locator("#stage-c1 canvas").evaluate("c => c.width"))
    assert meta["frame"] is not None and meta["contenders"][0]["frame"]["width"] <= stage < 1100
    for key in ("hidenet", "c1"):
        assert int(page.locator(f"#stage-{key} canvas").get_attribute("data-frame-width")) <= stage
    shrunk = [m["psnr"] for m in messages if m["type"] == "race"]
    messages.clear()
    page.locator("label[for=view-1to1]").click()
    deadline = time.monotonic() + 300
    while not any(m["type"] == "done" for m in messages) and time.monotonic() < deadline:
        page.wait_for_timeout(50)  # the race starts again: a new meta, then its done
    wait_done(page, 300)
    meta = next(m for m in messages if m["type"] == "meta")
    assert meta["frame"] is None and meta["contenders"][0]["frame"] is None
    assert int(page.locator("#stage-c1 canvas").get_attribute("data-frame-width")) == 1100
    assert [m["psnr"] for m in messages if m["type"] == "race"] == shrunk  # the same full-size measure


def test_race_shows_both_images_and_both_curves(server, small_image, page):
    page.goto(viewer_url(server, small_image, link="3g", race=1))  # race=1: the progressive JPEG
    wait_done(page)
    wait_settled(page, "hidenet")
    wait_settled(page, "c1")
    assert page.locator("#stage-c1").get_attribute("data-contender") == "pjpeg:90"
    assert page.locator("#stage-c1").is_visible()
    assert page.locator("#stage-hidenet").is_visible()
    scans = int(page.locator("#stage-c1").get_attribute("data-frames"))
    assert scans >= 2
    assert int(page.locator("#stage-c1 canvas").get_attribute("data-frames")) == scans
    for stage in ("hidenet", "c1"):
        pixels = page.evaluate(
            """(stage) => {
                const c = document.querySelector(`#stage-${stage} canvas`);
                const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                let lit = 0;
                for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 120) lit++;
                return lit / (d.length / 4);
            }""",
            stage,
        )
        assert pixels > 0.2, f"the {stage} stage is mostly empty"
    for chart in ("chart-time", "chart-bytes"):
        canvas = page.locator(f"#{chart}")
        assert int(canvas.get_attribute("data-points-hidenet")) >= 4
        assert int(canvas.get_attribute("data-points-c1")) == scans
        # Both curves are drawn: pixels in each series' colour.
        counts = page.evaluate(
            """(id) => {
                const c = document.getElementById(id);
                const style = getComputedStyle(c);
                const rgb = (name) => {
                    const probe = document.createElement("canvas").getContext("2d");
                    probe.fillStyle = style.getPropertyValue(name).trim();
                    probe.fillRect(0, 0, 1, 1);
                    return probe.getImageData(0, 0, 1, 1).data;
                };
                const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                const near = (i, [r, g, b]) =>
                    Math.abs(d[i] - r) + Math.abs(d[i + 1] - g) + Math.abs(d[i + 2] - b) < 30 && d[i + 3] > 200;
                const a = rgb("--series-hidenet"), j = rgb("--series-c1");
                let ca = 0, cj = 0;
                for (let i = 0; i < d.length; i += 4) { if (near(i, a)) ca++; else if (near(i, j)) cj++; }
                return [ca, cj];
            }""",
            chart,
        )
        assert counts[0] > 50 and counts[1] > 50, (chart, counts)
    jpeg = page.locator("#verdict-body tr[data-racer='pjpeg:90']")
    assert jpeg.is_visible() and jpeg.locator(".col-first").text_content() != "–"


def test_reloading_the_url_restores_image_link_and_mode(server, small_image, page):
    starts = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: starts.append(json.loads(payload))
                                          if isinstance(payload, str) and '"start"' in payload else None))
    page.goto(viewer_url(server, small_image, link="unlimited"))
    wait_done(page)
    page.select_option("#link", "2g")
    page.locator("label[for=mode-near]").click()
    page.fill("#max-error", "3")
    page.press("#max-error", "Enter")
    page.locator("label[for=stream-resolution]").click()
    page.locator("label[for=race] , .switch:has(#race)").first.click()
    page.locator("#stages").click(position={"x": 5, "y": 5})  # focus out of the form
    page.keyboard.press("f")  # shortcut: fit -> 1:1
    page.wait_for_function("() => new URLSearchParams(location.search).get('view') === '1to1'")
    query = parse_qs(urlparse(page.url).query)
    assert query["link"] == ["2g"] and query["mode"] == ["near"] and query["max_error"] == ["3"]
    assert query["race"] == ["pjpeg:90"] and query["view"] == ["1to1"] and query["stream"] == ["resolution"]

    starts.clear()
    page.reload()
    page.wait_for_function("() => document.querySelector('#viewer').dataset.streamState !== 'connecting'")
    assert urlparse(page.url).path == f"/view/{small_image.id}"
    assert page.locator(".viewer-title").text_content().startswith(small_image.name)
    assert page.locator("#link").input_value() == "2g"
    assert page.locator("#mode-near").is_checked()
    assert page.locator("#max-error").input_value() == "3"
    assert page.locator("#max-error-field").is_visible()
    assert page.locator("#race").is_checked()
    assert page.locator("#view-1to1").is_checked() and page.locator("#stream-resolution").is_checked()
    assert page.locator("#stage-c1").is_visible()
    assert starts[-1] == {
        "type": "start", "image": small_image.id, "link": "2g", "max_error": 3,
        "generative_levels": 0, "preview": True, "contenders": ["pjpeg:90"], "stream": "resolution",
        "frame": "full",  # in a race frames are full size: every racer's PSNR is of the full-size picture
    }


def test_a_custom_link_and_generative_mode_come_from_the_url(server, small_image, page):
    starts = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: starts.append(json.loads(payload))
                                          if isinstance(payload, str) and '"start"' in payload else None))
    wait_no_encode(server)  # the previous test's reload left a new stream encoding
    page.goto(viewer_url(server, small_image, link="custom", down_kbps=5000, rtt_ms=40, mode="generative",
                         generative_levels=1, preview=0))
    wait_done(page)
    assert page.locator("#custom-link").is_visible()
    assert page.locator("#down-kbps").input_value() == "5000"
    assert page.locator("#generative-field").is_visible()
    assert starts[0]["link"] == {"down_kbps": 5000, "rtt_ms": 40}
    assert starts[0]["generative_levels"] == 1 and starts[0]["max_error"] == 0 and starts[0]["preview"] is False
    assert starts[0]["stream"] == "layered" and set(starts[0]["frame"]) == {"width", "height"}  # the stage's size
    # Replay by keyboard restarts the same stream.
    page.locator("#stages").click(position={"x": 5, "y": 5})
    page.keyboard.press("r")
    page.wait_for_function("() => document.querySelector('#viewer').dataset.streamState === 'done'")
    assert len(starts) == 2 and starts[1] == starts[0]


def test_at_1to1_a_stage_smaller_than_the_image_pans_by_keyboard_and_drag(server, small_image, page):
    page.set_viewport_size({"width": 1040, "height": 800})  # four race stages, each narrower than the image
    page.goto(viewer_url(server, small_image, link="unlimited", race="pjpeg,png,jpeg", view="1to1"))
    wait_done(page)
    canvas = page.locator("#stage-hidenet canvas")
    width = int(canvas.evaluate("c => c.width"))
    assert width < small_image.width
    x = lambda: int(canvas.get_attribute("data-x"))  # noqa: E731
    assert x() == (width - small_image.width) // 2  # centred
    canvas.focus()
    page.keyboard.press("ArrowLeft")
    assert x() == 0  # clamped: the image's left edge
    page.keyboard.press("Shift+ArrowRight")
    assert x() == width - small_image.width  # clamped: its right edge
    page.keyboard.press("Home")
    assert x() == (width - small_image.width) // 2
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 50, box["y"] + 50)
    page.mouse.down()
    page.mouse.move(box["x"] + 55, box["y"] + 50, steps=2)
    page.mouse.up()
    assert x() == (width - small_image.width) // 2 + 5
    # In fit mode the whole image is scaled into the stage instead.
    page.keyboard.press("f")
    page.wait_for_function("() => document.querySelector('#stage-hidenet canvas').dataset.scale !== '1'")
    assert float(canvas.get_attribute("data-scale")) < 1
