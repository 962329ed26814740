"""Uploads: stored by content hash, atomically; every rejection path refuses and stores nothing."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from aiohttp import FormData
from PIL import Image

from server import create_app
from server.storage.store import image_id
from tests.conftest import png_claiming, smooth_image
from tests.server.conftest import frame_pixels, png_of

pytestmark = pytest.mark.asyncio


def form(data: bytes, filename: str = "photo.png", field: str = "file") -> FormData:
    f = FormData()
    f.add_field(field, data, filename=filename, content_type="application/octet-stream")
    return f


def stored(config) -> list[str]:
    d = config.data_dir / "uploads"
    return sorted(p.name for p in d.iterdir() if p.name != ".lock") if d.exists() else []  # .part files count


async def test_upload_is_stored_by_content_hash(client, config):
    pixels = smooth_image(30, 45, 3, seed=9)
    resp = await client.post("/api/images", data=form(png_of(pixels), "../../My Photo.png"))
    body = await resp.json()
    assert resp.status == 201 and body == {"id": image_id(pixels), "name": "My Photo", "width": 45, "height": 30}
    assert resp.headers["Location"] == f"/api/images/{body['id']}"
    assert stored(config) == [f"{body['id']}.json", f"{body['id']}.png"]  # no temporary files left
    assert body in await (await client.get("/api/images")).json()
    response = await client.get(f"/api/images/{body['id']}/original.png")
    original = await response.read()
    assert np.array_equal(frame_pixels(original), pixels) and response.content_type == "image/png"
    assert original == (config.data_dir / "uploads" / f"{body['id']}.png").read_bytes()  # the stored file: no work


async def test_same_pixels_in_another_format_are_the_same_image(client):
    pixels = smooth_image(16, 16, 3, seed=3)
    first = await client.post("/api/images", data=form(png_of(pixels)))
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "BMP")
    second = await client.post("/api/images", data=form(buf.getvalue(), "same.bmp"))
    assert (first.status, second.status) == (201, 200)
    assert (await first.json())["id"] == (await second.json())["id"]


async def test_uploads_survive_a_restart(aiohttp_client, config, clock):
    pixels = smooth_image(12, 20, 1, seed=4)
    one = await aiohttp_client(create_app(config, clock=clock))
    body = await (await one.post("/api/images", data=form(png_of(pixels), "kept.png"))).json()
    two = await aiohttp_client(create_app(config, clock=clock))
    assert body in await (await two.get("/api/images")).json()


async def test_too_many_bytes_is_413(aiohttp_client, config, clock):
    client = await aiohttp_client(create_app(replace(config, max_upload_bytes=2000), clock=clock))
    noisy = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    resp = await client.post("/api/images", data=form(png_of(noisy)))
    assert resp.status == 413 and "limit" in (await resp.json())["error"] and stored(config) == []


async def test_the_default_byte_limit_takes_any_png_within_the_pixel_limit():
    """A photograph within ``max_pixels`` is never refused for its bytes: a PNG of that many
    RGBA pixels that does not compress at all fits (a 40 MP photograph's PNG is 40 to 100 MB)."""
    from server.config import ServerConfig

    cfg = ServerConfig()
    assert cfg.max_upload_bytes >= 4 * cfg.max_pixels


async def test_too_many_pixels_is_413_before_decoding(aiohttp_client, config, clock):
    client = await aiohttp_client(create_app(replace(config, max_pixels=10_000), clock=clock))
    resp = await client.post("/api/images", data=form(png_claiming(200, 100)))
    assert resp.status == 413 and "20000 pixels" in (await resp.json())["error"] and stored(config) == []


async def test_decompression_bomb_is_413(client, config):
    resp = await client.post("/api/images", data=form(png_claiming(60_000, 60_000)))
    assert resp.status == 413 and stored(config) == []


async def test_non_image_is_415(client, config):
    resp = await client.post("/api/images", data=form(b"%PDF-1.4 not an image at all", "doc.png"))
    assert resp.status == 415 and "not an image" in (await resp.json())["error"] and stored(config) == []


async def test_sixteen_bit_image_is_415(client, config):
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(buf, "PNG")
    resp = await client.post("/api/images", data=form(buf.getvalue()))
    assert resp.status == 415 and "16-bit" in (await resp.json())["error"] and stored(config) == []


async def test_truncated_image_is_400(client, config):
    data = png_of(smooth_image(64, 64, 3))
    resp = await client.post("/api/images", data=form(data[: len(data) // 2]))
    assert resp.status == 400 and "truncated" in (await resp.json())["error"] and stored(config) == []


async def test_empty_file_is_400(client, config):
    resp = await client.post("/api/images", data=form(b""))
    assert resp.status == 400 and "empty" in (await resp.json())["error"] and stored(config) == []


async def test_missing_file_field_is_400(client, config):
    resp = await client.post("/api/images", data=form(png_of(smooth_image(8, 8, 3)), field="image"))
    assert resp.status == 400 and "'file'" in (await resp.json())["error"] and stored(config) == []


async def test_not_multipart_is_400(client, config):
    resp = await client.post("/api/images", data=png_of(smooth_image(8, 8, 3)), headers={"Content-Type": "image/png"})
    assert resp.status == 400 and "multipart" in (await resp.json())["error"] and stored(config) == []


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_its_content_encoding_does_not_decode_is_400(client, config, encoding):
    headers = {"Content-Type": "multipart/form-data; boundary=XyZ", "Content-Encoding": encoding}
    resp = await client.post("/api/images", data=b"\xff" * 50, headers=headers)
    assert resp.status == 400 and "malformed request body" in (await resp.json())["error"] and stored(config) == []


async def test_upload_storage_cap_is_507(aiohttp_client, config, clock):
    client = await aiohttp_client(create_app(replace(config, max_uploads=1), clock=clock))
    assert (await client.post("/api/images", data=form(png_of(smooth_image(8, 8, 3, seed=1))))).status == 201
    resp = await client.post("/api/images", data=form(png_of(smooth_image(8, 8, 3, seed=2))))
    assert resp.status == 507 and "limit" in (await resp.json())["error"] and len(stored(config)) == 2


async def test_a_refused_upload_keeps_no_reference_to_its_bytes():
    """The error of a refused upload must not hold the upload's bytes: its traceback kept the
    decoder's frames, and 16 refused 150 MB uploads at once held 2.6 GiB until answered."""
    from aiohttp import web

    from server.views.api import _decode_upload

    freed = []

    class Tracked(bytes):
        def __del__(self) -> None:
            freed.append(True)

    class Spool:
        def seek(self, offset: int) -> None:
            pass

        def read(self) -> bytes:
            return Tracked(b"not an image " * 1000)

        def close(self) -> None:
            pass

    with pytest.raises(web.HTTPUnsupportedMediaType) as refused:
        _decode_upload(Spool(), 1_000_000)
    assert "not an image" in refused.value.text and freed == [True]  # while the error is still held
