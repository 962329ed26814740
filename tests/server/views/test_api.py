"""The HTTP API: images, stream download, original and thumbnail, links, health, errors as JSON."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from hidenet_core import decode, load_model
from server.streaming.links import PRESETS
from tests.server.conftest import frame_pixels

pytestmark = pytest.mark.asyncio


async def test_healthz(client):
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}


async def test_list_images_gives_content_hash_ids(client, rgb_id):
    resp = await client.get("/api/images")
    images = await resp.json()
    assert resp.status == 200 and [i["name"] for i in images] == ["colour", "grey"]  # notes.txt skipped
    assert images[0] == {"id": rgb_id, "name": "colour", "width": 56, "height": 40}
    assert images[1]["width"] == 21 and images[1]["height"] == 33


async def test_get_one_image(client, rgb_id):
    body = await (await client.get(f"/api/images/{rgb_id}")).json()
    assert body["id"] == rgb_id and body["channels"] == 3 and body["levels"] == 2


@pytest.mark.parametrize("path", ["/api/images/{}", "/api/images/{}/stream.hdn", "/api/images/{}/original.png",
                                  "/api/images/{}/thumbnail.png"])
@pytest.mark.parametrize("bad_id", ["0" * 32, "..%2F..%2Fetc%2Fpasswd", "ZZ"])
async def test_unknown_or_malformed_ids_are_404(client, path, bad_id):
    resp = await client.get(path.format(bad_id))
    assert resp.status == 404 and "error" in await resp.json()


async def test_stream_download_decodes_to_the_original(client, rgb, rgb_id):
    resp = await client.get(f"/api/images/{rgb_id}/stream.hdn")
    assert resp.status == 200 and resp.content_type == "application/octet-stream"
    assert "attachment" in resp.headers["Content-Disposition"]
    levels = decode(await resp.read(), load_model("interp"))
    assert np.array_equal(levels[-1].image, rgb)


async def test_stream_download_with_a_mode(client, rgb, rgb_id):
    resp = await client.get(f"/api/images/{rgb_id}/stream.hdn", params={"max_error": "4", "generative_levels": "1"})
    levels = decode(await resp.read(), load_model("interp"))
    header = levels  # the mode is in the stream's header
    assert resp.status == 200 and len(header) == 2


@pytest.mark.parametrize("params, fragment", [
    ({"max_error": "x"}, "max_error must be an integer"),
    ({"max_error": "128"}, "outside 0..127"),
    ({"max_error": "-1"}, "outside 0..127"),
    ({"generative_levels": "2"}, "outside 0..1"),
])
async def test_stream_download_bad_parameters_are_400(client, rgb_id, params, fragment):
    resp = await client.get(f"/api/images/{rgb_id}/stream.hdn", params=params)
    assert resp.status == 400 and fragment in (await resp.json())["error"]


async def test_original_png_is_the_exact_pixels(client, rgb, rgb_id):
    resp = await client.get(f"/api/images/{rgb_id}/original.png")
    assert resp.status == 200 and resp.content_type == "image/png" and "immutable" in resp.headers["Cache-Control"]
    assert np.array_equal(frame_pixels(await resp.read()), rgb)


async def test_an_images_original_png_is_made_once_for_every_request(client, rgb, rgb_id, monkeypatch):
    """Requests at once share one PNG encode and later ones get it kept: eight clients asking for a
    3 MP photograph's original over and over held both worker threads with an encode each, and
    another viewer's first frame took 0.4 s instead of 0.01 (a probe against a real server)."""
    from server.views import api

    made = []
    png_bytes = api.png_bytes

    def counted(*args, **kwargs):
        made.append(1)
        return png_bytes(*args, **kwargs)

    monkeypatch.setattr(api, "png_bytes", counted)
    answers = await asyncio.gather(*(client.get(f"/api/images/{rgb_id}/original.png") for _ in range(4)))
    bodies = [await r.read() for r in answers]
    later = await (await client.get(f"/api/images/{rgb_id}/original.png")).read()
    assert all(r.status == 200 for r in answers) and len(set(bodies + [later])) == 1
    assert np.array_equal(frame_pixels(later), rgb) and made == [1]


async def test_work_for_a_client_that_left_is_cancelled():
    """``hidenet serve`` does not cancel a handler whose client leaves: the worker jobs of
    original.png and thumbnails are given up when the client is gone (a job still queued never
    runs), and nothing is answered (499)."""
    from types import SimpleNamespace

    from aiohttp import web

    from server.views.api import _while_client_waits

    started, cancelled = asyncio.Event(), []

    async def work() -> bytes:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(1)
            raise
        return b""

    there = SimpleNamespace(transport=SimpleNamespace(is_closing=lambda: False))
    assert await _while_client_waits(there, asyncio.sleep(0.3, b"png")) == b"png"  # waited past one check
    gone = SimpleNamespace(transport=None)
    with pytest.raises(web.HTTPException) as raised:
        await _while_client_waits(gone, work())
    await asyncio.sleep(0)  # the work's task runs its cancellation
    assert raised.value.status == 499 and started.is_set() and cancelled == [1]


async def test_thumbnail_is_at_most_320_px(client):
    from tests.conftest import smooth_image
    from tests.server.conftest import png_of

    big = smooth_image(200, 700, 3, seed=5)
    from tests.server.views.test_upload import form

    info = await (await client.post("/api/images", data=form(png_of(big)))).json()
    resp = await client.get(f"/api/images/{info['id']}/thumbnail.png")
    thumb = frame_pixels(await resp.read())
    assert resp.status == 200 and resp.content_type == "image/png" and thumb.shape == (91, 320, 3)
    again = await client.get(f"/api/images/{info['id']}/thumbnail.png")
    assert await again.read() == await resp.read()


async def test_links_lists_presets_with_display_names(client):
    contenders = await (await client.get("/api/contenders")).json()
    assert [c["id"] for c in contenders] == ["pjpeg", "jpeg", "png", "webp-lossless", "webp", "j2k"]
    assert all(c["available"] and c["repaints"] for c in contenders)
    assert next(c for c in contenders if c["id"] == "webp")["quality"] == {"default": 80, "min": 1, "max": 100}
    assert next(c for c in contenders if c["id"] == "png")["quality"] is None
    links = await (await client.get("/api/links")).json()
    assert [link["id"] for link in links] == list(PRESETS)
    threeg = next(link for link in links if link["id"] == "3g")
    assert threeg == {"id": "3g", "name": "3G", "down_kbps": 1600, "rtt_ms": 300, "source": "WebPageTest"}


async def test_stats_report_memory_and_counters(client):
    stats = await (await client.get("/api/stats")).json()
    assert stats["rss_bytes"] > 0 and stats["peak_rss_bytes"] >= stats["rss_bytes"] and stats["images"] == 2


async def test_unknown_route_is_json_404(client):
    resp = await client.get("/api/nothing")
    assert resp.status == 404 and resp.content_type == "application/json"
    assert await resp.json() == {"error": "Not Found"}


async def test_wrong_method_is_json_405(client):
    resp = await client.delete("/api/images")
    assert resp.status == 405 and (await resp.json())["error"] and "GET" in resp.headers["Allow"]
