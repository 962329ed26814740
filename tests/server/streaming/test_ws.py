"""The /ws protocol end to end, on a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np
import pytest
import pytest_asyncio
from aiohttp import WSCloseCode, WSMsgType, WSServerHandshakeError

from hidenet_core import default_levels, psnr
from hidenet_core.codec.versions import VERSION
from server import create_app
from server.keys import FRAMES, PEERS, STATS
from server.streaming.links import PRESETS, arrival_ms
from tests.server.conftest import HoldClock, frame_pixels, receive_meta, receive_stream

pytestmark = pytest.mark.asyncio


def start(image: str, **fields) -> dict:
    return {"type": "start", "image": image, **fields}


def split(messages: list) -> tuple[dict, list[tuple[dict, bytes]], list[tuple[dict, bytes]], dict]:
    """meta, [(level, png)], [(race, png)], done; checks that every level/race message is followed by its frame
    (and that ``progress`` messages, if any, come before ``meta``)."""
    waiting = [m for m in messages if isinstance(m, dict) and m["type"] == "progress"]
    assert messages[: len(waiting)] == waiting, "progress messages come before meta"
    messages = messages[len(waiting) :]
    meta, done = messages[0], messages[-1]
    assert meta["type"] == "meta" and done["type"] == "done", (meta, done)
    levels, races = [], []
    body = messages[1:-1]
    for i in range(0, len(body), 2):
        msg, frame = body[i], body[i + 1]
        assert isinstance(msg, dict) and isinstance(frame, bytes)
        magic = b"\x89PNG\r\n\x1a\n" if msg.get("frame_format", "png") == "png" else b"\xff\xd8"
        assert frame.startswith(magic)
        (levels if msg["type"] == "level" else races).append((msg, frame))
    return meta, levels, races, done


async def test_layered_stream_sends_every_layer_coarse_to_fine_and_ends_bit_exact(client, rgb, rgb_id):
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, preview=False))
    meta, chunks, _, done = split(await receive_stream(ws))
    L = default_levels(40, 56)
    assert meta["stream"] == "layered" and meta["format_version"] == VERSION and len(meta["layers"]) >= 2
    assert meta["chunks"] == len(chunks) == done["chunks"] == len(meta["schedule"]) > L + 1
    assert [m["index"] for m, _ in chunks] == list(range(len(chunks)))
    layers = [m["layer"] for m, _ in chunks]
    assert layers == sorted(layers) and chunks[0][0]["level"] == L and chunks[-1][0]["level"] == 0
    for layer in set(layers):  # each layer goes down the pyramid, base first
        levels = [m["level"] for m, _ in chunks if m["layer"] == layer]
        assert levels == sorted(levels, reverse=True)
    for m, png in chunks:  # every frame is within the error its chunk promises, on its level's grid
        img = frame_pixels(png).astype(int)
        reference = rgb[:: 1 << m["level"], :: 1 << m["level"]].astype(int)
        assert img.shape == reference.shape and m["psnr_level"] == m["level"]
        if m["max_error"] is not None:  # None: some level is not coded yet
            assert np.abs(img - reference).max() <= m["max_error"]
    first_layer = [m for m, _ in chunks if m["layer"] == 0]
    # a guarantee from the first layer on: the larger of green's and the other colours' max errors
    assert first_layer[-1]["max_error"] == max(meta["layers"][0] + meta["colour_layers"][0]) > 0
    assert chunks[-1][0]["max_error"] == 0 and np.array_equal(frame_pixels(chunks[-1][1]), rgb)
    assert chunks[0][0]["total_bytes"] < done["total_bytes"] / 2
    await ws.close()


async def test_resolution_stream_sends_every_level_base_first_and_ends_bit_exact(client, rgb, rgb_id):
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, preview=False, stream="resolution"))
    meta, levels, races, done = split(await receive_stream(ws))
    L = default_levels(40, 56)
    shape = (meta["width"], meta["height"], meta["channels"], meta["levels"], meta["base_level"])
    assert shape == (56, 40, 3, L + 1, L)
    assert meta["link"]["id"] == "unlimited" and meta["image"]["id"] == rgb_id and not races
    assert [m["level"] for m, _ in levels] == list(range(L, -1, -1))
    totals = [m["total_bytes"] for m, _ in levels]
    assert totals == sorted(totals) and totals[-1] == done["total_bytes"]
    assert meta["total_bytes"] == (None if meta["encoding"] else done["total_bytes"])  # unknown while encoding
    assert sum(m["payload_bytes"] for m, _ in levels) == done["payload_bytes"]
    assert meta["payload_bytes"] == (None if meta["encoding"] else done["payload_bytes"])
    for m, png in levels:
        assert set(m) >= {"type", "level", "width", "height", "payload_bytes", "total_bytes", "arrival_ms",
                          "decode_ms", "psnr", "ssim", "frame_bytes"}
        img = frame_pixels(png)
        assert img.shape == (m["height"], m["width"], 3) and m["frame_bytes"] == len(png)
        assert np.array_equal(img, rgb[:: 1 << m["level"], :: 1 << m["level"]])  # lossless on every level
        assert m["psnr"] is None and m["ssim"] == pytest.approx(1.0)  # identical: infinite PSNR is null
    assert done["levels"] == L + 1 and done["frame_bytes"] == sum(len(p) for _, p in levels)
    await ws.close()


async def test_preview_frames_are_full_size_and_improve(client, rgb, rgb_id):
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, max_error=3, preview=True))
    _, levels, _, _ = split(await receive_stream(ws))
    for m, png in levels:
        assert frame_pixels(png).shape == (40, 56, 3) and (m["frame_width"], m["frame_height"]) == (56, 40)
        assert m["psnr"] == pytest.approx(psnr(frame_pixels(png), rgb), abs=1e-3)
    final = frame_pixels(levels[-1][1])
    assert np.abs(final.astype(int) - rgb).max() <= 3  # near-lossless bound
    assert levels[-1][0]["psnr"] > levels[0][0]["psnr"]


async def test_generative_levels_send_no_payload(client, rgb_id):
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, generative_levels=1))
    _, levels, _, _ = split(await receive_stream(ws))
    assert levels[-1][0]["payload_bytes"] == 0 and levels[0][0]["payload_bytes"] > 0


async def test_levels_are_released_on_the_link_schedule(client, clock, rgb_id):
    # read from the cache (a first view is released no sooner than it is encoded: test_links)
    assert await (await client.get(f"/api/images/{rgb_id}/stream.hdn")).read()
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, link="2g", race=True))
    meta, levels, races, done = split(await receive_stream(ws))
    link = PRESETS["2g"]
    for m, _ in levels:
        assert m["arrival_ms"] == pytest.approx(arrival_ms(link, m["total_bytes"]), abs=1e-3)
        assert m["arrival_ms"] == pytest.approx(800 + m["total_bytes"] * 8 / 280, abs=1e-3)
        assert m["sent_ms"] >= m["arrival_ms"] - 1e-6  # never before its last byte arrived
    assert [s["arrival_ms"] for s in meta["schedule"]] == [m["arrival_ms"] for m, _ in levels]
    for m, _ in races:
        assert m["arrival_ms"] == pytest.approx(arrival_ms(link, m["bytes"]), abs=1e-3)
    # the server waited for exactly these moments on its clock (t0 = when meta was sent)
    expected = sorted([m["arrival_ms"] for m, _ in levels] + [m["arrival_ms"] for m, _ in races])
    t0 = min(clock.waits) - expected[0] / 1000  # the race and hideNet wait concurrently: either may wait first
    assert sorted((w - t0) * 1000 for w in clock.waits) == pytest.approx(expected, abs=1e-3)
    assert done["arrival_ms"] == pytest.approx(arrival_ms(link, meta["total_bytes"]))


async def test_race_sends_one_frame_per_progressive_jpeg_scan(client, rgb_id):
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, race=True, link="cable"))
    _, levels, races, done = split(await receive_stream(ws))
    assert len(races) >= 2 and [m["scan"] for m, _ in races] == list(range(1, len(races) + 1))
    sizes = [m["bytes"] for m, _ in races]
    assert sizes == sorted(sizes) and sizes[-1] == races[0][0]["total_bytes"] == done["race"]["bytes"]
    for m, png in races:
        assert frame_pixels(png).shape == (40, 56, 3)
        assert set(m) >= {"type", "bytes", "arrival_ms", "psnr", "ssim"}
    assert races[-1][0]["psnr"] > races[0][0]["psnr"] and done["race"]["scans"] == len(races)


async def test_contenders_race_on_the_same_link_and_done_says_who_won(client, clock, rgb, rgb_id):
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, link="3g", contenders=["png", "jpeg:50", "webp-lossless"]))
    meta, levels, races, done = split(await receive_stream(ws))
    link = PRESETS["3g"]
    keys = ["png", "jpeg:50", "webp-lossless"]
    assert [c["key"] for c in meta["contenders"]] == keys and meta["race"] is True
    assert [c["slot"] for c in meta["contenders"]] == [1, 2, 3]
    for c in meta["contenders"]:
        mine = [(m, png) for m, png in races if m["contender"] == c["key"]]
        assert [m["frame"] for m, _ in mine] == list(range(1, c["frames"] + 1))  # in order, every repaint
        assert [s["arrival_ms"] for s in c["schedule"]] == [m["arrival_ms"] for m, _ in mine]
        for m, png in mine:
            assert m["arrival_ms"] == pytest.approx(arrival_ms(link, m["bytes"]), abs=1e-3)
            assert m["total_bytes"] == c["file_bytes"] and m["slot"] == c["slot"] and m["step"]
            assert frame_pixels(png).shape[:2] == (40, 56)
        final_message, final_png = mine[-1]
        if c["lossless"]:
            assert final_message["psnr"] is None and np.array_equal(frame_pixels(final_png), rgb)
        assert "scan" not in final_message  # only the progressive JPEG keeps the old race fields
    assert [s["contender"] for s in done["contenders"]] == keys and done["race"] == done["contenders"][0]
    v = done["verdict"]
    assert v["time"] == "arrival" and v["comparable"] is True
    assert [r["key"] for r in v["racers"]] == ["hidenet", *keys]
    assert v["racers"][0]["first_ms"] == levels[0][0]["arrival_ms"]
    assert v["racers"][0]["final_ms"] == levels[-1][0]["arrival_ms"] and v["racers"][0]["exact"]
    for row in v["racers"][1:]:
        mine = [m for m, _ in races if m["contender"] == row["key"]]
        assert row["first_ms"] == mine[0]["arrival_ms"] and row["final_ms"] == mine[-1]["arrival_ms"]
        assert row["bytes"] == mine[-1]["total_bytes"]
    assert sum(r["best_share"] for r in v["racers"]) >= 0.999
    assert v["sentence"].endswith(".") and "hideNet" in v["sentence"]


async def test_a_race_for_a_display_sends_every_racer_shrunk_and_measures_it_at_full_size(client, rgb_id):
    """The viewer races at its stage's size: every frame fits it, and every PSNR is the one a
    full-size race measures (hideNet's full-size preview, each contender's full-size repaint)."""
    results = []
    for frame in ("full", {"width": 20, "height": 20}):
        ws = await client.ws_connect("/ws")
        await ws.send_json(start(rgb_id, contenders=["pjpeg", "webp-lossless"], link="cable", frame=frame))
        results.append(split(await receive_stream(ws)))
        await ws.close()
    (fmeta, flevels, fraces, fdone), (meta, levels, races, done) = results
    assert [c["frame"] for c in meta["contenders"]] == [{"width": 20, "height": 14}] * 2
    assert [c["frame"] for c in fmeta["contenders"]] == [None, None]
    for m, data in levels + races:
        assert (m["frame_width"], m["frame_height"]) == (20, 14) and frame_pixels(data).shape[:2] == (14, 20)
    assert all(m["psnr_level"] == 0 for m, _ in levels)
    full = {m["index"]: (m["psnr"], m["ssim"]) for m, _ in flevels}  # a display may skip a frame (``chunk``)
    assert levels and all((m["psnr"], m["ssim"]) == full[m["index"]] for m, _ in levels)
    assert [(m["psnr"], m["ssim"]) for m, _ in races] == [(m["psnr"], m["ssim"]) for m, _ in fraces]
    assert done["verdict"]["comparable"] and fdone["verdict"]["comparable"]


async def test_on_the_unlimited_link_racers_are_timed_by_when_they_were_sent(client, rgb_id):
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, contenders=["pjpeg"]))
    meta, levels, races, done = split(await receive_stream(ws))
    assert meta["time"] == done["verdict"]["time"] == "sent"
    assert all(m["arrival_ms"] == 0 for m, _ in levels + races)
    assert done["verdict"]["racers"][0]["final_ms"] == levels[-1][0]["sent_ms"]


async def test_a_first_view_says_the_server_is_encoding_and_a_second_does_not(client, rgb_id):
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, max_error=2, contenders=["j2k"]))
    messages = await receive_stream(ws)
    waiting = [m for m in messages if isinstance(m, dict) and m["type"] == "progress"]
    assert {(m["racer"], m["stage"]) for m in waiting} >= {("j2k", "prepare")}
    assert all(m["message"] and m["elapsed_ms"] >= 0 for m in waiting)
    meta = next(m for m in messages if isinstance(m, dict) and m["type"] == "meta")
    assert meta["prepared_ms"] >= 0
    await ws.send_json(start(rgb_id, max_error=2, contenders=["j2k"]))
    again = await receive_stream(ws)
    assert again[0]["type"] == "meta"  # everything cached: nothing to wait for


async def test_bad_json_is_answered_and_the_socket_stays_usable(client, rgb_id):
    ws = await client.ws_connect("/ws")
    await ws.send_str("{not json")
    err = await ws.receive_json()
    assert err["type"] == "error" and "JSON" in err["message"]
    await ws.send_json(start(rgb_id))
    assert split(await receive_stream(ws))[3]["type"] == "done"


@pytest.mark.parametrize("message, fragment", [
    ([1, 2], "JSON object"),
    ({"type": "stop"}, "unknown message type"),
    ({"type": "start"}, "image"),
    ({"type": "start", "image": "x", "colour": 1}, "unknown field"),
    ({"type": "start", "image": "x", "link": "5g"}, "unknown link"),
    ({"type": "start", "image": "x", "link": {"down_kbps": -1, "rtt_ms": 1}}, "down_kbps"),
    ({"type": "start", "image": "x", "max_error": 128}, "max_error"),
    ({"type": "start", "image": "x", "max_error": 1.5}, "max_error"),
    ({"type": "start", "image": "x", "contenders": "png"}, "list of contender ids"),
    ({"type": "start", "image": "x", "contenders": ["gif"]}, "unknown contender"),
    ({"type": "start", "image": "x", "contenders": ["pjpeg:99"]}, "1..95"),
    ({"type": "start", "image": "x", "contenders": ["png", "jpeg", "webp", "j2k"]}, "at most 3"),
    ({"type": "start", "image": "x", "contenders": ["pjpeg", "pjpeg:90"]}, "listed twice"),
    ({"type": "start", "image": "x", "race": True, "contenders": ["png"]}, "not both"),
    ({"type": "start", "image": "x", "preview": "yes"}, "preview"),
    ({"type": "start", "image": "x", "race": 1}, "race"),
])
async def test_malformed_messages_are_errors(client, message, fragment):
    ws = await client.ws_connect("/ws")
    await ws.send_str(json.dumps(message))
    err = await ws.receive_json()
    assert err["type"] == "error" and fragment in err["message"] and err["code"] == "bad_request"


async def test_unknown_image_is_an_error(client):
    ws = await client.ws_connect("/ws")
    await ws.send_json(start("0" * 32))
    err = await ws.receive_json()
    assert err == {"type": "error", "code": "not_found", "message": err["message"]}
    assert "unknown image" in err["message"]


async def test_too_many_generative_levels_for_the_image(client, rgb_id):
    ws = await client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, generative_levels=9))
    err = await ws.receive_json()
    assert err["type"] == "error" and "generative_levels 9" in err["message"]


async def test_binary_messages_are_refused(client):
    ws = await client.ws_connect("/ws")
    await ws.send_bytes(b"\x00")
    assert (await ws.receive_json())["type"] == "error"


async def test_cross_origin_handshake_is_refused(client):
    with pytest.raises(WSServerHandshakeError) as exc:
        await client.ws_connect("/ws", headers={"Origin": "http://evil.example"})
    assert exc.value.status == 403


async def test_same_origin_and_no_origin_are_accepted(client):
    origin = f"http://{client.server.host}:{client.server.port}"
    ws = await client.ws_connect("/ws", headers={"Origin": origin})
    await ws.send_json({"type": "cancel"})
    assert (await ws.receive_json())["type"] == "cancelled"


async def test_plain_get_on_ws_is_a_json_400(client):
    resp = await client.get("/ws")
    assert resp.status == 400 and "websocket" in (await resp.json())["error"]


async def test_oversized_message_closes_with_1009(client):
    ws = await client.ws_connect("/ws")
    await ws.send_str("x" * (70 * 1024))
    msg = await ws.receive()
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING) or ws.closed
    assert ws.close_code == WSCloseCode.MESSAGE_TOO_BIG


@pytest.fixture
def hold_clock() -> HoldClock:
    return HoldClock()


@pytest_asyncio.fixture
async def held_client(aiohttp_client, config, hold_clock):
    return await aiohttp_client(create_app(config, clock=hold_clock))


async def test_cancel_stops_the_stream(held_client, hold_clock, rgb_id):
    ws = await held_client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, link="3g"))
    assert (await receive_meta(ws))["type"] == "meta"  # then it waits for the first level's bytes
    await ws.send_json({"type": "cancel"})
    assert (await ws.receive_json())["type"] == "cancelled"
    hold_clock.release()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.receive(), 0.3)  # nothing more from the cancelled stream
    stats = held_client.app[STATS]
    assert stats.streams_running == 0 and stats.streams_cancelled == 1


async def test_a_new_start_replaces_the_running_stream(held_client, hold_clock, rgb_id, grey):
    ws = await held_client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, link="3g"))
    assert (await receive_meta(ws))["type"] == "meta"
    images = await (await held_client.get("/api/images")).json()
    grey_id = next(i["id"] for i in images if i["name"] == "grey")
    await ws.send_json(start(grey_id))
    hold_clock.release()
    meta, levels, _, done = split(await receive_stream(ws))
    assert meta["image"]["id"] == grey_id and meta["channels"] == 1 and done["type"] == "done"
    assert held_client.app[STATS].streams_cancelled == 1


async def test_overload_is_answered_busy_not_queued(aiohttp_client, config, hold_clock, rgb_id):
    from dataclasses import replace

    client = await aiohttp_client(create_app(replace(config, max_streams=1), clock=hold_clock))
    first, second = await client.ws_connect("/ws"), await client.ws_connect("/ws")
    await first.send_json(start(rgb_id, link="3g"))
    assert (await receive_meta(first))["type"] == "meta"
    await second.send_json(start(rgb_id))
    err = await second.receive_json()
    assert err["type"] == "error" and err["code"] == "busy"
    hold_clock.release()
    assert (await receive_stream(first))[-1]["type"] == "done"
    await second.send_json(start(rgb_id))  # capacity is back
    assert split(await receive_stream(second))[3]["type"] == "done"


async def test_one_client_runs_at_most_its_streams_and_others_still_get_theirs(aiohttp_client, config, hold_clock,
                                                                                 rgb_id):
    """One client's sockets share ``max_client_streams``: past it a ``start`` is answered "busy"
    with the reason, while another client (a different forwarded address behind the trusted
    proxy) still starts one; a spoofed X-Forwarded-For from an untrusted peer changes nothing."""
    from dataclasses import replace

    trusted = replace(config, max_client_streams=2, forwarded_allow_ips=("127.0.0.1",))
    client = await aiohttp_client(create_app(trusted, clock=hold_clock))
    alice = [await client.ws_connect("/ws", headers={"X-Forwarded-For": "203.0.113.7"}) for _ in range(3)]
    for ws in alice[:2]:
        await ws.send_json(start(rgb_id, link="3g"))
        assert (await receive_meta(ws))["type"] == "meta"
    await alice[2].send_json(start(rgb_id, link="3g"))
    err = await alice[2].receive_json()
    assert err["code"] == "busy" and "this client already runs 2 streams" in err["message"]
    bob = await client.ws_connect("/ws", headers={"X-Forwarded-For": "198.51.100.2"})
    await bob.send_json(start(rgb_id, link="3g"))
    assert (await receive_meta(bob))["type"] == "meta"
    await alice[0].send_json({"type": "cancel"})  # one of Alice's stops: she may start another
    assert (await alice[0].receive_json())["type"] == "cancelled"
    await alice[2].send_json(start(rgb_id, link="3g"))
    assert (await receive_meta(alice[2]))["type"] == "meta"
    hold_clock.release()
    for ws in (alice[1], alice[2], bob):
        assert (await receive_stream(ws))[-1]["type"] == "done"

    untrusted = await aiohttp_client(create_app(replace(config, max_client_streams=1), clock=hold_clock))
    first = await untrusted.ws_connect("/ws", headers={"X-Forwarded-For": "203.0.113.7"})
    second = await untrusted.ws_connect("/ws", headers={"X-Forwarded-For": "198.51.100.2"})
    await first.send_json(start(rgb_id, link="3g"))
    assert (await receive_meta(first))["type"] == "meta"
    await second.send_json(start(rgb_id, link="3g"))  # the same peer, whatever the header says
    assert (await second.receive_json())["code"] == "busy"


async def test_one_client_keeps_at_most_its_sockets_open(aiohttp_client, config, clock):
    from dataclasses import replace

    client = await aiohttp_client(create_app(replace(config, max_client_sockets=2), clock=clock))
    first, second = await client.ws_connect("/ws"), await client.ws_connect("/ws")
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect("/ws")
    assert refused.value.status == 429
    body = await (await client.get("/ws", headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                                   "Sec-WebSocket-Version": "13",
                                                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})).json()
    assert "this client has 2 websockets open (at most 2)" in body["error"]
    await first.close()
    for _ in range(100):  # the server notices the close
        if client.app[PEERS].of("127.0.0.1").sockets < 2:
            break
        await asyncio.sleep(0.01)
    third = await client.ws_connect("/ws")  # room again
    await third.close()
    await second.close()
    for _ in range(100):
        if len(client.app[PEERS]) == 0:
            break
        await asyncio.sleep(0.01)
    assert len(client.app[PEERS]) == 0  # a client holding nothing is forgotten


async def test_the_addresses_of_one_ipv6_64_are_one_client(aiohttp_client, config, clock):
    """A host handed a /64 may send from any of its 2^64 addresses: counted per address, it had that
    many sets of caps. Its addresses are one client; the next /64 is another."""
    from dataclasses import replace

    client = await aiohttp_client(create_app(replace(config, max_client_sockets=1, forwarded_allow_ips=("127.0.0.1",)),
                                             clock=clock))
    first = await client.ws_connect("/ws", headers={"X-Forwarded-For": "2001:db8:0:1::a"})
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect("/ws", headers={"X-Forwarded-For": "2001:db8:0:1:ffff::b"})
    assert refused.value.status == 429
    other = await client.ws_connect("/ws", headers={"X-Forwarded-For": "2001:db8:0:2::a"})
    assert client.app[PEERS].of("2001:db8:0:1::/64").sockets == 1
    await first.close()
    await other.close()


async def test_sockets_closed_with_a_start_in_flight_leave_their_client_nothing_held(held_client, hold_clock,
                                                                                     rgb_id):
    """aiohttp's test server cancels a handler whose client leaves, also while it stops its stream:
    the client's socket count must still go down, or the client would be locked out for good."""
    sockets = [await held_client.ws_connect("/ws") for _ in range(3)]
    for ws in sockets:
        await ws.send_json(start(rgb_id, link="3g"))
    for ws in sockets:
        await ws.close()
    peers = held_client.app[PEERS]
    for _ in range(200):
        if len(peers) == 0:
            break
        await asyncio.sleep(0.01)
    assert len(peers) == 0, peers.of("127.0.0.1")
    hold_clock.release()


async def test_client_disconnect_mid_stream_cancels_quietly(held_client, hold_clock, rgb_id, caplog):
    caplog.set_level(logging.WARNING)
    ws = await held_client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, link="3g", race=True))
    assert (await receive_meta(ws))["type"] == "meta"
    await ws.close()
    hold_clock.release()
    stats = held_client.app[STATS]
    for _ in range(100):
        if stats.streams_running == 0:
            break
        await asyncio.sleep(0.02)
    assert stats.streams_running == 0 and stats.streams_failed == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records


async def test_shutdown_closes_sockets_with_going_away(aiohttp_client, config, clock):
    client = await aiohttp_client(create_app(config, clock=clock))
    ws = await client.ws_connect("/ws")
    closing = asyncio.create_task(client.app.shutdown())
    msg = await asyncio.wait_for(ws.receive(), 5)
    await closing
    assert msg.type == WSMsgType.CLOSE and msg.data == WSCloseCode.GOING_AWAY


async def test_frames_are_not_deflated_again(client):
    ws = await client.ws_connect("/ws", compress=15)  # the client offers permessage-deflate, as browsers do
    assert ws.compress == 0  # the server declines: PNG frames are compressed already


async def test_second_viewer_shares_the_first_viewers_decoded_frames(client, rgb_id):
    first = await client.ws_connect("/ws")
    await first.send_json(start(rgb_id, max_error=1, preview=True))
    _, levels1, _, _ = split(await receive_stream(first))
    second = await client.ws_connect("/ws")
    await second.send_json(start(rgb_id, max_error=1, preview=True))
    _, levels2, _, _ = split(await receive_stream(second))
    assert not any(m["shared"] for m, _ in levels1)
    assert all(m["shared"] for m, _ in levels2)
    assert [png for _, png in levels1] == [png for _, png in levels2]
    assert [m["decode_ms"] for m, _ in levels1] == [m["decode_ms"] for m, _ in levels2]
    # another mode is another stream: decoded anew
    await second.send_json(start(rgb_id, max_error=2, preview=True))
    _, levels3, _, _ = split(await receive_stream(second))
    assert not any(m["shared"] for m, _ in levels3)
    await first.close()
    await second.close()


async def test_frames_are_rendered_while_the_link_delivers_their_chunks(held_client, hold_clock, rgb_id):
    """While the link holds the first chunk (the clock is held), the frames of the first
    ``FRAMES_AHEAD`` chunks are rendered already, not one after the other as each arrives;
    once released, every level still comes in order, each after its arrival."""
    from server.streaming.stream import FRAMES_AHEAD

    ws = await held_client.ws_connect("/ws")
    await ws.send_json(start(rgb_id, link="3g"))
    meta = await receive_meta(ws)
    frames = held_client.app[FRAMES]
    async with asyncio.timeout(30):
        while len(frames) < min(FRAMES_AHEAD, meta["chunks"]):  # each frame is cached as it is rendered
            await asyncio.sleep(0.02)
    assert len(hold_clock.waits) == 1  # the sender still waits for the first chunk's arrival
    hold_clock.release()
    levels = [m for m in await receive_stream(ws) if isinstance(m, dict) and m["type"] == "level"]
    assert [m["index"] for m in levels] == list(range(meta["chunks"]))
    assert all(m["sent_ms"] >= m["arrival_ms"] - 1e-6 for m in levels)
