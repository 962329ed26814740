"""What the viewer says and does around a stream: the wait while the server prepares it,
Stop at any moment (connecting, preparing, streaming), the clocks, the unlimited link."""

from __future__ import annotations

import time

import pytest

from tests.viewer.conftest import photo_like, png, post_image
from tests.viewer.test_viewer import viewer_url, wait_done

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STATE = "() => document.querySelector('#viewer').dataset.streamState"


def stat(page, name: str) -> str:
    return page.locator(f"[data-stat={name}]").text_content()


def seconds(text: str) -> float:
    return float(text.replace("\u00a0", " ").split(" ")[0])


@pytest.fixture
def uncached_image(server):
    """A fresh 960 x 720 image: nothing is cached for it, so the server has to encode it."""
    info = post_image(server.url, "fresh.png", png(photo_like(720, 960, seed=int(time.time() * 1000) % 100_000)))
    return type("Image", (), info)


def test_the_wait_is_explained_and_stop_works_while_the_server_prepares(server, uncached_image, page):
    page.goto(viewer_url(server, uncached_image, link="3g", mode="near", max_error=7, race="j2k"))
    page.wait_for_function(f"() => ({STATE})() === 'preparing'", timeout=30_000)
    # Honest: the server says what it does, the link clock has not started, real time runs.
    status = page.locator("#stage-hidenet [data-field=status]").text_content()
    contender = page.locator("#stage-c1 [data-field=status]").text_content()
    assert "Encoding" in status or "Preparing" in contender or "Waiting for the server" in status, (status, contender)
    assert stat(page, "link-time") == "not started"
    real = seconds(stat(page, "real-time"))
    page.wait_for_timeout(300)
    assert seconds(stat(page, "real-time")) > real
    page.locator("#stages").click(position={"x": 5, "y": 5})
    page.keyboard.press("s")
    assert page.evaluate(STATE) == "stopped"
    frozen = stat(page, "real-time")
    assert page.locator("#stage-hidenet [data-field=flag]").text_content() == "Stopped"
    assert page.locator("#stage-hidenet [data-field=status]").text_content().startswith("Stopped")
    page.wait_for_timeout(2500)  # long enough for a stream to have started if Stop had not stopped it
    assert stat(page, "real-time") == frozen
    assert page.evaluate(STATE) == "stopped"
    assert page.locator("#stage-hidenet canvas").get_attribute("data-frames") == "0"
    assert page.locator("#timeline-body tr[data-state=arrived]").count() == 0


def test_stop_mid_stream_freezes_every_clock_and_says_stopped(server, small_image, page):
    page.goto(viewer_url(server, small_image, link="custom", down_kbps=60, rtt_ms=100, race="png"))
    page.wait_for_selector("#timeline-body tr[data-state=arrived]", timeout=60_000)
    page.wait_for_timeout(400)
    clock = page.locator("#stage-hidenet [data-field=clock]")
    before = seconds(clock.text_content())
    page.click("#stop")
    after = seconds(clock.text_content())
    assert after >= before, "the clock never jumps back"
    page.wait_for_timeout(800)
    assert seconds(clock.text_content()) == after, "and stays where it stopped"
    assert page.evaluate(STATE) == "stopped"
    for stage in ("hidenet", "c1"):
        assert page.locator(f"#stage-{stage} [data-field=flag]").is_visible()
        assert page.locator(f"#stage-{stage} [data-field=flag]").text_content() == "Stopped"
    assert page.locator("#verdict-sentence").text_content() == "Stopped before the end: no verdict."
    assert seconds(stat(page, "link-time")) >= after


def test_clocks_are_labelled_and_agree_with_the_final_times(server, small_image, page):
    page.goto(viewer_url(server, small_image, link="3g", race="pjpeg"))
    wait_done(page)
    for stage in ("hidenet", "c1"):
        assert page.locator(f"#stage-{stage} [data-field=clock-label]").text_content() == "link"
        final = page.locator(f"#verdict-body tr[data-racer='{'hidenet' if stage == 'hidenet' else 'pjpeg:90'}'] "
                             ".col-final").get_attribute("data-value")
        shown = seconds(page.locator(f"#stage-{stage} [data-field=clock]").text_content())
        assert shown == pytest.approx(float(final) / 1000, abs=0.006)  # the clock stops at the final picture's time
    status = page.locator("#stage-hidenet [data-field=status]").text_content()
    assert "(link)" in status
    assert seconds(stat(page, "link-time")) <= seconds(stat(page, "real-time"))


def test_the_unlimited_links_time_axis_reads_when_the_server_sent_each_picture(server, small_image, page):
    page.goto(viewer_url(server, small_image, link="unlimited", race="pjpeg"))
    wait_done(page)
    labels = page.locator("#chart-time").get_attribute("data-x-labels").split("|")
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels  # no "0.00 s, 0.00 s, 0.00 s"
    assert "sent" in page.locator("#chart-time-caption").text_content()
    assert page.locator("#stage-hidenet [data-field=clock-label]").text_content() == "sent"


def _busy_first(page, refusals: int) -> list[str]:
    """Route the page's websockets: the first ``refusals`` starts are answered "busy" (as a server
    with every slot taken answers), later ones reach the real server. Returns the log of starts."""
    import json
    import re

    starts: list[str] = []

    def route(ws):
        upstream = None

        def from_page(message):
            nonlocal upstream
            data = json.loads(message) if isinstance(message, str) else {}
            if data.get("type") == "start":
                starts.append("refused" if len(starts) < refusals else "served")
                if starts[-1] == "refused":
                    ws.send(json.dumps({"type": "error", "code": "busy", "retry_ms": 300,
                                        "message": "server busy: 2 streams are being encoded; try again shortly"}))
                    return
            if upstream is None:
                upstream = ws.connect_to_server()
            upstream.send(message)

        ws.on_message(from_page)

    page.route_web_socket(re.compile(r"/ws$"), route)
    return starts


def test_a_busy_server_is_asked_again_with_a_countdown_and_the_stream_then_plays(server, small_image, page):
    starts = _busy_first(page, 2)
    page.goto(viewer_url(server, small_image, link="unlimited"))
    page.wait_for_function(f"() => ({STATE})() === 'waiting'")
    banner = page.locator("#stream-error").text_content()
    assert banner.startswith("Server busy: 2 streams are being encoded") and "trying again in" in banner, banner
    assert "(1 of 5)" in banner and "Stream error" not in banner
    assert "trying again in" in page.locator("#stage-hidenet [data-field=status]").text_content()
    wait_done(page)
    assert starts == ["refused", "refused", "served"]
    assert page.evaluate(STATE) == "done" and not page.locator("#stream-error").is_visible()


def test_stop_ends_the_wait_for_a_busy_server(server, small_image, page):
    starts = _busy_first(page, 1)
    page.goto(viewer_url(server, small_image, link="unlimited"))
    page.wait_for_function(f"() => ({STATE})() === 'waiting'")
    page.click("#stop")
    assert page.evaluate(STATE) == "stopped"
    page.wait_for_timeout(1200)  # well past the 300 ms the server asked to wait
    assert starts == ["refused"] and page.evaluate(STATE) == "stopped"


def test_a_server_still_busy_after_five_tries_is_an_error(server, small_image, page):
    starts = _busy_first(page, 100)
    page.goto(viewer_url(server, small_image, link="unlimited"))
    # waits of 0.3, 0.45, 0.68, 1.01 and 1.52 s, then the sixth refusal is shown as the error
    page.wait_for_function(f"() => ({STATE})() === 'error'", timeout=20_000)
    assert starts == ["refused"] * 6
    banner = page.locator("#stream-error").text_content()
    assert banner.startswith("Stream error: server busy") and "trying again" not in banner
