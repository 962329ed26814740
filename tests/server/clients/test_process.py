"""A real ``hidenet serve`` process on a free loopback port: fetch, signals, the load test."""

from __future__ import annotations

import asyncio
import json
import signal

import numpy as np
import pytest
from PIL import Image
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hidenet_core import load_image, sample_paths
from hidenet_core.cli import main as hidenet
from server.clients.firstview import first_view, upload_then_view
from server.clients.loadtest import run_loadtest
from server.clients.process import start_server, stop_server
from server.storage.store import image_id
from tests.conftest import smooth_image
from tests.server.conftest import frame_pixels


def smooth_image_file(path) -> np.ndarray:
    pixels = smooth_image(150, 200, 3, seed=4)
    Image.fromarray(pixels).save(path)
    return pixels


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    images = tmp_path_factory.mktemp("images")
    for path in sample_paths()[:2]:  # astronaut (RGB) and camera (grey), 512x512
        (images / path.name).write_bytes(path.read_bytes())
    server = start_server(tmp_path_factory.mktemp("data"), "interp", extra=["--images", str(images)])
    yield server.proc, server.url
    if server.proc.poll() is None:
        stop_server(server)


@pytest.mark.parametrize("sample", ["astronaut", "camera"])
def test_fetch_saves_every_level_and_the_last_is_bit_exact(server, tmp_path, capsys, sample):
    _, base = server
    original = load_image(next(p for p in sample_paths() if p.stem == sample)).pixels
    out = tmp_path / "out"
    assert hidenet(["fetch", base, image_id(original), "--link", "cable", "--out", str(out)]) == 0
    timeline = json.loads((out / "timeline.json").read_text())
    chunks = timeline["levels"]
    assert np.array_equal(frame_pixels((out / f"chunk-{len(chunks):02d}.png").read_bytes()), original)
    assert sorted(p.name for p in out.glob("chunk-*.png")) == [f"chunk-{i:02d}.png" for i in range(1, len(chunks) + 1)]
    # quality layers: a coarse picture of every level, then each layer again, the last one exact
    assert chunks[0]["level"] == 4 and chunks[-1]["level"] == 0 and chunks[-1]["max_error"] == 0
    assert [c["layer"] for c in chunks] == sorted(c["layer"] for c in chunks) and chunks[-1]["layer"] > 0
    assert all(lv["received_ms"] >= lv["arrival_ms"] for lv in chunks)
    printed = capsys.readouterr().out
    assert "chunk" in printed and "PSNR" in printed and len(printed.splitlines()) == len(chunks) + 1


def test_fetch_resolution_stream_has_one_chunk_per_level(server, tmp_path):
    _, base = server
    out = tmp_path / "levels"
    assert hidenet(["fetch", base, "camera", "--stream", "resolution", "--out", str(out)]) == 0
    timeline = json.loads((out / "timeline.json").read_text())
    levels = [c["level"] for c in timeline["levels"]]  # a level's coding steps come as parts
    assert levels == sorted(levels, reverse=True) and set(levels) == {4, 3, 2, 1, 0}
    assert {c["layer"] for c in timeline["levels"]} == {0} and timeline["meta"]["stream"] == "resolution"


def test_fetch_measures_what_the_viewer_shows_and_names_the_other_figure(server, tmp_path, capsys):
    """By default each chunk's frame is full size, as the viewer shows it, and so are its PSNR
    and SSIM; --no-preview gives each chunk's level at its own size, measured on its own grid.
    The heading says which. Either way the last chunk of a lossless stream is exact."""
    _, base = server
    rows = {}
    for flag in ([], ["--no-preview"]):
        out = tmp_path / ("levels" if flag else "full")
        assert hidenet(["fetch", base, "camera", "--out", str(out), *flag]) == 0
        heading, *lines = capsys.readouterr().out.splitlines()
        assert ("at its own size" in heading) == bool(flag) and ("full-size" in heading) != bool(flag)
        rows[bool(flag)] = [line.split()[-2:] for line in lines]
        with Image.open(out / "chunk-01.png") as im:  # the base level's first chunk
            assert im.size == ((32, 32) if flag else (512, 512))
    full, levels = rows[False], rows[True]
    assert full[-1] == levels[-1] == ["exact", "1.0000"] and len(full) == len(levels) > 5
    assert 10 < float(full[0][0]) < float(full[-2][0]) < 60 and float(full[0][1]) < float(full[-2][1]) < 1


def test_fetch_by_name_with_race(server, tmp_path):
    _, base = server
    out = tmp_path / "race"
    assert hidenet(["fetch", base, "camera", "--race", "--preview", "--max-error", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("race-pjpeg-q90-*.png")) and (out / "chunk-01.png").exists()


def test_fetch_races_several_contenders_and_writes_each_ones_events(server, tmp_path, capsys):
    _, base = server
    out = tmp_path / "race3"
    assert hidenet(["fetch", base, "camera", "--link", "3g", "--preview", "--race", "pjpeg:60,png,webp-lossless",
                    "--out", str(out)]) == 0
    timeline = json.loads((out / "timeline.json").read_text())
    assert list(timeline["racers"]) == ["hidenet", "pjpeg:60", "png", "webp-lossless"]
    for key, racer in timeline["racers"].items():
        events = racer["events"]
        assert events and all("png" not in e for e in events)
        times = [e["arrival_ms"] for e in events]
        assert times == sorted(times)
        if key != "hidenet":
            assert [e["frame"] for e in events] == list(range(1, len(events) + 1))
            for e in events:
                assert (out / f"race-{key.replace(':', '-q')}-{e['frame']}.png").exists()
    original = load_image(next(p for p in sample_paths() if p.stem == "camera")).pixels
    for key in ("png", "webp-lossless"):  # lossless: the last repaint is the original
        last = timeline["racers"][key]["events"][-1]["frame"]
        shown = frame_pixels((out / f"race-{key}-{last}.png").read_bytes())
        assert np.array_equal(shown[:, :, :1] if shown.shape[2] == 3 else shown, original)
    verdict = timeline["verdict"]
    assert [r["key"] for r in verdict["racers"]] == list(timeline["racers"])
    assert verdict["sentence"] in capsys.readouterr().err


def test_fetch_refuses_unknown_contenders(server, tmp_path, capsys):
    _, base = server
    with pytest.raises(SystemExit):
        hidenet(["fetch", base, "camera", "--race", "gif", "--out", str(tmp_path)])
    assert "unknown contender 'gif'" in capsys.readouterr().err


def _busy_server(tmp_path):
    """A server whose one client (this machine) may have one new stream encoded at once, with two
    images nothing has encoded yet: a 640x480 one (``big``) and a small one."""
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(smooth_image(480, 640, 3, seed=21)).save(images / "big.png")
    Image.fromarray(smooth_image(64, 96, 3, seed=22)).save(images / "small.png")
    return start_server(tmp_path / "data", "interp", extra=["--images", str(images), "--max-client-encodes", "1",
                                                             "--no-encode-uploads"])


def _encoding_elsewhere(url: str, seconds: float) -> None:
    """Hold this client's encode slot for ``seconds``: a first view of ``big`` on a 2G link, left then
    (its encode is cancelled with its last viewer). Returns once the encode runs."""
    import threading
    import time

    from websockets.sync.client import connect as connect_sync

    from server.clients.fetch import resolve_image

    running = threading.Event()
    big = resolve_image(url, "big")

    def view() -> None:
        with connect_sync(url.replace("http", "ws", 1) + "/ws") as ws:
            ws.send(json.dumps({"type": "start", "image": big, "link": "2g"}))
            while (message := json.loads(ws.recv()))["type"] != "meta":
                assert message["type"] != "error", message
            running.set()
            time.sleep(seconds)

    threading.Thread(target=view, daemon=True).start()
    assert running.wait(60), "the first view did not start"


def test_fetch_asks_a_busy_server_again_and_then_streams(tmp_path, capsys):
    """``hidenet fetch`` told "busy" (this client's encode slot is taken) waits the ``retry_ms`` the
    server says and asks again on the same socket; once the other first view has left, the stream
    plays to the end."""
    server = _busy_server(tmp_path)
    try:
        _encoding_elsewhere(server.url, 1.0)
        assert hidenet(["fetch", server.url, "small", "--out", str(tmp_path / "out")]) == 0
        err = capsys.readouterr().err
        assert "this client already has 1 new stream being encoded" in err and "trying again in 3.0 s (1 of 5)" in err
        assert (tmp_path / "out" / "timeline.json").is_file()
    finally:
        stop_server(server)


def test_fetch_with_no_retries_fails_on_a_busy_server_at_once(tmp_path, capsys):
    server = _busy_server(tmp_path)
    try:
        _encoding_elsewhere(server.url, 5.0)
        assert hidenet(["fetch", server.url, "small", "--retries", "0", "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert "this client already has 1 new stream being encoded" in err and "trying again" not in err
    finally:
        stop_server(server)


def test_fetch_reports_errors_cleanly(server, tmp_path, capsys):
    _, base = server
    assert hidenet(["fetch", base, "0" * 32, "--out", str(tmp_path)]) == 2
    assert "unknown image" in capsys.readouterr().err
    assert hidenet(["fetch", "http://127.0.0.1:9", "0" * 32, "--out", str(tmp_path)]) != 0


@pytest.mark.slow
def test_loadtest_against_the_real_server(server):
    _, base = server
    images = json.loads(__import__("urllib.request").request.urlopen(f"{base}/api/images").read())
    result = asyncio.run(run_loadtest(base, images[1]["id"], [1, 4]))
    assert [r["streams"] for r in result["runs"]] == [1, 4]
    for run in result["runs"]:
        assert run["errors"] == 0 and run["first_level_ms_p95"] is not None and run["peak_rss_mb"] > 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_close_sockets_with_1001_and_exit_cleanly(tmp_path, sig):
    server = start_server(tmp_path, "interp", extra=["--images", str(sample_paths()[0].parent)])
    proc, base = server.proc, server.url

    async def scenario() -> int:
        async with connect(base.replace("http", "ws") + "/ws") as ws:
            await ws.send(json.dumps({"type": "cancel"}))
            assert json.loads(await ws.recv())["type"] == "cancelled"
            proc.send_signal(sig)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 15)
            return closed.value.rcvd.code

    assert asyncio.run(scenario()) == 1001
    assert proc.wait(timeout=20) == 0
    log = server.log_path.read_text()
    assert "Traceback" not in log and " ERROR " not in log


def test_sigterm_in_the_middle_of_an_encode_exits_without_waiting_for_it(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    noise = np.random.default_rng(3).integers(0, 256, (1536, 2048, 3), dtype=np.uint8)  # tens of seconds to encode
    Image.fromarray(noise).save(images / "noise.png", compress_level=1)
    server = start_server(tmp_path / "data", "interp", extra=["--images", str(images)])
    proc, base = server.proc, server.url

    async def scenario() -> int:
        async with connect(base.replace("http", "ws") + "/ws", max_size=None) as ws:
            await ws.send(json.dumps({"type": "start", "image": image_id(noise), "preview": False}))
            while (msg := json.loads(await asyncio.wait_for(ws.recv(), 60)))["type"] != "level":
                assert msg["type"] in ("progress", "meta"), msg
            proc.send_signal(signal.SIGTERM)  # the encoder is a few chunks into the stream
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 60)
            return closed.value.rcvd.code

    assert asyncio.run(scenario()) == 1001
    assert proc.wait(timeout=60) == 0
    assert list((tmp_path / "data" / "cache").glob("*.hdn")) == []  # the encode was cancelled, not finished
    log = server.log_path.read_text()
    assert "Traceback" not in log and " ERROR " not in log


def test_first_view_measures_each_chunk_against_when_it_was_due_and_checks_the_1to1_region(tmp_path):
    """server.clients.firstview, as README's first-view figures are measured: a never-seen image."""
    images = tmp_path / "images"
    images.mkdir()
    photo = smooth_image_file(images / "photo.png")
    server = start_server(tmp_path / "data", "interp", extra=["--images", str(images)])
    try:
        result = asyncio.run(first_view(server.url, image_id(photo), "3g", (64, 48), (100, 60), photo))
    finally:
        stop_server(server)
    assert result["encoding"] is True and result["first_level_ms"] >= result["meta_ms"]
    chunks = result["chunks"]
    assert len(chunks) > 5 and [c["index"] for c in chunks] == list(range(len(chunks)))
    assert all(c["frame_width"] <= 64 and c["frame_height"] <= 48 for c in chunks)  # frames at the display's size
    assert result["region"]["exact"] is True and result["peak_rss_bytes"] > 0


def test_first_view_races_at_the_display_size_and_times_each_repaint(tmp_path):
    """``firstview --race pjpeg``: the viewer's race on a never-seen image; every contender frame
    fits the display and is timed against its arrival."""
    images = tmp_path / "images"
    images.mkdir()
    photo = smooth_image_file(images / "photo.png")
    server = start_server(tmp_path / "data", "interp", extra=["--images", str(images)])
    try:
        result = asyncio.run(first_view(server.url, image_id(photo), "3g", (64, 48), race=["pjpeg"]))
    finally:
        stop_server(server)
    race = result["race"]
    assert result["prepared_ms"] > 0 and len(race) >= 2 and [r["frame"] for r in race] == list(range(1, len(race) + 1))
    assert all(r["contender"] == "pjpeg:90" and r["frame_width"] <= 64 for r in race)
    assert all(r["received_ms"] >= r["arrival_ms"] - 50 for r in race)  # never before its bytes (clocks: 50 ms)
    assert all(c["frame_width"] <= 64 for c in result["chunks"])


def test_first_view_of_a_near_lossless_stream_gets_its_region_within_the_error_at_once(tmp_path):
    """``firstview --max-error 2 --region``: after the end the region comes straight from the final
    picture the encoder kept (exact at the first answer, no predicted one first), within 2 of the photo."""
    images = tmp_path / "images"
    images.mkdir()
    photo = smooth_image_file(images / "photo.png")
    server = start_server(tmp_path / "data", "interp", extra=["--images", str(images)])
    try:
        result = asyncio.run(first_view(server.url, image_id(photo), "unlimited", (64, 48), (100, 60), photo,
                                        max_error=2))
    finally:
        stop_server(server)
    region = result["region"]
    assert region["exact"] is True and region["answers"] == 1


def test_first_view_after_an_upload_joins_its_background_encode_at_1to1(tmp_path):
    """``firstview --upload --follow``: the photograph is uploaded to a server with no image, then
    viewed at 1:1 all along; every region it is answered with is exact at the end."""
    images = tmp_path / "images"
    images.mkdir()
    photo_path = tmp_path / "photo.png"
    photo = smooth_image_file(photo_path)
    server = start_server(tmp_path / "data", "interp", extra=["--images", str(images)])
    try:
        result = asyncio.run(upload_then_view(server.url, photo_path, "3g", (64, 48), (100, 60), photo, True))
    finally:
        stop_server(server)
    assert result["upload_ms"] > 0 and result["chunks"] and result["region"]["exact"] is True
    assert result["follow"] and all(f["ms"] >= 0 for f in result["follow"])


def test_an_upload_flood_from_one_client_gets_two_through_at_a_time(tmp_path):
    """``python -m server.clients.uploadflood``, as the README's upload figures are measured."""
    from server.clients.uploadflood import flood

    server = start_server(tmp_path / "data", "interp")
    try:
        result = asyncio.run(flood(server.url, 6, 1, own_clients=False))
    finally:
        stop_server(server)
    assert sum(result["statuses"].values()) == 6 and set(result["statuses"]) <= {415, 429}
    assert result["peak_rss_bytes"] > 0
