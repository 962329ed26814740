"""Encodes tied to the clients who wait for them: shared, cancelled when abandoned, capped (busy),
started in the background after an upload; and the 1:1 view's region requests.

The encoder is gated (``gate``) so that a test decides when each chunk may be made: no test
depends on how fast this machine encodes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time

import numpy as np
import pytest
import pytest_asyncio
from aiohttp import ClientPayloadError, ClientSession, FormData, WSMsgType, web

from hidenet_core import ProgressiveDecoder
from hidenet_core.codec.container import stream_info
from server import create_app
from server.keys import MODEL, SOURCES, STATS
from server.storage.store import image_id
from server.streaming import source as source_module
from server.streaming.stream import stream_key
from tests.server.conftest import frame_pixels, png_of, receive_meta, receive_stream

pytestmark = pytest.mark.asyncio


class Gate:
    """Lets the encoder make the header and ``allowed`` chunks, then holds it until ``open()``."""

    def __init__(self, allowed: int = 1) -> None:
        self.allowed, self._open = allowed, threading.Event()

    def open(self) -> None:
        self._open.set()

    def wrap(self, encode_chunks):
        def gated(pixels, model, settings, cancelled):
            for made, piece in enumerate(encode_chunks(pixels, model, settings, cancelled=cancelled)):
                if made > self.allowed:  # the header is piece 0
                    deadline = time.monotonic() + 30
                    # a cancelled encode goes on at once, as a real one stops within a channel
                    while not self._open.wait(0.01) and not cancelled() and time.monotonic() < deadline:
                        pass
                yield piece
        return gated


@pytest.fixture
def gate(monkeypatch) -> Gate:
    g = Gate()
    monkeypatch.setattr(source_module, "encode_chunks", g.wrap(source_module.encode_chunks))
    yield g
    g.open()  # never leave an encode thread waiting


@pytest_asyncio.fixture
async def app_client(aiohttp_client, config, clock):
    async def make(**changes):
        return await aiohttp_client(create_app(dataclasses.replace(config, **changes), clock=clock))
    return make


def form(data: bytes) -> FormData:
    f = FormData()
    f.add_field("file", data, filename="upload.png", content_type="application/octet-stream")
    return f


def start(image: str, **fields) -> dict:
    return {"type": "start", "image": image, **fields}


async def until(condition, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def opened(client, headers: dict, image: str, **fields):
    """A socket of the client ``headers`` name, its stream of ``image`` started (its meta received)."""
    ws = await client.ws_connect("/ws", headers=headers)
    await ws.send_json(start(image, **fields))
    assert (await receive_meta(ws))["type"] == "meta"
    return ws


def cache_files(config) -> list:
    return sorted((config.data_dir / "cache").glob("*.hdn"))


@pytest.mark.parametrize("turns", range(8))
async def test_a_wait_for_a_chunk_cancelled_in_the_turn_the_chunk_comes_ends_cancelled(rgb, turns):
    """A stream's renderer waits for its next chunk (``StreamSource.wait``) and is cancelled (a
    ``start`` replaces its stream) in the same turns of the loop in which the chunk is added: it
    ends cancelled, whichever turn it is. With ``asyncio.wait_for`` (Python 3.11) one of these
    turns lost the cancel: the stream went on waiting for chunks, and the socket's next ``start``
    waited for its encode to end."""
    from hidenet_core import load_model
    from hidenet_core.codec.encoder import encode_chunks
    from server.storage.cache import StreamKey
    from server.streaming.source import StreamSource

    pieces = encode_chunks(rgb, load_model("interp"))
    source = StreamSource(StreamKey("0" * 32, "test", 0, 0))
    source.add(next(pieces), 0.0)  # the header
    waiting = asyncio.create_task(source.wait(0, 30))
    await asyncio.sleep(0)  # it waits for chunk 0
    source.add(next(pieces), 0.0)
    for _ in range(turns):
        await asyncio.sleep(0)
    if waiting.cancel():  # not done yet: the cancel must not be lost
        with pytest.raises(asyncio.CancelledError):
            await waiting
    else:
        assert waiting.result() is True


async def test_an_abandoned_encode_is_cancelled_and_nothing_is_cached(app_client, config, rgb_id, gate):
    client = await app_client()
    app = client.server.app
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, preview=False))
    assert (await receive_meta(ws))["encoding"] is True
    level = await receive_meta(ws)
    assert level["type"] == "level" and level["index"] == 0
    await ws.close()  # the only viewer leaves while the encoder waits at the gate
    await until(lambda: all(source.cancel.is_set() for source in app[SOURCES]))  # the server noticed
    gate.open()
    await until(lambda: app[SOURCES].encoding == 0 and len(app[SOURCES]) == 0)
    assert app[STATS].encodes_cancelled == 1 and cache_files(config) == []


async def test_the_same_stream_asked_again_while_its_encode_stops_gets_a_fresh_encode(app_client, config, rgb,
                                                                                       rgb_id, gate):
    """A replay, another link or a reload during a first view stops the stream (its encode is
    cancelled: nobody else waits for it) and asks for the same stream again: it waits for the old
    encode to stop, then starts a new one, instead of joining the one being cancelled."""
    client = await app_client()
    app = client.server.app
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, preview=False))
    assert (await receive_meta(ws))["encoding"] is True
    await ws.send_json(start(rgb_id, preview=False, link="4g"))  # the same stream: only the link changed
    while True:  # what the first stream still sent, then the second's meta
        msg = await asyncio.wait_for(ws.receive(), 30)
        if msg.type == WSMsgType.TEXT and json.loads(msg.data)["type"] in ("meta", "error"):
            break
    assert json.loads(msg.data)["type"] == "meta", msg.data
    gate.open()
    messages = await receive_stream(ws)
    assert messages[-1]["type"] == "done", messages[-1]
    assert np.array_equal(frame_pixels(messages[-2]), rgb)
    assert app[STATS].encodes_cancelled == 1 and app[STATS].cache_misses == 2 and len(cache_files(config)) == 1


@pytest_asyncio.fixture
async def deployed(config, clock):
    """The app on loopback as ``hidenet serve`` runs it: aiohttp's runner with ``web.run_app``'s
    defaults, where a handler is not cancelled when its client leaves (the test client's server
    cancels it, which would hide a download that never notices). Yields (app, base URL)."""
    runner = web.AppRunner(create_app(config, clock=clock))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield runner.app, f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_a_cut_off_download_cancels_its_encode(deployed, config, rgb_id, gate):
    app, base = deployed
    gate.allowed = 0  # the header only: the handler then waits for the encoder, with nothing to write
    async with ClientSession() as session:
        response = await session.get(f"{base}/api/images/{rgb_id}/stream.hdn")
        assert response.status == 200 and response.headers.get("Content-Length") is None  # chunked: still encoding
        assert len(await response.content.readany()) > 0  # the header, at once
        response.close()
        # noticed while the encoder still waits at the gate, not at a next write that never comes
        await until(lambda: all(source.cancel.is_set() for source in app[SOURCES]), timeout=10)
    gate.open()
    await until(lambda: app[SOURCES].encoding == 0 and len(app[SOURCES]) == 0)
    assert app[STATS].encodes_cancelled == 1 and cache_files(config) == []


async def test_a_download_whose_client_leaves_before_the_header_cancels_its_encode(deployed, config, rgb_id, gate):
    app, base = deployed
    gate.allowed = -1  # not even the header: the handler waits for it
    async with ClientSession() as session:
        asking = asyncio.create_task(session.get(f"{base}/api/images/{rgb_id}/stream.hdn"))
        await until(lambda: app[SOURCES].encoding == 1)
        asking.cancel()  # the client gives up and closes the connection
        await until(lambda: all(source.cancel.is_set() for source in app[SOURCES]), timeout=10)
    gate.open()
    await until(lambda: app[SOURCES].encoding == 0 and len(app[SOURCES]) == 0)
    assert app[STATS].encodes_cancelled == 1 and cache_files(config) == []


async def test_a_download_whose_encode_fails_midway_is_not_a_whole_response(app_client, config, rgb_id, monkeypatch):
    """The chunked response ends without its final chunk, so that no client (curl, a browser,
    a caching proxy) takes the truncated stream for a whole one."""
    real = source_module.encode_chunks

    def failing(pixels, model, settings, cancelled):
        for made, piece in enumerate(real(pixels, model, settings, cancelled=cancelled)):
            if made == 2:
                raise RuntimeError("the encoder broke")
            yield piece

    monkeypatch.setattr(source_module, "encode_chunks", failing)
    client = await app_client()
    response = await client.get(f"/api/images/{rgb_id}/stream.hdn")
    assert response.status == 200 and response.headers.get("Content-Length") is None
    with pytest.raises(ClientPayloadError):
        await response.read()
    assert cache_files(config) == []


async def test_viewers_of_an_encode_in_progress_share_it_and_it_is_cached_once(app_client, config, rgb, rgb_id, gate):
    client = await app_client()
    app = client.server.app
    first, second = await client.ws_connect("/ws"), await client.ws_connect("/ws")
    await first.send_json(start(rgb_id, preview=False))
    await receive_meta(first)
    await second.send_json(start(rgb_id, preview=False))  # joins while the encoder waits at the gate
    assert (await receive_meta(second))["encoding"] is True
    gate.open()
    for ws in (first, second):
        messages = await receive_stream(ws)
        assert messages[-1]["type"] == "done"
        assert np.array_equal(frame_pixels(messages[-2]), rgb)
    assert app[STATS].cache_misses == 1 and len(cache_files(config)) == 1


async def test_past_the_encode_cap_a_first_view_is_told_busy_not_queued(app_client, rgb_id, grey, gate):
    client = await app_client(max_encodes=1)
    grey_id = image_id(grey)
    holder = await client.ws_connect("/ws")
    await holder.send_json(start(rgb_id, preview=False))  # takes the only encode slot, held at the gate
    await receive_meta(holder)

    ws = await client.ws_connect("/ws")
    await ws.send_json(start(grey_id))
    refused = await receive_meta(ws)
    assert refused["type"] == "error" and refused["code"] == "busy" and "try again" in refused["message"]
    assert refused["retry_ms"] == 3000  # when to ask again (the web viewer does)
    response = await client.get(f"/api/images/{grey_id}/stream.hdn")
    assert response.status == 503 and response.headers["Retry-After"] == "5"
    assert "busy" in (await response.json())["error"]
    assert client.server.app[STATS].encodes_refused == 2

    sharer = await client.ws_connect("/ws")  # the stream being encoded is not a new encode: it is shared
    await sharer.send_json(start(rgb_id, preview=False))
    assert (await receive_meta(sharer))["type"] == "meta"
    gate.open()
    assert (await receive_stream(holder))[-1]["type"] == "done"
    assert (await receive_stream(sharer))[-1]["type"] == "done"
    await ws.send_json(start(grey_id))  # the slot is free again
    assert (await receive_stream(ws))[-1]["type"] == "done"


async def test_one_client_starts_one_new_encode_at_a_time_and_leaves_the_other_slot_to_others(app_client, rgb_id,
                                                                                              grey, gate):
    """Two encode slots, and one client (Alice, by the address her proxy forwards) asking for two
    streams not encoded yet: the second is refused, by websocket or download, with the reason,
    while Bob's first view takes the other slot. Changing her mode during her first view is not
    refused: the encode she no longer wants does not count."""
    client = await app_client(forwarded_allow_ips=("127.0.0.1",))
    alice, bob = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "198.51.100.2"}
    grey_id = image_id(grey)
    first = await opened(client, alice, rgb_id, preview=False)  # her encode, held at the gate

    second = await client.ws_connect("/ws", headers=alice)
    await second.send_json(start(grey_id))
    refused = await receive_meta(second)
    assert refused["code"] == "busy" and "this client already has 1 new stream being encoded" in refused["message"]
    response = await client.get(f"/api/images/{grey_id}/stream.hdn", headers=alice)
    assert response.status == 503 and "this client already has 1" in (await response.json())["error"]

    await first.send_json(start(rgb_id, preview=False, max_error=2))  # a new mode: the old encode is let go
    # the old stream's last messages (its first chunk's level and frame) may still precede the new meta
    assert (await receive_stream(first, until="meta"))[-1]["type"] == "meta"

    other = await client.ws_connect("/ws", headers=bob)
    for _ in range(200):  # the encode Alice let go stops within a channel's coding: its slot is then free
        if client.server.app[SOURCES].encoding < 2:
            break
        await asyncio.sleep(0.02)
    await other.send_json(start(grey_id))
    assert (await receive_meta(other))["type"] == "meta"
    gate.open()
    for ws in (first, other):
        assert (await receive_stream(ws))[-1]["type"] == "done"


async def test_an_encode_whose_owner_left_counts_for_a_client_still_watching_it(app_client, rgb_id, grey, gate):
    """Alice's first view starts an encode and Bob joins it; Alice leaves while Bob still watches.
    The encode goes on for Bob and now counts toward his cap, not hers: before, Alice was told
    "busy" for her next first view until Bob's stream ended (a minute at 12 MP)."""
    client = await app_client(forwarded_allow_ips=("127.0.0.1",), max_encodes=3)
    alice, bob = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "198.51.100.2"}
    grey_id = image_id(grey)
    hers = await opened(client, alice, rgb_id, preview=False)  # her encode, held at the gate
    his = await opened(client, bob, rgb_id, preview=False)  # shares it
    sources = client.server.app[SOURCES]
    assert (sources.encodes_of("203.0.113.7"), sources.encodes_of("198.51.100.2")) == (1, 0)
    await hers.close()
    await until(lambda: sources.encodes_of("203.0.113.7") == 0)
    assert sources.encodes_of("198.51.100.2") == 1  # the encode goes on, for Bob

    again = await opened(client, alice, grey_id)  # her next first view: not busy
    more = await client.ws_connect("/ws", headers=bob)
    await more.send_json(start(grey_id, max_error=2))  # Bob's own cap now holds the encode he watches
    refused = await receive_meta(more)
    assert refused["code"] == "busy" and "this client already has 1 new stream being encoded" in refused["message"]
    gate.open()
    for ws in (his, again):
        assert (await receive_stream(ws))[-1]["type"] == "done"


async def test_an_uploads_encode_counts_for_whoever_watches_it_and_returns_to_its_uploader(app_client, rgb_id,
                                                                                            gate):
    """Alice's upload is encoded in the background and Bob watches it: it counts toward Bob's cap,
    not Alice's, who views another stream without "busy". Once nobody watches it again, it is
    Alice's again: Bob's next first view does not cancel her upload's encode."""
    client = await app_client(forwarded_allow_ips=("127.0.0.1",), max_encodes=4)
    sources = client.server.app[SOURCES]
    alice, bob = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "198.51.100.2"}
    pixels = np.random.default_rng(9).integers(0, 256, (40, 48, 3), np.uint8)
    response = await client.post("/api/images", data=form(png_of(pixels)), headers=alice)
    assert response.status == 201
    upload = (await response.json())["id"]
    assert sources.encodes_of("203.0.113.7") == 1  # her background encode, held at the gate
    his = await opened(client, bob, upload)
    assert (sources.encodes_of("203.0.113.7"), sources.encodes_of("198.51.100.2")) == (0, 1)
    hers = await opened(client, alice, rgb_id, preview=False)  # not busy: the upload's encode is Bob's now
    await his.close()  # nobody watches the upload's encode: Alice's again, still running
    await until(lambda: sources.encodes_of("198.51.100.2") == 0)
    assert sources.encodes_of("203.0.113.7") == 2
    again = await opened(client, bob, rgb_id, preview=False, max_error=3)  # Bob's own first view: his slot
    running = [s for s in sources if s.key.image_id == upload]
    assert running and not running[0].cancel.is_set()  # Alice's upload is still being encoded
    gate.open()
    for ws in (hers, again):
        assert (await receive_stream(ws))[-1]["type"] == "done"


async def test_an_upload_is_encoded_in_the_background_and_its_progress_shown(app_client, config, gate):
    client = await app_client()
    pixels = np.random.default_rng(5).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    response = await client.post("/api/images", data=form(png_of(pixels)))
    assert response.status == 201, await response.text()
    image = (await response.json())["id"]
    progress = (await (await client.get(f"/api/images/{image}")).json())["encoding"]
    assert progress is not None and progress["chunks_done"] == 0  # at first the chunk count may be unknown
    async with asyncio.timeout(30):
        while progress["chunks"] is None or progress["chunks_done"] < 1:  # the gate holds it after one chunk
            await asyncio.sleep(0.02)
            progress = (await (await client.get(f"/api/images/{image}")).json())["encoding"]
    assert progress["chunks_done"] == 1 < progress["chunks"]
    gate.open()

    async def encoded() -> bool:
        return (await (await client.get(f"/api/images/{image}")).json())["encoding"] is None

    async with asyncio.timeout(30):
        while not await encoded():
            await asyncio.sleep(0.05)
    assert len(cache_files(config)) == 1
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(image))
    meta = await receive_meta(ws)
    assert meta["encoding"] is False and meta["total_bytes"] > 0  # the first view reads the cache
    assert client.server.app[STATS].cache_hits == 1


async def test_background_encodes_of_uploads_leave_the_last_encode_slot_to_viewers(app_client, rgb_id, gate):
    """Two uploads in a row, each encoded in the background: the first takes one of the two
    slots, the second is not encoded then (nobody waits for it; its first view will), and a
    viewer's first view still finds a slot. Before, two uploads of 40 MP photographs held both
    slots for minutes and every first view was told "busy"."""
    client = await app_client(forwarded_allow_ips=("127.0.0.1",))
    sources = client.server.app[SOURCES]
    rng = np.random.default_rng(8)
    ids = []
    for who in ("203.0.113.7", "198.51.100.9"):  # two clients upload
        response = await client.post("/api/images", data=form(png_of(rng.integers(0, 256, (40, 48, 3), np.uint8))),
                                     headers={"X-Forwarded-For": who})
        assert response.status == 201
        ids.append((await response.json())["id"])
    cards = [(await (await client.get(f"/api/images/{i}")).json())["encoding"] for i in ids]
    assert cards[0] is not None and cards[1] is None and sources.encoding == 1
    # the background encode is its uploader's: the uploader's own first view of another stream
    # lets it go (its viewer comes first) rather than being told "busy"
    uploader = await client.ws_connect("/ws", headers={"X-Forwarded-For": "203.0.113.7"})
    await uploader.send_json(start(rgb_id, max_error=2))
    assert (await receive_meta(uploader))["type"] == "meta"
    async with asyncio.timeout(30):
        while sources.encoding > 1:  # the background encode stops within a channel's coding
            await asyncio.sleep(0.02)
    ws = await client.ws_connect("/ws", headers={"X-Forwarded-For": "198.51.100.9"})
    await ws.send_json(start(rgb_id, max_error=1))  # another client's first view: the slot left free
    assert (await receive_meta(ws))["type"] == "meta"
    gate.open()
    for viewer in (uploader, ws):
        assert (await receive_stream(viewer))[-1]["type"] == "done"
    assert (await (await client.get(f"/api/images/{ids[0]}")).json())["encoding"] is None  # let go


async def test_a_one_pixel_upload_streams_to_a_viewer_of_any_size(app_client):
    client = await app_client(encode_uploads=False)
    pixel = np.array([[[200, 100, 50]]], dtype=np.uint8)
    response = await client.post("/api/images", data=form(png_of(pixel)))
    assert response.status == 201, await response.text()
    image = (await response.json())["id"]
    for frame in ({"width": 1280, "height": 800}, {"width": 1, "height": 1}):
        ws = await client.ws_connect("/ws")
        await ws.send_json(start(image, frame=frame))
        messages = await receive_stream(ws)
        assert messages[-1]["type"] == "done", messages[-1]
        assert np.array_equal(frame_pixels(messages[-2]), pixel)
        await ws.close()


async def test_a_contender_that_cannot_code_the_image_is_refused_with_the_reason(app_client):
    """WebP codes at most 16383 pixels a side: a race of a wider image against it is refused
    at start, with the limit, instead of failing midway as an 'internal' error."""
    client = await app_client(encode_uploads=False)
    wide = np.random.default_rng(7).integers(0, 256, (2, 16384, 3), dtype=np.uint8)
    response = await client.post("/api/images", data=form(png_of(wide)))
    assert response.status == 201, await response.text()
    ws = await client.ws_connect("/ws")
    await ws.send_json(start((await response.json())["id"], contenders=["webp"]))
    refused = await receive_meta(ws)
    assert refused["type"] == "error" and refused["code"] == "bad_request", refused
    assert "16383 pixels a side" in refused["message"] and "webp:80" in refused["message"]


async def test_without_background_encoding_an_upload_waits_for_its_first_view(app_client, config):
    client = await app_client(encode_uploads=False)
    pixels = np.random.default_rng(6).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    response = await client.post("/api/images", data=form(png_of(pixels)))
    image = (await response.json())["id"]
    await asyncio.sleep(0.2)
    assert (await (await client.get(f"/api/images/{image}")).json())["encoding"] is None
    assert cache_files(config) == []


async def test_a_region_request_gets_the_exact_pixels_of_the_latest_picture(app_client, rgb, rgb_id):
    client = await app_client()
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, frame={"width": 28, "height": 20}))
    messages = await receive_stream(ws)
    levels = [m for m in messages if isinstance(m, dict) and m["type"] == "level"]
    assert all(m["frame_width"] <= 28 and m["frame_height"] <= 20 for m in levels)  # fit frames: display size
    await ws.send_json({"type": "region", "x": 10, "y": 5, "width": 30, "height": 100})
    region = await receive_meta(ws)
    png = await ws.receive_bytes()
    assert (region["type"], region["x"], region["y"], region["width"], region["height"]) == ("region", 10, 5, 30, 35)
    assert region["index"] == levels[-1]["index"]  # the last chunk's picture
    assert region["frame_bytes"] == len(png) and np.array_equal(frame_pixels(png), rgb[5:40, 10:40])  # clipped


async def test_frames_for_a_display_skip_the_levels_finer_than_it(app_client, rgb, rgb_id):
    """A 28x20 display of a 56x40 image is made from level 1: level 0's chunks are not decoded
    (no decode time) and their frame is the one before; the 1:1 region is still exact. (A second
    view at another display size: the first view's frames came from the encoder's state.)"""
    client = await app_client()
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, frame={"width": 28, "height": 20}))
    await receive_stream(ws)
    await ws.send_json(start(rgb_id, frame={"width": 27, "height": 20}))  # level 1 too, not cached for this size
    messages = await receive_stream(ws)
    pairs = [(m, messages[i + 1]) for i, m in enumerate(messages) if isinstance(m, dict) and m["type"] == "level"]
    finest = [i for i, (m, _) in enumerate(pairs) if m["level"] == 0]
    assert finest and all(pairs[i][0]["decode_ms"] == 0 for i in finest)
    assert all(pairs[i][1] == pairs[i - 1][1] and pairs[i][0]["psnr"] == pairs[i - 1][0]["psnr"] for i in finest)
    assert any(m["decode_ms"] > 0 for m, _ in pairs if m["level"] > 0)
    await ws.send_json({"type": "region", "x": 0, "y": 0, "width": 56, "height": 40})
    await receive_meta(ws)
    assert np.array_equal(frame_pixels(await ws.receive_bytes()), rgb)


async def test_a_first_views_frames_come_from_the_encoders_state_as_a_decoder_would_render_them(app_client, rgb_id):
    """During the encode nothing is decoded (every frame's decode time is 0); the frames are
    byte for byte those a later view decodes (28x21 shows the image at 28x20, like 28x20)."""
    client = await app_client()
    ws = await client.ws_connect("/ws")

    async def frames(size):
        await ws.send_json(start(rgb_id, frame={"width": size[0], "height": size[1]}))
        messages = await receive_stream(ws)
        return [(m, messages[i + 1]) for i, m in enumerate(messages) if isinstance(m, dict) and m["type"] == "level"]

    first = await frames((28, 20))
    assert all(m["decode_ms"] == 0 and not m["shared"] and m["frame_from"] == "encoder" for m, _ in first)
    decoded = await frames((28, 21))
    assert any(m["decode_ms"] > 0 for m, _ in decoded) and {m["frame_from"] for m, _ in decoded} == {"decoder"}
    assert [(m["psnr"], m["ssim"], png) for m, png in first] == [(m["psnr"], m["ssim"], png) for m, png in decoded]


async def test_a_race_first_view_renders_model_frames_beside_the_encoder_not_on_its_thread(app_client, rgb_id,
                                                                                           monkeypatch):
    """A race measures hideNet's full-size picture, by the model up to 2 MP: seconds a frame,
    which the encoder would wait for on its thread, delaying hideNet's own chunks in the race.
    Those frames are decoded in the worker instead; above 2 MP (bilinear, cheap) they come from
    the encoder's state, as a displayed frame's do."""
    from server.streaming import frames as frames_module

    client = await app_client()
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, frame={"width": 28, "height": 20}, contenders=["pjpeg"]))
    messages = await receive_stream(ws)
    levels = [m for m in messages if isinstance(m, dict) and m["type"] == "level"]
    assert levels and {m["frame_from"] for m in levels} == {"decoder"}

    monkeypatch.setattr(frames_module, "MODEL_FRAME_PIXELS", 100)  # this image is "large" now: bilinear
    await ws.send_json(start(rgb_id, frame={"width": 28, "height": 20}, contenders=["pjpeg"], max_error=1))
    messages = await receive_stream(ws)
    levels = [m for m in messages if isinstance(m, dict) and m["type"] == "level"]
    assert levels and {m["frame_from"] for m in levels} == {"encoder"}


async def test_a_region_far_behind_comes_predicted_at_once_then_exact(app_client, rgb, rgb_id, monkeypatch):
    """While the decoder of every level lags (here: always), the region first comes from the
    frames' decoder, its level 0 predicted (level 1, the even pixels, exact), then exact. (A
    near-lossless stream whose final picture is not kept: the final picture of a lossless one is the
    original, and a kept one is answered at once too.)"""
    monkeypatch.setattr("server.streaming.stream.REGION_LAG_BYTES", 0)
    monkeypatch.setattr("server.streaming.stream.LevelFrames._keeps_final", lambda self, header: False)
    client = await app_client()
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, frame={"width": 28, "height": 20}, max_error=2))
    await receive_stream(ws)
    await ws.send_json({"type": "region", "x": 0, "y": 0, "width": 56, "height": 40})
    first = await receive_meta(ws)
    predicted = frame_pixels(await ws.receive_bytes())
    second = await receive_meta(ws)
    exact = frame_pixels(await ws.receive_bytes())
    assert (first["type"], first["exact"], second["type"], second["exact"]) == ("region", False, "region", True)
    assert np.array_equal(predicted[::2, ::2], exact[::2, ::2]) and not np.array_equal(predicted, exact)
    assert np.abs(exact.astype(int) - rgb).max() <= 2 and not np.array_equal(exact, rgb)


async def test_a_finished_lossless_stream_answers_a_region_with_the_original_at_once(app_client, rgb, rgb_id,
                                                                                   monkeypatch):
    """Its final picture is the original: no decoder of every level is started, however far
    behind it would be, and the answer comes once, exact."""
    from server.streaming import stream as stream_module

    monkeypatch.setattr("server.streaming.stream.REGION_LAG_BYTES", 0)
    decoders = []  # the keyword arguments of every decoder the stream module starts

    def counted(*args, **kwargs):
        decoders.append(kwargs)
        return real(*args, **kwargs)

    real = stream_module.ProgressiveDecoder
    monkeypatch.setattr(stream_module, "ProgressiveDecoder", counted)
    client = await app_client()
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, frame={"width": 28, "height": 20}))
    await receive_stream(ws)
    await ws.send_json({"type": "region", "x": 3, "y": 2, "width": 50, "height": 30})
    answer = await receive_meta(ws)
    pixels = frame_pixels(await ws.receive_bytes())
    assert (answer["type"], answer["exact"]) == ("region", True)
    assert (answer["x"], answer["y"], answer["width"], answer["height"]) == (3, 2, 50, 30)
    assert np.array_equal(pixels, rgb[2:32, 3:53])
    with pytest.raises(asyncio.TimeoutError):  # answered once: no second, exact answer follows
        await ws.receive(timeout=0.3)
    assert [d.get("finest_level") for d in decoders] == [1]  # the frames' decoder only, down to level 1


async def test_a_frame_the_encoders_state_fails_to_render_is_decoded_instead(app_client, rgb_id, monkeypatch, caplog):
    """A tap that raises is dropped (logged): that chunk's frame and the later ones are decoded."""
    from server.streaming.stream import LevelFrames

    def broken(self, index, state):
        raise RuntimeError("no frame from the encoder")

    monkeypatch.setattr(LevelFrames, "tap", broken)
    client = await app_client()
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, frame={"width": 28, "height": 20}))
    messages = await receive_stream(ws)
    levels = [m for m in messages if isinstance(m, dict) and m["type"] == "level"]
    assert messages[-1]["type"] == "done" and levels and levels[0]["decode_ms"] > 0
    assert "could not be rendered from the encoder's state" in caplog.text


async def test_a_region_during_a_first_view_is_cut_from_the_encoders_state_after_its_next_chunk(app_client, rgb_id,
                                                                                               monkeypatch):
    """At 1:1 during a first view that keeps up with its encoder, no decoder of every level is
    started: the region comes from the encoder's state after the next chunk, once that chunk's
    own message has gone out, and equals what a decoder of that prefix shows there."""
    from hidenet_core import ProgressiveDecoder
    from server.streaming import stream as stream_module

    decoders = []
    real_decoder = stream_module.ProgressiveDecoder

    def counted(*args, **kwargs):
        decoders.append(kwargs)
        return real_decoder(*args, **kwargs)

    monkeypatch.setattr(stream_module, "ProgressiveDecoder", counted)
    gate = threading.Event()
    real = source_module.encode_chunks
    data = bytearray()

    def held(*args, **kwargs):
        for n, piece in enumerate(real(*args, **kwargs)):
            data.extend(piece.data)
            if n == 2:  # after the header and the first chunk: wait for the region request
                gate.wait(10)
            yield piece

    monkeypatch.setattr(source_module, "encode_chunks", held)
    client = await app_client()
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, frame={"width": 28, "height": 20}, link="unlimited"))
    assert (await receive_meta(ws))["type"] == "meta"
    first = await receive_meta(ws)
    assert first["type"] == "level" and first["index"] == 0
    await ws.receive_bytes()
    await ws.send_json({"type": "region", "x": 0, "y": 0, "width": 56, "height": 40})
    await asyncio.sleep(0.2)  # the request waits for the encoder's next chunk
    gate.set()
    messages = await receive_stream(ws, until="region")
    kinds = [(m["type"], m.get("index")) for m in messages if isinstance(m, dict)]
    assert kinds[0] == ("level", 1) and kinds[-1] == ("region", 1) and messages[-1]["exact"]  # chunk 1's picture
    region = frame_pixels(await ws.receive_bytes())
    await receive_stream(ws)  # the rest of the stream
    layout = stream_info(bytes(data))["chunks"]
    expected = ProgressiveDecoder(client.server.app[MODEL])
    expected.feed(bytes(data[: layout[1]["total_bytes"]]))
    assert np.array_equal(region, expected.region(0, 0, 40, 56))
    assert [d.get("finest_level") for d in decoders] == [1]  # the frames' decoder only


async def test_a_region_before_the_first_level_is_refused(app_client, rgb_id, monkeypatch):
    """Between ``start`` and the stream's first picture there is nothing to show at 1:1 (here
    the encoder is held after the header); the stream then goes on as if nothing was asked."""
    from server.streaming import source as source_module

    gate = threading.Event()
    real = source_module.encode_chunks

    def held(*args, **kwargs):
        pieces = real(*args, **kwargs)
        yield next(pieces)  # the header: meta goes out
        gate.wait(10)
        yield from pieces

    monkeypatch.setattr(source_module, "encode_chunks", held)
    client = await app_client()
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, frame={"width": 28, "height": 20}))
    assert (await receive_meta(ws))["type"] == "meta"
    await ws.send_json({"type": "region", "x": 0, "y": 0, "width": 10, "height": 10})
    error = await receive_meta(ws)
    assert error["type"] == "error" and error["code"] == "no_stream" and "first level" in error["message"]
    gate.set()
    messages = await receive_stream(ws)
    assert messages[-1]["type"] == "done"


async def test_a_region_before_any_stream_is_refused(app_client):
    client = await app_client()
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "region", "x": 0, "y": 0, "width": 10, "height": 10})
    error = await receive_meta(ws)
    assert error["type"] == "error" and error["code"] == "no_stream" and "send start first" in error["message"]


@pytest.mark.parametrize("fields, expected", [
    ({"x": 0, "y": 0, "width": 0, "height": 5}, "1x1"),
    ({"x": 0, "y": 0, "width": 5000, "height": 5000}, "4096x4096"),
    ({"x": -1, "y": 0, "width": 5, "height": 5}, "x"),
    ({"x": 0, "y": 0, "width": 5}, "missing"),
    ({"x": 0, "y": 0, "width": 5, "height": 5, "zoom": 2}, "unknown field"),
])
async def test_a_malformed_region_is_refused_with_the_reason(app_client, fields, expected):
    client = await app_client()
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "region", **fields})
    error = await receive_meta(ws)
    assert error["type"] == "error" and expected in error["message"]


async def test_a_region_nobody_waits_for_stops_decoding_and_keeps_what_it_decoded(app_client, rgb, rgb_id, monkeypatch):
    """The decoder of every level catches up a slice at a time and gives up when the region is
    no longer wanted (the session stopped); the next region goes on from where it stopped."""
    from hidenet_core import ProgressiveDecoder, encode
    from hidenet_core.codec.container import stream_info
    from server.keys import FRAMES, MODEL, STORE
    from server.streaming.frames import FrameSpec
    from server.streaming.stream import LevelFrames, stream_key

    monkeypatch.setattr("server.streaming.stream.REGION_FEED_BYTES", 64)
    client = await app_client()
    app = client.server.app
    data = encode(rgb, app[MODEL])
    frames = LevelFrames(app[MODEL], app[STORE], app[STORE].get(rgb_id), app[FRAMES], stream_key(app, rgb_id, 0, 0),
                         FrameSpec(True, (28, 20)))
    pos = 0
    chunks = stream_info(data)["chunks"][:-1]  # all but the last: the picture is not the original yet
    for i, chunk in enumerate(chunks):
        frames.next(data[pos : chunk["total_bytes"]], i)
        pos = chunk["total_bytes"]
    asked = iter([False, False, True])  # wanted for two slices, then no more
    assert frames.region(0, 0, 56, 40, cancelled=lambda: next(asked)) is None
    assert 0 < frames._exact.bytes_fed <= 2 * 64 < pos
    png, rect = frames.region(0, 0, 56, 40)
    expected = ProgressiveDecoder(app[MODEL])
    expected.feed(data[:pos])
    assert rect == (0, 0, 56, 40) and np.array_equal(frame_pixels(png), expected.region(0, 0, 40, 56))


async def test_a_finished_near_lossless_streams_regions_are_crops_of_its_kept_final_picture(app_client, rgb, rgb_id,
                                                                                             monkeypatch):
    """The final picture of a near-lossless stream is kept by its first view's encoder: every
    viewer's 1:1 regions after the end are crops of it, with no decoding at all (a decode of every
    level took 55 s a socket at 12 MP). Where it is not kept (evicted), the first decoder to decode
    it all keeps it and drops itself."""
    from server.keys import FINALS
    from server.streaming import stream as stream_module

    client = await app_client()
    app = client.server.app
    key = stream_key(app, rgb_id, 2, 0)
    decoded = ProgressiveDecoder(app[MODEL]).feed(
        await (await client.get(f"/api/images/{rgb_id}/stream.hdn?max_error=2")).read())[-1].image
    app[FINALS].discard(key)  # that download was no first view at a display size: nothing kept

    first = await client.ws_connect("/ws")  # a first view at a display size (frames from the encoder)
    await first.send_json(start(rgb_id, frame={"width": 28, "height": 20}, max_error=2, link="unlimited"))
    await receive_stream(first)
    assert app[FINALS].get(key) is None  # the stream was cached by the download: decoded, not encoded
    await first.send_json({"type": "region", "x": 3, "y": 4, "width": 20, "height": 30})
    answer = await receive_meta(first)
    assert answer["exact"] and np.array_equal(frame_pixels(await first.receive_bytes()), decoded[4:34, 3:23])
    assert np.array_equal(app[FINALS].get(key), decoded)  # kept by the decoder that decoded it all

    class NoDecoding:
        def __init__(self, *args, **kwargs):
            raise AssertionError("a region of a kept final picture decoded the stream")

    second = await client.ws_connect("/ws")
    await second.send_json(start(rgb_id, frame={"width": 28, "height": 20}, max_error=2))
    await receive_stream(second)
    monkeypatch.setattr(stream_module, "ProgressiveDecoder", NoDecoding)
    await second.send_json({"type": "region", "x": 30, "y": 10, "width": 26, "height": 30})
    answer = await receive_meta(second)
    assert answer["exact"] and np.array_equal(frame_pixels(await second.receive_bytes()), decoded[10:40, 30:56])
    monkeypatch.undo()

    app[FINALS].discard(key)
    third = await client.ws_connect("/ws")  # a new mode's first view: its encoder keeps the final picture
    await third.send_json(start(rgb_id, frame={"width": 28, "height": 20}, max_error=3))
    await receive_stream(third)
    final = app[FINALS].get(stream_key(app, rgb_id, 3, 0))
    assert final is not None and np.abs(final.astype(int) - rgb).max() <= 3 and not np.array_equal(final, rgb)


async def test_viewers_sharing_a_first_view_each_keep_its_final_picture(app_client, rgb_id, gate, caplog):
    """Two viewers of one near-lossless first view: the first keeps the final picture, the second
    finds it kept (an array, compared with None: its truth value raised) and holds it too."""
    import logging

    from server.keys import FINALS

    caplog.set_level(logging.ERROR)
    client = await app_client()
    app = client.server.app
    viewers = [await client.ws_connect("/ws") for _ in range(2)]
    for ws in viewers:
        await ws.send_json(start(rgb_id, frame={"width": 28, "height": 20}, max_error=2))
        assert (await receive_meta(ws))["type"] == "meta"
    gate.open()
    for ws in viewers:
        assert (await receive_stream(ws))[-1]["type"] == "done"
    assert app[FINALS].get(stream_key(app, rgb_id, 2, 0)) is not None
    assert not [r for r in caplog.records if "final picture" in r.getMessage()], caplog.records


async def test_a_final_picture_the_cache_cannot_keep_is_kept_by_its_viewer(app_client, rgb, rgb_id, monkeypatch):
    """A picture larger than the whole cache (a 40 MP one in a small ``final_cache_mb``) or evicted
    meanwhile: the viewer whose decoder made it keeps it, and its later regions are crops of it,
    not a decode of the whole stream each."""
    from server.keys import FINALS
    from server.streaming import stream as stream_module

    client = await app_client()
    app = client.server.app
    assert await (await client.get(f"/api/images/{rgb_id}/stream.hdn?max_error=2")).read()  # cached, nothing kept
    app[FINALS].max_bytes = 100  # no picture fits
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, frame={"width": 28, "height": 20}, max_error=2))
    await receive_stream(ws)
    made = []
    real = stream_module.ProgressiveDecoder
    monkeypatch.setattr(stream_module, "ProgressiveDecoder", lambda *a, **k: made.append(1) or real(*a, **k))
    for x in (0, 10, 20):
        await ws.send_json({"type": "region", "x": x, "y": 0, "width": 30, "height": 30})
        answer = await receive_meta(ws)
        pixels = frame_pixels(await ws.receive_bytes())
        assert answer["exact"] and np.abs(pixels.astype(int) - rgb[:30, x : x + 30]).max() <= 2
    assert len(made) == 1 and len(app[FINALS]) == 0


async def test_a_finished_lossless_stream_keeps_nothing_but_the_original_for_its_regions(app_client, rgb, rgb_id):
    """The session keeps its frames for regions until its next start: once its picture is the
    original, the stream's bytes and the decoders are dropped (up to a gigabyte at 40 MP)."""
    from hidenet_core import encode
    from hidenet_core.codec.container import stream_info
    from server.keys import FRAMES, MODEL, STORE
    from server.streaming.frames import FrameSpec
    from server.streaming.stream import LevelFrames, stream_key

    client = await app_client()
    app = client.server.app
    data = encode(rgb, app[MODEL])
    frames = LevelFrames(app[MODEL], app[STORE], app[STORE].get(rgb_id), app[FRAMES], stream_key(app, rgb_id, 0, 0),
                         FrameSpec(False, None))
    pos = 0
    for i, chunk in enumerate(stream_info(data)["chunks"]):
        frames.next(data[pos : chunk["total_bytes"]], i)
        pos = chunk["total_bytes"]
    frames.close()  # the stream is done
    assert len(frames._data) == 0 and frames._decoder is None and frames._last is None
    png, rect = frames.region(3, 2, 50, 30)
    assert rect == (3, 2, 50, 30) and np.array_equal(frame_pixels(png), rgb[2:32, 3:53])


async def test_a_full_size_region_nobody_waits_for_stops_decoding_too(app_client, rgb, rgb_id, monkeypatch):
    """Full-size frames (``preview`` off, or ``"frame": "full"``) all taken from the frame cache
    leave the frames' decoder with every chunk to decode before a region: it too catches up a
    slice at a time and gives up when the region is no longer wanted."""
    from hidenet_core import encode
    from hidenet_core.codec.container import stream_info
    from server.keys import FRAMES, MODEL, STORE
    from server.streaming.frames import FrameSpec
    from server.streaming.stream import LevelFrames, stream_key

    monkeypatch.setattr("server.streaming.stream.REGION_FEED_BYTES", 64)
    client = await app_client()
    app = client.server.app
    data = encode(rgb, app[MODEL])
    chunks = stream_info(data)["chunks"][:-1]  # all but the last: the picture is not the original yet

    def viewer() -> LevelFrames:
        frames = LevelFrames(app[MODEL], app[STORE], app[STORE].get(rgb_id), app[FRAMES],
                             stream_key(app, rgb_id, 0, 0), FrameSpec(False, None))
        pos = 0
        for i, chunk in enumerate(chunks):
            frames.next(data[pos : chunk["total_bytes"]], i)
            pos = chunk["total_bytes"]
        return frames

    viewer()  # an earlier viewer: every frame is in the frame cache now
    frames = viewer()
    assert frames._decoder.bytes_fed == 0  # its frames came from the cache
    asked = iter([False, False, True])  # wanted for two slices, then no more
    assert frames.region(0, 0, 56, 40, cancelled=lambda: next(asked)) is None
    assert 0 < frames._decoder.bytes_fed <= 2 * 64 < chunks[-1]["total_bytes"]
    png, rect = frames.region(0, 0, 56, 40)
    assert rect == (0, 0, 56, 40) and frame_pixels(png).shape[:2] == (40, 56)


async def test_an_encoder_keeps_pace_with_a_viewer_at_1_to_1(app_client, rgb, rgb_id, monkeypatch):
    """While a viewer of a first view is at 1:1 (it asks for regions), the encoder waits after
    each chunk until that viewer's link has taken all but ``PACE_CHUNKS_AHEAD`` of the chunks
    made, so that its regions keep coming from the encoder's state, never from a decoder of
    every level (a second copy of a large photo's level state). It goes on as soon as the
    link catches up, the viewer leaves 1:1 or leaves, or the encode is cancelled. (This
    stream has 3 chunks: the test lets the encoder be 0 chunks ahead.)"""
    from types import SimpleNamespace

    from hidenet_core.codec.encoder import encode_chunks
    from server.keys import FRAMES, MODEL, STORE
    from server.streaming import stream as stream_module
    from server.streaming.frames import FrameSpec
    from server.streaming.stream import LevelFrames, stream_key

    monkeypatch.setattr(stream_module, "PACE_WAIT_S", 0.02)
    monkeypatch.setattr(stream_module, "PACE_CHUNKS_AHEAD", 0)
    client = await app_client()
    app = client.server.app
    source = SimpleNamespace(complete=False, taps=[], data=bytearray(), viewers=1, held=0)
    frames = LevelFrames(app[MODEL], app[STORE], app[STORE].get(rgb_id), app[FRAMES], stream_key(app, rgb_id, 0, 0),
                         FrameSpec(True, (28, 20)), source)
    assert source.taps == [frames] and frames._data is source.data  # the stream's bytes are read, not copied
    pieces = encode_chunks(rgb, app[MODEL])
    data = [next(pieces).data]
    for _ in range(2):  # chunks 0 and 1 made, each shown to the tap as the encoder makes it
        piece = next(pieces)
        frames.expect(piece.spec.index)
        frames.tap(piece.spec.index, piece.state)
        data.append(piece.data)
    source.data += b"".join(data)  # the frames read the stream's bytes from its source
    frames.next(data[0] + data[1], 0)  # the viewer's link has taken chunk 0
    cancel = threading.Event()

    def keep_pace(index: int) -> threading.Thread:
        held = threading.Thread(target=frames.keep_pace, args=(index, cancel), daemon=True)
        held.start()
        held.join(0.3)
        return held

    def goes_on(held: threading.Thread) -> bool:
        held.join(5)
        return not held.is_alive()

    assert goes_on(keep_pace(1))  # in fit mode the encoder runs ahead
    answers: list = []
    assert frames.region_from_encoder(0, 0, 56, 40, answers.append)  # now at 1:1
    held = keep_pace(1)
    assert held.is_alive()  # chunk 1 is ahead of the link
    cancel.set()  # the encode is cancelled (its viewers left, or the server stops)
    assert goes_on(held)
    cancel.clear()
    held = keep_pace(1)
    assert held.is_alive()
    monkeypatch.setattr(stream_module, "FOLLOW_S", 0.0)
    frames.drop_region()  # back to fit mode: no region waits, none asked for lately
    assert goes_on(held) and answers == [None]
    monkeypatch.setattr(stream_module, "FOLLOW_S", 60.0)
    assert frames.region_from_encoder(0, 0, 56, 40, answers.append)
    held = keep_pace(1)
    assert held.is_alive()
    frames.next(data[2], 1)  # the link catches up
    assert goes_on(held)
    monkeypatch.setattr(stream_module, "PACE_CHUNKS_AHEAD", -1)
    held = keep_pace(1)
    assert held.is_alive()
    source.viewers, source.held = 2, 1  # an upload's background encode holds it too: nobody waits there
    held.join(0.3)
    assert held.is_alive()
    source.held = 0  # another viewer (or a download) shares the encode: it would wait for this link
    assert goes_on(held)
    source.viewers = 1
    held = keep_pace(1)
    assert held.is_alive()
    monkeypatch.setattr(stream_module, "PACE_BUDGET_S", frames._paced_s + 0.5)  # nearly spent
    assert goes_on(held)
    assert goes_on(keep_pace(1))  # spent: the encode no longer waits for this viewer at all
    monkeypatch.setattr(stream_module, "PACE_BUDGET_S", 600.0)
    held = keep_pace(1)
    assert held.is_alive()
    frames.close()  # the viewer leaves
    assert goes_on(held) and source.taps == [] and answers == [None, None]


async def test_a_level_message_says_when_its_frame_shows_estimates(app_client):
    """Between the boundaries of the last layer the frame estimates the levels below the
    refinement under way (``estimated``), and from the first layer on the colours a layer left
    coarser than green (version 10); the base's frame and the last layer's last do not.
    (120x100: levels 0 to 2, the last layer refines level 1 and then level 0.)"""
    from tests.conftest import smooth_image

    client = await app_client()
    response = await client.post("/api/images", data=form(png_of(smooth_image(100, 120, 3, seed=4))))
    assert response.status == 201, await response.text()
    image = (await response.json())["id"]
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(image, frame={"width": 120, "height": 100}))
    messages = await receive_stream(ws)
    levels = [m for m in messages if isinstance(m, dict) and m["type"] == "level"]
    assert levels and all(isinstance(m["estimated"], bool) for m in levels)
    assert not levels[0]["estimated"]
    last_layer = [m for m in levels if m["layer"] == levels[-1]["layer"]]
    assert any(m["estimated"] for m in last_layer) and not last_layer[-1]["estimated"]


async def test_region_decodes_are_capped_per_client_and_per_process(app_client, rgb, rgb_id, monkeypatch):
    """A region that decodes the stream (here a generative stream's: no final picture is kept)
    holds a worker thread, a minute at 12 MP: one client's sockets asking at once held every thread
    and another client's first frame waited 42 s (``server.clients.regionflood``). Past the caps
    the request is answered ``region_busy`` at once, the stream goes on, and the same request
    asked again once a decode ended is answered. A region that decodes nothing (a finished lossless
    stream's, a crop of the original) is never refused."""
    from server.streaming import stream as stream_module

    entered, release = threading.Semaphore(0), threading.Event()
    original = stream_module.LevelFrames.region

    def held(self, *args, **kwargs):  # each decode holds its thread until the test lets it go
        if not self._final_is_original():
            entered.release()
            release.wait(30)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(stream_module.LevelFrames, "region", held)
    client = await app_client(forwarded_allow_ips=("127.0.0.1",), workers=4, max_region_decodes=2)
    app = client.server.app
    rect = {"type": "region", "x": 0, "y": 0, "width": 40, "height": 30}

    async def viewer(who: str, **fields):
        ws = await client.ws_connect("/ws", headers={"X-Forwarded-For": who})
        await ws.send_json(start(rgb_id, frame={"width": 28, "height": 20}, link="unlimited", **fields))
        assert (await receive_stream(ws))[-1]["type"] == "done"
        return ws

    alice, alice2 = await viewer("203.0.113.7", generative_levels=1), await viewer("203.0.113.7", generative_levels=1)
    bob, carol = await viewer("198.51.100.2", generative_levels=1), await viewer("198.51.100.3", generative_levels=1)
    dave = await viewer("198.51.100.4")  # lossless: its region is a crop of the original
    await alice.send_json(rect)
    assert await asyncio.to_thread(entered.acquire, timeout=30)
    await alice2.send_json(rect)  # alice's second socket: her one region decode is taken
    busy = await receive_meta(alice2)
    assert busy["type"] == "region_busy" and "this client" in busy["message"], busy
    assert {k: busy[k] for k in ("x", "y", "width", "height")} == {"x": 0, "y": 0, "width": 40, "height": 30}
    assert busy["retry_ms"] > 0
    await bob.send_json(rect)  # another client: the process's second region decode
    assert await asyncio.to_thread(entered.acquire, timeout=30)
    await carol.send_json(rect)  # a third client: both of the process's taken
    busy = await receive_meta(carol)
    assert busy["type"] == "region_busy" and "other viewers" in busy["message"], busy
    assert (app[STATS].regions_decoding, app[STATS].regions_refused) == (2, 2)
    await dave.send_json(rect)  # decodes nothing: answered while both are taken
    answer = await receive_meta(dave)
    assert answer["type"] == "region" and answer["exact"]
    assert np.array_equal(frame_pixels(await dave.receive_bytes()), rgb[:30, :40])
    release.set()
    for ws in (alice, bob):
        answer = await receive_meta(ws)
        assert answer["type"] == "region" and answer["exact"], answer
        await ws.receive_bytes()
    await until(lambda: app[STATS].regions_decoding == 0)
    await carol.send_json(rect)  # asked again: answered
    answer = await receive_meta(carol)
    assert answer["type"] == "region" and answer["exact"], answer
    for ws in (alice, alice2, bob, carol, dave):
        await ws.close()


async def test_a_region_decode_is_counted_exactly_as_long_as_its_worker_job(app_client, rgb_id, monkeypatch):
    """The count is given back when the decode's job ends: not after its answer is sent (a client
    that does not read its socket held the process's one region decode for as long as it liked),
    and not when the socket stops its region (the job still decodes on its thread: cancelling and
    asking on another socket ran several decodes at once)."""
    from server.streaming import stream as stream_module
    from server.streaming import ws as ws_module

    entered, release, sending = threading.Semaphore(0), threading.Event(), asyncio.Event()
    original = stream_module.LevelFrames.region

    def held(self, *args, **kwargs):
        entered.release()
        release.wait(30)
        return original(self, *args, **kwargs)

    async def stuck_send(self, *args, **kwargs):  # a client that never reads: the answer never goes out
        sending.set()
        await asyncio.sleep(3600)

    monkeypatch.setattr(stream_module.LevelFrames, "region", held)
    monkeypatch.setattr(ws_module.Session, "_send_region", stuck_send)
    client = await app_client(workers=3)
    stats = client.server.app[STATS]
    rect = {"type": "region", "x": 0, "y": 0, "width": 40, "height": 30}
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, frame={"width": 28, "height": 20}, link="unlimited", generative_levels=1))
    await receive_stream(ws)

    await ws.send_json(rect)  # the decode ends, its answer is stuck: the count is back at once
    assert await asyncio.to_thread(entered.acquire, timeout=30)
    assert stats.regions_decoding == 1
    release.set()
    await asyncio.wait_for(sending.wait(), 30)
    await until(lambda: stats.regions_decoding == 0, timeout=5)

    release.clear()
    await ws.send_json({"type": "cancel"})  # stops the stuck send
    assert (await receive_meta(ws))["type"] == "cancelled"
    other = await client.ws_connect("/ws")
    await other.send_json(start(rgb_id, frame={"width": 28, "height": 20}, link="unlimited", generative_levels=1))
    await receive_stream(other)
    await other.send_json(rect)
    assert await asyncio.to_thread(entered.acquire, timeout=30)
    await other.send_json({"type": "cancel"})  # the region's task stops; its job still decodes
    assert (await receive_meta(other))["type"] == "cancelled"
    await asyncio.sleep(0.1)
    assert stats.regions_decoding == 1
    release.set()
    await until(lambda: stats.regions_decoding == 0, timeout=5)
    await ws.close()
    await other.close()
