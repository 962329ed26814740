"""The on-disk stream cache: atomic files, CRC-checked reads, one encoding for many requests."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import numpy as np
import pytest

from hidenet_core import decode, load_model
from hidenet_core.codec.container import scan_stream
from hidenet_core.codec.versions import VERSION
from server import create_app
from server.keys import CACHE, STATS
from server.storage.cache import StreamCache, StreamKey
from tests.server.conftest import frame_pixels, receive_stream

pytestmark = pytest.mark.asyncio


async def lossless_final(client, image_id: str) -> np.ndarray:
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "start", "image": image_id, "preview": False})
    messages = await receive_stream(ws)
    await ws.close()
    assert messages[-1]["type"] == "done", messages[-1]
    return frame_pixels(messages[-2])


def unsealed(path) -> bytes:
    """A cache file's stream, without the seal that binds it to its key."""
    data = path.read_bytes()
    return data[data.index(b"\x89HDN\r\n") :]


async def download(client, image_id: str, **params) -> bytes:
    """A whole stream.hdn (it is sent as it is encoded: the cache has it once it has all been read)."""
    resp = await client.get(f"/api/images/{image_id}/stream.hdn", params=params)
    assert resp.status == 200, await resp.text()
    return await resp.read()


async def test_streams_are_cached_by_content_hash_and_mode(client, rgb_id):
    await download(client, rgb_id)
    await download(client, rgb_id, max_error=2)
    await download(client, rgb_id)
    files = sorted(p.name for p in client.app[CACHE].directory.iterdir())
    assert len(files) == 2 and all(f.startswith(rgb_id) and f.endswith(".hdn") for f in files)
    assert {f".d0.g0.layers.v{VERSION}.hdn", f".d2.g0.layers.v{VERSION}.hdn"} == {f[f.index(".d"):] for f in files}
    stats = client.app[STATS]
    assert (stats.cache_misses, stats.cache_hits) == (2, 1)


async def restarted(aiohttp_client, config, clock):
    """A new server on the same data directory (its memory cache is empty)."""
    return await aiohttp_client(create_app(config, clock=clock))


async def test_a_corrupted_cache_file_is_re_encoded_not_served(client, aiohttp_client, config, clock, rgb, rgb_id,
                                                               caplog):
    await download(client, rgb_id)
    (path,) = client.app[CACHE].directory.iterdir()
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # a flipped bit in the last payload
    path.write_bytes(bytes(data))
    client = await restarted(aiohttp_client, config, clock)
    assert np.array_equal(await lossless_final(client, rgb_id), rgb)
    assert client.app[STATS].cache_corrupt == 1 and "corrupted" in caplog.text
    scan_stream(unsealed(path))  # rewritten whole


async def test_a_truncated_cache_file_is_re_encoded(client, aiohttp_client, config, clock, rgb_id):
    resp = await client.get(f"/api/images/{rgb_id}/stream.hdn")
    good = await resp.read()
    (path,) = client.app[CACHE].directory.iterdir()
    path.write_bytes(good[:-5])
    client = await restarted(aiohttp_client, config, clock)
    again = await client.get(f"/api/images/{rgb_id}/stream.hdn")
    assert await again.read() == good and client.app[STATS].cache_corrupt == 1


async def test_concurrent_requests_encode_once(client, rgb_id):
    responses = await asyncio.gather(*(client.get(f"/api/images/{rgb_id}/stream.hdn") for _ in range(6)))
    bodies = {await r.read() for r in responses}
    assert len(bodies) == 1 and client.app[STATS].cache_misses == 1


async def test_cache_load_refuses_other_weights(tmp_path, rgb):
    from hidenet_core import encode

    cache = StreamCache(tmp_path)
    key = StreamKey("a" * 32, "0" * 32, 0, 0)
    cache.save(key, encode(rgb, load_model("interp")))
    assert not list(tmp_path.glob(".*.part"))
    with pytest.raises(Exception, match="other weights"):
        cache.load(key)
    assert not cache.path(key).exists()


async def test_a_corrupted_file_replaced_meanwhile_by_another_process_is_kept(tmp_path, rgb, monkeypatch):
    """The file found corrupted is removed only if it is still the one read: another process may
    have renamed a good stream onto the name in between."""
    from hidenet_core import encode
    from server.storage import cache as cache_module

    model = load_model("interp")
    cache = StreamCache(tmp_path)
    key = StreamKey("b" * 32, model.weights_hash().hex(), 0, 0)
    good = encode(rgb, model)
    cache.path(key).write_bytes(key.seal + good[:-7])  # truncated: corrupted
    real_scan = cache_module.scan_stream

    def scan_while_another_process_writes(data):
        cache.save(key, good)  # another process stores the good stream (temporary file, then rename)
        return real_scan(data)

    monkeypatch.setattr(cache_module, "scan_stream", scan_while_another_process_writes)
    with pytest.raises(cache_module.CorruptCacheFile):
        cache.load(key)
    monkeypatch.undo()
    data, _ = cache.load(key)  # the good one was not removed
    assert data == good


async def test_scan_stream_matches_the_decoder(rgb):
    from hidenet_core import encode

    data = encode(rgb, load_model("interp"))
    layout = scan_stream(data)
    levels = decode(data, load_model("interp"))
    assert [c.level for c in layout.chunks] == [lv.level for lv in levels]
    assert [c.end for c in layout.chunks] == [lv.bytes_consumed for lv in levels]


async def test_the_disk_cache_keeps_the_most_recently_used_streams_within_its_bound(aiohttp_client, config, clock,
                                                                                    rgb_id):
    client = await aiohttp_client(create_app(replace(config, cache_mb=1), clock=clock))
    cache = client.app[CACHE]
    first = await download(client, rgb_id, max_error=1)
    size = len(first) + 64  # a file: its seal and its stream (the streams of this image are about this size)
    cache.max_bytes = int(2.5 * size)  # room for two of them
    await download(client, rgb_id, max_error=2)
    old = sorted(cache.directory.glob("*.hdn"), key=lambda p: p.stat().st_mtime)
    for age, path in enumerate(old):  # file times decide, as for every process sharing the directory
        os.utime(path, (1000 + age, 1000 + age))
    await download(client, rgb_id, max_error=1)  # a hit: d1 becomes the most recently used
    await download(client, rgb_id, max_error=3)  # a third stream: the least recently used one (d2) goes
    names = sorted(p.name.split(".")[2] for p in cache.directory.glob("*.hdn"))
    assert names == ["d1", "d3"]
    assert sum(p.stat().st_size for p in cache.directory.glob("*.hdn")) <= cache.max_bytes
