"""The gallery and viewer pages, static files and their content-hashed URLs."""

from __future__ import annotations

import hashlib
import re

import pytest

from server.keys import STATIC
from server.views.resources import find_dir

pytestmark = pytest.mark.asyncio


async def test_gallery_lists_the_images(client, rgb_id):
    resp = await client.get("/")
    html = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "colour" in html and "grey" in html and rgb_id in html


async def test_viewer_page(client, rgb_id):
    resp = await client.get(f"/view/{rgb_id}")
    html = await resp.text()
    assert resp.status == 200 and rgb_id in html and "colour" in html


@pytest.mark.parametrize("bad_id", ["0" * 32, "..%2F..%2Fetc%2Fpasswd", "ZZ"])
async def test_an_unknown_image_in_the_viewer_is_a_page_with_a_way_back(client, bad_id):
    resp = await client.get(f"/view/{bad_id}")
    html = await resp.text()
    assert resp.status == 404 and resp.content_type == "text/html"
    assert "There is no image with id" in html and 'href="/"' in html and "gallery" in html.lower()
    marked = await (await client.get("/view/%3Cb%3Ex")).text()
    assert "&lt;b&gt;x" in marked and "<b>x" not in marked  # the address is escaped, never markup


async def test_other_page_errors_are_pages_and_api_errors_stay_json(client):
    resp = await client.get("/no/such/page")
    assert resp.status == 404 and resp.content_type == "text/html"
    assert "There is no page at /no/such/page." in await resp.text()
    resp = await client.post("/")
    assert resp.status == 405 and resp.content_type == "text/html" and "GET" in resp.headers["Allow"]
    for path in ("/api/nothing", "/api/images/" + "0" * 32, "/static/nope.js"):
        resp = await client.get(path)
        assert resp.status == 404 and resp.content_type == "application/json", path


async def test_static_urls_carry_a_content_hash_and_are_served(client):
    static = find_dir("static")
    css = static / "css" / "app.css"
    url = client.app[STATIC].url("css/app.css")
    assert url == f"/static/css/app.css?v={hashlib.sha256(css.read_bytes()).hexdigest()[:12]}"
    resp = await client.get(url)
    assert resp.status == 200 and await resp.read() == css.read_bytes()
    html = await (await client.get("/")).text()
    assert re.search(r'/static/css/app\.css\?v=[0-9a-f]{12}', html)


async def test_missing_static_file_is_json_404(client):
    resp = await client.get("/static/nope.js")
    assert resp.status == 404 and "error" in await resp.json()


async def test_static_refuses_paths_outside_its_directory(client):
    assert client.app[STATIC].url("../server/app.py") == "/static/../server/app.py"  # no hash: not a static file
    resp = await client.get("/static/..%2Fserver%2Fapp.py")
    assert resp.status in (403, 404)
