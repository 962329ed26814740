"""The README's scale-out deployment, for real: its ``hidenet serve --processes`` command behind
its nginx configuration (Debian's nginx, installed by ``make test``), on loopback ports."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from hidenet_core import load_image, sample_paths
from server.clients.loadtest import run_loadtest, stream_once
from server.clients.process import free_port, start_server, stop_server, worker_pids
from server.clients.proxy import NGINX_SITE, nginx_binary, site_for, start_nginx, stop_nginx
from server.storage.store import image_id
from tests.conftest import smooth_image
from tests.server.conftest import frame_pixels, png_of

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_deployment() -> tuple[list[str], str]:
    """The README's server command (split) and nginx site, from its "Several server processes" part."""
    text = README.read_text()
    part = text[text.index("**Several server processes.**") : text.index("**What the processes share.**")]
    commands = [line for block in re.findall(r"```sh\n(.*?)```", part, re.S) for line in block.splitlines()]
    serve = next(line for line in commands if line.startswith("hidenet serve"))
    (site,) = re.findall(r"```nginx\n(.*?)```", part, re.S)
    return shlex.split(serve), site


def test_the_readme_site_is_the_one_the_bench_runs():
    _, site = readme_deployment()
    assert site == NGINX_SITE


def test_serve_processes_refuses_an_unknown_model_before_forking(tmp_path, capsys):
    from hidenet_core.cli import main

    assert main(["serve", "--processes", "2", "--model", "nope", "--data-dir", str(tmp_path)]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    if nginx_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing (make nginx installs Debian's)")
        pytest.skip("no nginx (set HIDENET_NGINX; `make nginx` installs Debian's)")
    argv, site = readme_deployment()
    options = dict(zip(argv[2::2], argv[3::2]))
    assert argv[:2] == ["hidenet", "serve"] and set(options) == {"--processes", "--port", "--data-dir",
                                                                 "--forwarded-allow-ips"}, argv
    app_port, proxy_port = free_port(), free_port()
    data = tmp_path_factory.mktemp("data")  # the README's --data-dir, here a temporary one
    images = tmp_path_factory.mktemp("images")
    astronaut = sample_paths()[0]
    (images / astronaut.name).write_bytes(astronaut.read_bytes())
    # the load test's 64 viewers all come from this machine: one client, allowed as many streams
    server = start_server(data, "interp", processes=int(options["--processes"]), port=app_port,
                          extra=["--images", str(images), "--forwarded-allow-ips", options["--forwarded-allow-ips"],
                                 "--max-client-streams", "80", "--max-client-sockets", "80"])
    try:
        # nginx's own files (pid, logs, buffered uploads) in a directory its workers can enter
        proxy = start_nginx(site_for(site, proxy_port, app_port), tmp_path_factory.mktemp("nginx"), proxy_port)
    except BaseException:
        stop_server(server)
        raise
    yield server, proxy, data
    stop_nginx(proxy)
    if server.proc.poll() is None:
        assert stop_server(server) == 0
    log = server.log_tail(200_000)
    assert "Traceback" not in log, log


UPLOADED = smooth_image(96, 128, 3, seed=77)


async def upload(session: aiohttp.ClientSession, url: str, pixels: np.ndarray) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("file", png_of(pixels), filename="through-the-proxy.png", content_type="image/png")
    async with session.post(f"{url}/api/images", data=form) as resp:
        await resp.read()
        return resp


async def lossless(url: str, iid: str, link: str | dict = "unlimited") -> tuple[dict, list[bytes]]:
    """One lossless stream on a new connection (a session of its own)."""
    frames: list[bytes] = []
    async with aiohttp.ClientSession() as session:
        result = await stream_once(session, url, iid, link, preview=False, on_frame=frames.append)
    return result, frames


@pytest.mark.slow
def test_an_upload_through_the_proxy_streams_bit_exact_on_new_connections(deployment):
    _, proxy, _ = deployment

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            resp = await upload(session, proxy.url, UPLOADED)
            assert resp.status == 201
        for _ in range(6):  # new connections: either process answers, each must know the upload at once
            result, frames = await lossless(proxy.url, image_id(UPLOADED))
            assert result["error"] is None and np.array_equal(frame_pixels(frames[-1]), UPLOADED)

    asyncio.run(scenario())


@pytest.mark.slow
def test_the_origin_check_holds_through_the_proxy(deployment):
    _, proxy, _ = deployment

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{proxy.url}/ws", headers={"Origin": proxy.url}) as ws:
                await ws.send_json({"type": "cancel"})
                assert (await ws.receive_json())["type"] == "cancelled"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"{proxy.url}/ws", headers={"Origin": "http://evil.example"})
            assert refused.value.status == 403

    asyncio.run(scenario())


@pytest.mark.slow
def test_64_concurrent_streams_through_the_proxy(deployment):
    _, proxy, _ = deployment
    result = asyncio.run(run_loadtest(proxy.url, image_id(UPLOADED), [64]))
    (run,) = result["runs"]
    assert run["errors"] == 0 and run["completed"] == 64, run["error_messages"]


async def per_process_stats(url: str, processes: int) -> dict[int, dict]:
    """/api/stats of every process (new connections until each has answered)."""
    seen: dict[int, dict] = {}
    for _ in range(200):
        async with aiohttp.ClientSession() as session, session.get(f"{url}/api/stats") as resp:
            stats = await resp.json()
        seen[stats["pid"]] = stats
        if len(seen) == processes:
            break
    return seen


async def resilient(url: str, iid: str, link: dict) -> tuple[int, dict, list[bytes]]:
    """A viewer: streams, and when the server goes away (1001) reconnects and starts again."""
    went_away = 0
    while True:
        result, frames = await lossless(url, iid, link)
        if result["close_code"] == 1001 and went_away < 3:
            went_away += 1
            continue
        return went_away, result, frames


@pytest.mark.slow
def test_sigterm_of_one_process_mid_stream(deployment):
    """Its viewers get 1001 and reconnect to the other process; the manager replaces it; nothing stored is lost."""
    server, proxy, data = deployment
    astronaut = load_image(sample_paths()[0]).pixels
    iid = image_id(astronaut)
    slow = {"down_kbps": 1200, "rtt_ms": 50}  # about 3 s per stream

    async def scenario() -> tuple[int, list]:
        async with aiohttp.ClientSession() as session, session.get(f"{proxy.url}/api/images/{iid}/stream.hdn") as r:
            assert r.status == 200  # encoded and cached once, for every process
        viewers = [asyncio.create_task(resilient(proxy.url, iid, slow)) for _ in range(8)]
        await asyncio.sleep(1.0)
        stats = await per_process_stats(proxy.url, 2)
        victim = max(stats, key=lambda pid: stats[pid]["streams_running"])
        assert stats[victim]["streams_running"] > 0, stats
        os.kill(victim, signal.SIGTERM)
        return victim, await asyncio.gather(*viewers)

    before = set(worker_pids(server))
    victim, outcomes = asyncio.run(scenario())
    assert victim in before
    summary = [(went_away, result["error"], result["levels"]) for went_away, result, _ in outcomes]
    assert sum(went_away for went_away, _, _ in outcomes) >= 1, summary  # its viewers were told 1001...
    for _, result, frames in outcomes:  # ...and every viewer got the whole image, bit-exact
        assert result["error"] is None and np.array_equal(frame_pixels(frames[-1]), astronaut)
    deadline = time.monotonic() + 30
    while (len(worker_pids(server)) != 2 or victim in worker_pids(server)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(worker_pids(server)) == 2 and victim not in worker_pids(server)  # replaced by the manager
    log = server.log_tail(200_000)
    assert f"Worker exiting (pid: {victim})" in log

    async def still_there() -> None:  # nothing stored is lost: the upload, on any process
        for _ in range(4):
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{proxy.url}/api/images") as resp:
                    assert image_id(UPLOADED) in [i["id"] for i in await resp.json()]
                async with session.get(f"{proxy.url}/api/images/{image_id(UPLOADED)}/original.png") as resp:
                    assert np.array_equal(frame_pixels(await resp.read()), UPLOADED)

    asyncio.run(still_there())
    assert not list(data.rglob("*.part"))
    assert json.loads((data / "uploads" / f"{image_id(UPLOADED)}.json").read_text())["width"] == 128


@pytest.mark.slow
def test_the_readme_gunicorn_command_serves(tmp_path):
    """The README's gunicorn command line (its factory call and options), on a loopback port."""
    import subprocess
    import sys
    import urllib.request

    text = README.read_text()
    part = text[text.index("**Several server processes.**") : text.index("**What the processes share.**")]
    (command,) = [b for b in re.findall(r"```sh\n(.*?)```", part, re.S) if b.startswith("gunicorn")]
    argv = shlex.split(command.replace("\\\n", " "))
    port = free_port()
    argv[1] = argv[1].replace('"/var/cache/hidenet"', repr(str(tmp_path))).replace(")", ', model="interp")')
    argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/stats", timeout=2) as resp:
                    assert json.load(resp)["images"] == 5
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.2)
        else:
            pytest.fail("the gunicorn command did not answer within 60 s")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
