"""The image store shared by several servers on one data directory (only the file system is shared)."""

from __future__ import annotations

import numpy as np
import pytest
from aiohttp import FormData

from server import create_app
from tests.conftest import smooth_image
from tests.server.conftest import frame_pixels, png_of, receive_stream

pytestmark = pytest.mark.asyncio


def form(data: bytes) -> FormData:
    f = FormData()
    f.add_field("file", data, filename="shared.png", content_type="image/png")
    return f


async def test_an_upload_to_one_server_is_served_by_another_at_once(aiohttp_client, config, clock):
    a = await aiohttp_client(create_app(config, clock=clock))
    b = await aiohttp_client(create_app(config, clock=clock))  # started before the upload
    pixels = smooth_image(36, 44, 3, seed=41)
    resp = await a.post("/api/images", data=form(png_of(pixels)))
    body = await resp.json()
    assert resp.status == 201
    assert (await (await b.get(f"/api/images/{body['id']}")).json())["width"] == 44
    assert body in await (await b.get("/api/images")).json()
    ws = await b.ws_connect("/ws")
    await ws.send_json({"type": "start", "image": body["id"], "preview": False})
    messages = await receive_stream(ws)
    assert messages[-1]["type"] == "done" and np.array_equal(frame_pixels(messages[-2]), pixels)
    again = await b.post("/api/images", data=form(png_of(pixels)))
    assert again.status == 200 and (await again.json())["id"] == body["id"]


async def test_the_list_follows_uploads_and_removals_by_other_servers(aiohttp_client, config, clock):
    a = await aiohttp_client(create_app(config, clock=clock))
    b = await aiohttp_client(create_app(config, clock=clock))
    ids = []
    for seed in range(3):
        resp = await a.post("/api/images", data=form(png_of(smooth_image(8, 8, 3, seed=seed))))
        ids.append((await resp.json())["id"])
        listed = [i["id"] for i in await (await b.get("/api/images")).json()]
        assert listed[-len(ids):] == ids  # upload order, at once
    for suffix in (".json", ".png"):
        (config.data_dir / "uploads" / f"{ids[0]}{suffix}").unlink()
    listed = [i["id"] for i in await (await b.get("/api/images")).json()]
    assert ids[0] not in listed and listed[-2:] == ids[1:]


async def test_an_upload_whose_pixels_were_removed_by_hand_can_be_stored_again(aiohttp_client, config, clock):
    """Its entry stayed (a 410 for its pixels): uploading the same image again, through any
    server, stores its pixels again, and it is served again."""
    a = await aiohttp_client(create_app(config, clock=clock))
    b = await aiohttp_client(create_app(config, clock=clock))
    pixels = smooth_image(20, 24, 3, seed=43)
    image = (await (await a.post("/api/images", data=form(png_of(pixels)))).json())["id"]
    (config.data_dir / "uploads" / f"{image}.png").unlink()
    assert (await a.get(f"/api/images/{image}/original.png")).status == 410
    again = await b.post("/api/images", data=form(png_of(pixels)))
    assert again.status == 201 and (await again.json())["id"] == image
    for client in (a, b):
        original = await client.get(f"/api/images/{image}/original.png")
        assert original.status == 200 and np.array_equal(frame_pixels(await original.read()), pixels)

