"""The race in a real Chromium: every contender's repaints arrive in order, a lossless contender
ends on the original's pixels, and the verdict on screen is the server's, from the same events."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from hidenet_core.tools.contenders import CONTENDERS
from tests.viewer.test_viewer import stage_pixels, viewer_url, wait_done, wait_settled

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def record_messages(page) -> list[dict]:
    """Every JSON message the page's websockets receive, in order."""
    received: list[dict] = []

    def on_frame(payload) -> None:
        if isinstance(payload, str):
            received.append(json.loads(payload))

    def on_socket(ws):
        ws.on("framereceived", on_frame)

    page.on("websocket", on_socket)
    return received


@pytest.mark.parametrize("contender", list(CONTENDERS))
def test_each_contender_repaints_in_order_and_a_lossless_one_ends_exact(server, small_image, page, contender):
    messages = record_messages(page)
    page.goto(viewer_url(server, small_image, link="custom", down_kbps=400, rtt_ms=100, race=contender,
                         view="1to1"))
    seen = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = page.locator("#viewer").get_attribute("data-stream-state")
        frames = page.locator("#stage-c1").get_attribute("data-frames")
        if frames:
            seen.append(int(frames))
        if state in ("done", "error"):
            break
        time.sleep(0.03)
    wait_done(page)
    races = [m for m in messages if m["type"] == "race"]
    meta = next(m for m in messages if m["type"] == "meta")
    (spec,) = meta["contenders"]
    assert spec["id"] == contender and page.locator("#stage-c1").get_attribute("data-contender") == spec["key"]
    n = spec["frames"]
    assert [m["frame"] for m in races] == list(range(1, n + 1)), "one message per repaint, in order"
    assert seen == sorted(seen) and seen[-1] == n, "the stage showed them in order"
    wait_settled(page, "c1")
    assert int(page.locator("#stage-c1 canvas").get_attribute("data-frames")) == n, "every repaint was drawn"
    assert page.locator("#stage-c1 [data-field=badge]").text_content() == f"{n}/{n}"
    if CONTENDERS[contender].lossless:
        shown = stage_pixels(page, "c1", small_image.width, small_image.height)
        assert (shown[:, :, 3] == 255).all()
        assert np.array_equal(shown[:, :, :3], small_image.pixels), "the last repaint is the original"
        assert races[-1]["psnr"] is None
    else:
        assert races[-1]["psnr"] > 30


def test_three_contenders_and_the_verdict_on_screen_is_the_servers(server, small_image, page):
    messages = record_messages(page)
    page.goto(viewer_url(server, small_image, link="3g", race="pjpeg:70,png,webp-lossless"))
    wait_done(page)
    assert page.locator("#stages").get_attribute("data-count") == "4"
    keys = [page.locator(f"#stage-c{slot}").get_attribute("data-contender") for slot in (1, 2, 3)]
    assert keys == ["pjpeg:70", "png", "webp-lossless"]
    done = next(m for m in messages if m["type"] == "done")
    verdict = done["verdict"]
    rows = page.locator("#verdict-body tr")
    assert [rows.nth(i).get_attribute("data-racer") for i in range(rows.count())] == ["hidenet", *keys]
    for racer in verdict["racers"]:
        row = page.locator(f"#verdict-body tr[data-racer='{racer['key']}']")

        def value(column, row=row):
            raw = row.locator(f".col-{column}").get_attribute("data-value")
            return None if raw is None else float(raw)

        assert value("first") == pytest.approx(racer["first_ms"])
        assert value("final") == pytest.approx(racer["final_ms"])
        assert value("bytes") == racer["bytes"]
        assert value("best") == pytest.approx(racer["best_share"])
        for db in ("30", "35", "40"):
            expected = racer["to_db_ms"][db]
            assert value(f"db{db}") == (None if expected is None else pytest.approx(expected))
        # the live figures the page drew from the events agree with the server's verdict of the same events
        events = [m for m in messages if m["type"] in ("level", "race")
                  and (m.get("contender") or "hidenet") == racer["key"]]
        assert racer["first_ms"] == events[0]["arrival_ms"] and racer["final_ms"] == events[-1]["arrival_ms"]
    assert page.locator("#verdict-sentence").text_content() == verdict["sentence"]
    for chart in ("chart-time", "chart-bytes"):
        canvas = page.locator(f"#{chart}")
        for slot, key in enumerate(keys, 1):
            count = sum(1 for m in messages if m["type"] == "race" and m["contender"] == key)
            assert int(canvas.get_attribute(f"data-points-c{slot}")) == count
    legend = page.locator("#legend li")
    assert [legend.nth(i).text_content() for i in range(legend.count())] == [
        "hideNet", "Progressive JPEG q70", "Interlaced PNG", "WebP lossless"]


def test_contenders_are_chosen_in_the_settings_and_kept_in_the_url(server, small_image, page):
    starts = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: starts.append(json.loads(payload))
                                          if isinstance(payload, str) and '"start"' in payload else None))
    page.goto(viewer_url(server, small_image, link="unlimited"))
    wait_done(page)
    assert not page.locator("#contenders").is_visible()
    page.keyboard.press("j")  # the race, with the progressive JPEG by default
    wait_done(page)
    assert starts[-1]["contenders"] == ["pjpeg:90"] and page.locator("#contenders").is_visible()
    page.select_option("#contender-2", "webp")
    wait_done(page)
    assert starts[-1]["contenders"] == ["pjpeg:90", "webp:80"]
    assert page.locator("#quality-2").input_value() == "80" and page.locator("#quality-2").is_visible()
    page.fill("#quality-2", "55")
    page.press("#quality-2", "Enter")
    page.wait_for_function("() => new URLSearchParams(location.search).get('race') === 'pjpeg:90,webp:55'")
    wait_done(page)
    page.select_option("#contender-3", "png")
    wait_done(page)
    assert not page.locator("#quality-3").is_visible()  # PNG takes no quality
    assert starts[-1]["contenders"] == ["pjpeg:90", "webp:55", "png"]
    page.reload()
    wait_done(page)
    assert starts[-1]["contenders"] == ["pjpeg:90", "webp:55", "png"]
    assert page.locator("#contender-2").input_value() == "webp" and page.locator("#quality-2").input_value() == "55"
    page.locator("#stages").click(position={"x": 5, "y": 5})
    page.keyboard.press("j")  # the race off again: hideNet alone
    wait_done(page)
    assert starts[-1]["contenders"] == [] and page.locator("#stages").get_attribute("data-count") == "1"
