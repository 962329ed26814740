"""The viewer's layout on a phone (390 x 844) and a laptop (1280 x 800): nothing wider than the
window, no text cut off in the stage headers, the totals or the title bar, and the key figures in
view."""

from __future__ import annotations

import pytest

from tests.viewer.test_viewer import viewer_url, wait_done

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Every element with text of its own inside `selector`s that is clipped: cut by its own box (text
# wider than an overflow-hidden box), outside the window, or outside its panel.
CLIPPED = """(selectors) => {
    const out = [];
    const vw = document.documentElement.clientWidth;
    for (const el of document.querySelectorAll(selectors)) {
        const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
        if (!own || !el.getClientRects().length) continue;
        const style = getComputedStyle(el);
        const r = el.getBoundingClientRect();
        const box = el.closest(".stage, .panel, .topbar").getBoundingClientRect();
        const text = el.textContent.trim().slice(0, 40);
        if (style.overflowX !== "visible" && el.scrollWidth > el.clientWidth + 1) out.push(`cut: ${text}`);
        if (style.textOverflow === "ellipsis" && el.scrollWidth > el.clientWidth) out.push(`ellipsis: ${text}`);
        if (r.left < -0.5 || r.right > vw + 0.5) out.push(`off screen: ${text} (${r.left}..${r.right})`);
        if (r.left < box.left - 0.5 || r.right > box.right + 0.5) out.push(`out of its panel: ${text}`);
    }
    return out;
}"""

# The text rectangles of `needle` inside `selector`: one line means one distinct top.
LINES_OF = """([selector, needle]) => {
    const node = document.querySelector(selector);
    const walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
    for (let t = walker.nextNode(); t; t = walker.nextNode()) {
        const at = t.textContent.indexOf(needle);
        if (at < 0) continue;
        const range = document.createRange();
        range.setStart(t, at);
        range.setEnd(t, at + needle.length);
        return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
    }
    return -1;
}"""

REGIONS = ".stage-caption *, .stage-caption, #stats *, .topbar *"


@pytest.mark.parametrize("width, height", [(390, 844), (1280, 800)])
@pytest.mark.parametrize("race", ["0", "pjpeg,png,webp:60"])
def test_no_horizontal_overflow_and_no_clipped_text(server, small_image, page, width, height, race):
    page.set_viewport_size({"width": width, "height": height})
    page.goto(viewer_url(server, small_image, link="devtools-3g", race=race))
    page.wait_for_selector("#timeline-body tr[data-state=arrived]", timeout=60_000)
    for moment in ("streaming", "done"):
        if moment == "done":
            wait_done(page, timeout_s=90)
            page.wait_for_timeout(300)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than the window ({moment})"
        assert page.evaluate(CLIPPED, REGIONS) == [], moment
        # "2000 ms" (the link's round trip) never breaks across two lines
        assert page.evaluate(LINES_OF, ["[data-stat=link]", "2000\u00a0ms"]) == 1
        for clock in page.locator(".stage-clock").all():
            box = clock.bounding_box()
            assert box["height"] < 40, "a clock on two lines"
    if width == 1280:
        # The first screen shows the pictures and "PSNR now", without scrolling.
        box = page.locator("[data-stat=psnr]").bounding_box()
        label = page.locator(".stat-hidenet dt").bounding_box()
        assert box["y"] + box["height"] <= height and label["y"] >= 0, (box, label)
    title = page.locator(".viewer-title")
    assert title.evaluate("el => el.scrollWidth <= el.clientWidth + 1")
    assert title.text_content().startswith(small_image.name)
