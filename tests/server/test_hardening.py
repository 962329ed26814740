"""Regressions of the second attack on the server (issue "Hardening, round 2"): one test per
defect and per rejection path, each failing on the code before its fix."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from dataclasses import replace

import numpy as np
import pytest
import pytest_asyncio
from aiohttp import FormData, WSMsgType

from server import create_app
from server.keys import CACHE, STATS
from server.storage.store import image_id
from tests.conftest import smooth_image
from tests.server.conftest import HoldClock, SlowDisk, frame_pixels, png_of, receive_meta, receive_stream

pytestmark = pytest.mark.asyncio


def form(data: bytes, filename: str = "photo.png") -> FormData:
    f = FormData()
    f.add_field("file", data, filename=filename, content_type="application/octet-stream")
    return f


def uploads(config) -> list[str]:
    d = config.data_dir / "uploads"
    return sorted(p.name for p in d.iterdir() if p.name != ".lock") if d.exists() else []


async def settled(stats, timeout: float = 10) -> None:
    """Wait until no stream runs (the tasks of a closed socket end a moment after it closes)."""
    deadline = time.monotonic() + timeout
    while stats.streams_running and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


@pytest.fixture
def hold_clock() -> HoldClock:
    return HoldClock()


@pytest_asyncio.fixture
async def held_client(aiohttp_client, config, hold_clock):
    return await aiohttp_client(create_app(config, clock=hold_clock))


# --- D1: the stream counter ------------------------------------------------------------------


async def test_starts_back_to_back_leave_no_stream_counted(held_client, rgb_id):
    stats = held_client.app[STATS]
    ws = await held_client.ws_connect("/ws")
    for _ in range(60):  # each start cancels the one before, most of them before they ever ran
        await ws.send_json({"type": "start", "image": rgb_id, "link": "2g"})
    await ws.close()
    await settled(stats)
    assert stats.streams_running == 0 and stats.streams_started == 60
    assert stats.streams_cancelled == 60
    # a fresh client is served, not told "busy"
    fresh = await held_client.ws_connect("/ws")
    await fresh.send_json({"type": "start", "image": rgb_id})
    assert (await receive_meta(fresh))["type"] == "meta"


async def test_start_cancel_pairs_leave_no_stream_counted(held_client, rgb_id):
    stats = held_client.app[STATS]
    ws = await held_client.ws_connect("/ws")
    for _ in range(10):
        await ws.send_json({"type": "start", "image": rgb_id, "link": "2g"})
        await ws.send_json({"type": "cancel"})
    cancelled = 0
    while cancelled < 10:
        msg = await asyncio.wait_for(ws.receive_json(), 10)
        cancelled += msg["type"] == "cancelled"
    assert stats.streams_running == 0 and stats.streams_cancelled == 10
    await ws.close()


# --- D5: deeply nested JSON --------------------------------------------------------------------


async def test_deeply_nested_json_is_a_bad_request_and_the_socket_stays_open(client, rgb_id):
    ws = await client.ws_connect("/ws")
    await ws.send_str("[" * 20000 + "]" * 20000)
    err = await ws.receive_json()
    assert err["type"] == "error" and err["code"] == "bad_request" and "nested" in err["message"]
    await ws.send_json({"type": "start", "image": rgb_id})
    assert (await receive_stream(ws))[-1]["type"] == "done"


# --- small: message size ------------------------------------------------------------------------


async def test_a_message_of_exactly_64_kib_is_allowed(client):
    ws = await client.ws_connect("/ws")
    message = json.dumps({"type": "cancel", "pad": ""})
    await ws.send_str(message[:-2] + "x" * (65536 - len(message)) + '"}')
    msg = await ws.receive()
    assert msg.type == WSMsgType.TEXT and json.loads(msg.data)["type"] == "cancelled"  # answered, not closed


# --- D4: images the codec cannot encode -------------------------------------------------------------


@pytest.mark.parametrize("width", [65536, 70000])
async def test_an_upload_wider_than_the_codec_allows_is_refused(client, config, width):
    line = np.zeros((1, width, 3), np.uint8)
    resp = await client.post("/api/images", data=form(png_of(line)))
    body = await resp.json()
    assert resp.status == 413 and "65535" in body["error"] and uploads(config) == []


async def test_an_upload_at_the_codec_side_limit_streams(client, config):
    line = np.tile(np.arange(256, dtype=np.uint8), 65535 // 256 + 1)[:65535].reshape(1, 65535, 1)
    resp = await client.post("/api/images", data=form(png_of(line)))
    assert resp.status == 201
    stream = await client.get(f"/api/images/{(await resp.json())['id']}/stream.hdn")
    assert stream.status == 200


# --- D6: malformed multipart part headers ------------------------------------------------------------


def multipart(part_headers: bytes, body: bytes) -> tuple[bytes, dict]:
    data = b"--XyZ\r\n" + part_headers + b"\r\n\r\n" + body + b"\r\n--XyZ--\r\n"
    return data, {"Content-Type": "multipart/form-data; boundary=XyZ"}


@pytest.mark.parametrize("headers", [
    b'Content-Disposition: form-data; name="file"; filename="a\x01b.png"',  # a control character
    b'Content-Disposition: form-data; name="file"; filename="a\rb.png"',  # a bare CR
    b'Content-Disposition: form-data; name="file"; filename="a.png"\r\nX-Pad: ' + b"p" * 9000,  # over 8190
], ids=["control-character", "bare-cr", "long-line"])
async def test_malformed_part_headers_are_400(client, config, headers, caplog):
    data, content_type = multipart(headers, png_of(smooth_image(8, 8, 3)))
    resp = await client.post("/api/images", data=data, headers=content_type)
    assert resp.status == 400 and "multipart" in (await resp.json())["error"] and uploads(config) == []
    assert "Traceback" not in caplog.text


# --- D7: long static paths ------------------------------------------------------------------------


async def test_an_overlong_static_path_is_404(client):
    resp = await client.get("/static/" + "a" * 300)
    assert resp.status == 404 and "no static file" in (await resp.json())["error"]


# --- D8: 16-bit colour PNGs ---------------------------------------------------------------------


def png16(width: int, height: int, colour_type: int, channels: int) -> bytes:
    """A 16-bit PNG (Pillow opens 16-bit RGB and RGBA as 8-bit modes)."""
    import struct
    import zlib

    rows = b"".join(b"\x00" + np.full(width * channels, 40000, ">u2").tobytes() for _ in range(height))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("colour_type, channels", [(2, 3), (6, 4), (4, 2)], ids=["RGB", "RGBA", "LA"])
async def test_sixteen_bit_colour_png_is_415(client, config, colour_type, channels):
    resp = await client.post("/api/images", data=form(png16(8, 6, colour_type, channels)))
    assert resp.status == 415 and "16-bit" in (await resp.json())["error"] and uploads(config) == []


async def test_one_client_sends_at_most_two_uploads_at_once_and_others_still_upload(aiohttp_client, config, clock,
                                                                                     monkeypatch):
    """Uploads are spooled to an unnamed file, not held in memory (16 uploads of 150 MB at once held
    4.95 GiB), and one client sends at most ``max_client_uploads`` at once: a third is 429 with the
    reason, while another client (the address the trusted proxy forwards) still uploads."""
    import threading

    from server.views import api

    gate, decoding = threading.Event(), []
    real = api._decode_upload

    def held(spool, max_pixels):
        decoding.append(spool)
        gate.wait(30)
        return real(spool, max_pixels)

    monkeypatch.setattr(api, "_decode_upload", held)
    client = await aiohttp_client(create_app(replace(config, workers=4, forwarded_allow_ips=("127.0.0.1",)),
                                             clock=clock))
    alice, bob = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "198.51.100.2"}
    pngs = [png_of(smooth_image(16, 16, 3, seed=200 + i)) for i in range(4)]
    first = [asyncio.ensure_future(client.post("/api/images", data=form(p), headers=alice)) for p in pngs[:2]]
    while len(decoding) < 2:
        await asyncio.sleep(0.01)
    assert set(os.listdir(config.data_dir)) <= {"cache", "uploads"}  # the spools are unnamed files
    third = await client.post("/api/images", data=form(pngs[2]), headers=alice)
    assert third.status == 429
    assert "this client is already sending 2 uploads (at most 2 at once)" in (await third.json())["error"]
    other = asyncio.ensure_future(client.post("/api/images", data=form(pngs[3]), headers=bob))
    while len(decoding) < 3:
        await asyncio.sleep(0.01)
    gate.set()
    assert [r.status for r in await asyncio.gather(*first, other)] == [201, 201, 201]
    assert (await client.post("/api/images", data=form(pngs[2]), headers=alice)).status == 201  # room again
    assert set(os.listdir(config.data_dir)) == {"cache", "uploads"}  # no spool left behind


async def test_a_slow_disk_does_not_stall_the_server_while_an_upload_is_spooled(aiohttp_client, config, clock,
                                                                                  monkeypatch):
    """A data directory on a slow (network) file system: while an upload's bytes are being written,
    other requests are answered. Before the fix the write ran on the event loop, which then
    answered nothing until the write ended (here: the 5 s this fake disk waits for the test)."""
    disk = SlowDisk(monkeypatch)
    client = await aiohttp_client(create_app(config, clock=clock))
    pixels = smooth_image(24, 32, 3, seed=5)
    upload = asyncio.ensure_future(client.post("/api/images", data=form(png_of(pixels))))
    await disk.wait_entered()
    response = await client.get("/api/images")  # answered while the write waits
    assert response.status == 200
    disk.release.set()
    assert (await upload).status == 201 and not disk.timed_out
    assert image_id(pixels) + ".png" in uploads(config)


async def test_an_upload_the_disk_has_no_room_for_is_507_with_the_reason(aiohttp_client, config, clock, monkeypatch):
    import errno

    from server.keys import PEERS
    from server.storage import spool

    class Full:
        def __init__(self, *args, **kwargs) -> None:
            self.closed = False

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def flush(self) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(spool.tempfile, "TemporaryFile", Full)
    client = await aiohttp_client(create_app(config, clock=clock))
    response = await client.post("/api/images", data=form(png_of(smooth_image(16, 16, 3, seed=1))))
    assert response.status == 507 and "No space left on device" in (await response.json())["error"]
    assert uploads(config) == [] and len(client.app[PEERS]) == 0
    monkeypatch.undo()  # room again
    assert (await client.post("/api/images", data=form(png_of(smooth_image(16, 16, 3, seed=1))))).status == 201


# --- D9: the upload store's races (many uploads at once: one client here, its cap raised) --------------

MANY = 32  # ``max_client_uploads`` for these tests: the races, not the per-client cap, are what they test


async def test_the_upload_cap_holds_under_concurrent_distinct_uploads(aiohttp_client, config, clock):
    client = await aiohttp_client(create_app(replace(config, max_uploads=5, workers=4, max_client_uploads=MANY),
                                             clock=clock))
    for seed in range(4):
        assert (await client.post("/api/images", data=form(png_of(smooth_image(8, 8, 3, seed=seed))))).status == 201
    pngs = [png_of(smooth_image(24, 24, 3, seed=100 + i)) for i in range(10)]
    responses = await asyncio.gather(*(client.post("/api/images", data=form(p)) for p in pngs))
    assert sorted(r.status for r in responses) == [201] + [507] * 9
    assert len(uploads(config)) == 2 * 5


async def test_concurrent_uploads_of_one_image_create_it_once(aiohttp_client, config, clock):
    client = await aiohttp_client(create_app(replace(config, workers=4, max_client_uploads=MANY), clock=clock))
    data = png_of(smooth_image(64, 64, 3, seed=7))
    responses = await asyncio.gather(*(client.post("/api/images", data=form(data)) for _ in range(20)))
    assert sorted(r.status for r in responses) == [200] * 19 + [201]
    assert len({(await r.json())["id"] for r in responses}) == 1 and len(uploads(config)) == 2


async def test_the_cap_and_de_duplication_hold_across_two_servers_on_one_data_dir(aiohttp_client, config, clock):
    """Two apps, two stores, one data directory: only the file system is shared (as between processes)."""
    cfg = replace(config, max_uploads=3, workers=2, max_client_uploads=MANY)
    a = await aiohttp_client(create_app(cfg, clock=clock))
    b = await aiohttp_client(create_app(cfg, clock=clock))
    same = png_of(smooth_image(32, 32, 3, seed=1))
    responses = await asyncio.gather(*(c.post("/api/images", data=form(same)) for c in (a, b) * 4))
    assert sorted(r.status for r in responses) == [200] * 7 + [201]
    distinct = [png_of(smooth_image(32, 32, 3, seed=50 + i)) for i in range(6)]
    responses = await asyncio.gather(*(c.post("/api/images", data=form(p)) for c, p in zip((a, b) * 3, distinct)))
    assert sorted(r.status for r in responses) == [201] * 2 + [507] * 4
    assert len(uploads(config)) == 2 * 3


# --- D10: a cache file bound to its image --------------------------------------------------------------


async def copy_stream(client, src: str, dst: str) -> None:
    """Encode both streams, then copy the first's cache file over the second's."""
    for iid in (src, dst):  # read whole: a stream is cached once it has all been sent
        resp = await client.get(f"/api/images/{iid}/stream.hdn")
        assert resp.status == 200 and await resp.read()
    cache = client.app[CACHE].directory
    (src_file,) = cache.glob(f"{src}.*.hdn")
    (dst_file,) = cache.glob(f"{dst}.*.hdn")
    dst_file.write_bytes(src_file.read_bytes())


async def test_a_cache_file_of_another_image_of_the_same_size_is_re_encoded(aiohttp_client, config, clock, images_dir):
    a, b = smooth_image(40, 56, 3, seed=21), smooth_image(40, 56, 3, seed=22)
    (images_dir / "a.png").write_bytes(png_of(a))
    (images_dir / "b.png").write_bytes(png_of(b))
    client = await aiohttp_client(create_app(config, clock=clock))
    await copy_stream(client, image_id(a), image_id(b))
    client = await aiohttp_client(create_app(config, clock=clock))  # a new process: nothing in memory
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "start", "image": image_id(b), "preview": False})
    messages = await receive_stream(ws)
    assert messages[-1]["type"] == "done" and np.array_equal(frame_pixels(messages[-2]), b)
    assert client.app[STATS].cache_corrupt == 1


async def test_a_cache_file_of_another_shape_is_re_encoded(aiohttp_client, config, clock, rgb_id, grey):
    client = await aiohttp_client(create_app(config, clock=clock))
    await copy_stream(client, image_id(grey), rgb_id)
    client = await aiohttp_client(create_app(config, clock=clock))
    good = await client.get(f"/api/images/{rgb_id}/stream.hdn")
    assert good.status == 200 and client.app[STATS].cache_corrupt == 1
    from hidenet_core.codec.container import parse_header

    assert parse_header(await good.read())[0].channels == 3


# --- D12: temporary files of a writer killed mid-write -----------------------------------------------


async def test_abandoned_temporary_files_are_swept_at_start_up(aiohttp_client, config, clock):
    cache, store = config.data_dir / "cache", config.data_dir / "uploads"
    for d in (cache, store):
        d.mkdir(parents=True)
    abandoned = [cache / ".x.hdn.abc.part", store / ".y.png.def.part"]
    for p in abandoned:
        p.write_bytes(b"half")
        os.utime(p, (time.time() - 60, time.time() - 60))
    busy = cache / ".z.hdn.ghi.part"  # another process is writing it right now: locked
    busy.write_bytes(b"in progress")
    os.utime(busy, (time.time() - 60, time.time() - 60))
    with open(busy, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        await aiohttp_client(create_app(config, clock=clock))
        assert not any(p.exists() for p in abandoned) and busy.exists()


# --- D13: no server path in what a client sees; a vanished image is 410 --------------------------------


async def test_a_vanished_upload_is_410_and_no_message_names_a_server_path(aiohttp_client, config, clock):
    pixels = smooth_image(20, 30, 3, seed=31)
    client = await aiohttp_client(create_app(config, clock=clock))
    iid = (await (await client.post("/api/images", data=form(png_of(pixels)))).json())["id"]
    for _ in range(600):  # its stream is encoded in the background and cached: that must not be served either
        if (await (await client.get(f"/api/images/{iid}")).json())["encoding"] is None:
            break
        await asyncio.sleep(0.05)
    assert list((config.data_dir / "cache").rglob("*.hdn")), "the upload's stream was not cached"
    client = await aiohttp_client(create_app(config, clock=clock))  # nothing of it in memory
    (config.data_dir / "uploads" / f"{iid}.png").unlink()
    secret = str(config.data_dir)
    for route in ("original.png", "thumbnail.png", "stream.hdn"):
        resp = await client.get(f"/api/images/{iid}/{route}")
        text = await resp.text()
        assert resp.status == 410 and iid in json.loads(text)["error"] and secret not in text, (route, text)
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "start", "image": iid})
    raw = [m for m in await receive_stream(ws) if isinstance(m, dict)]
    assert raw[-1]["type"] == "error" and raw[-1]["code"] == "not_found" and secret not in json.dumps(raw)


# --- small ones -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["\uff11", "+1", " 1", "1_0", "\u0661"])
async def test_stream_download_takes_ascii_digits_only(client, rgb_id, value):
    resp = await client.get(f"/api/images/{rgb_id}/stream.hdn", params={"max_error": value})
    assert resp.status == 400 and "max_error" in (await resp.json())["error"]


@pytest.mark.parametrize("request_bytes", [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
    b"G\x00T / HTTP/1.1\r\n\r\n",
], ids=["no-colon", "long-header", "bad-method"])
async def test_parser_level_errors_are_json(client, request_bytes):
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(request_bytes)
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.split(b" ")[1].startswith(b"4") and b"application/json" in head, response[:300]
    assert json.loads(body)["error"]

