"""``pip install .`` (not editable) gives a working ``hidenet serve``: pages, static files, streams.

Builds the wheel from a copy of the source tree, checks what it ships, installs it into
a fresh virtual environment whose dependencies come from this one (a ``.pth`` file,
no download), and smoke-runs the server from there.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from server.clients.process import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in ("hidenet_core", "server", "templates", "static"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("hidenet-*.whl")
    return whl


def test_wheel_ships_templates_static_samples_and_weights(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("templates", "static"):
        for file in (ROOT / folder).rglob("*"):
            if file.is_file() and "__pycache__" not in file.parts:
                assert f"server/{folder}/{file.relative_to(ROOT / folder).as_posix()}" in names
    assert {"server/templates/base.html", "server/templates/gallery.html", "server/templates/viewer.html"} <= names
    assert len([n for n in names if n.startswith("hidenet_core/samples/") and n.endswith(".png")]) >= 4
    if (ROOT / "hidenet_core" / "weights" / "default.pt").exists():
        assert "hidenet_core/weights/default.pt" in names
    assert {"server/app.py", "server/streaming/ws.py", "server/clients/fetch.py", "server/clients/loadtest.py",
            "hidenet_core/codec/decoder.py", "hidenet_core/codec/stages/calibration.py"} <= names
    (meta,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    commands = zipfile.ZipFile(wheel).read(meta).decode().split("[hidenet.commands]")[1]
    assert "serve = server.cli" in commands and "encode = hidenet_core.commands.encode" in commands
    assert not [n for n in names if n.startswith(("templates/", "static/", "tests/"))]  # nothing at top level


def test_installed_wheel_serves_pages_static_files_and_streams(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # dependencies (and pip) from this environment; its editable hidenet is not activated (.pth files
    # of a directory added this way are not processed)
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300, cwd=tmp_path)
    where = subprocess.run([py, "-c", "import server, hidenet_core; print(server.__file__, hidenet_core.__file__)"],
                           check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert str(ROOT) not in where and str(site) in where

    port = free_port()
    env = {**os.environ, "PYTHONPATH": ""}
    with open(tmp_path / "serve.log", "wb") as log:
        serve = [venv / "bin" / "hidenet", "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")]
        proc = subprocess.Popen(serve, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        html = urllib.request.urlopen(f"{base}/").read().decode()
        images = json.loads(urllib.request.urlopen(f"{base}/api/images").read())
        assert len(images) >= 4 and images[0]["name"] in html
        css = re.search(r'/static/css/app\.css\?v=[0-9a-f]{12}', html)
        assert css and urllib.request.urlopen(base + css.group(0)).read() == (ROOT / "static/css/app.css").read_bytes()
        viewer = urllib.request.urlopen(f"{base}/view/{images[0]['id']}").read().decode()
        assert images[0]["id"] in viewer

        async def stream() -> list[str]:
            kinds = []
            async with connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
                await ws.send(json.dumps({"type": "start", "image": images[1]["id"], "max_error": 4}))
                async for msg in ws:
                    if isinstance(msg, str):
                        kinds.append(json.loads(msg)["type"])
                        if kinds[-1] in ("done", "error"):
                            break
            return kinds

        kinds = [k for k in asyncio.run(stream()) if k != "progress"]  # progress: the server encoding, first view
        assert kinds[0] == "meta" and kinds[-1] == "done" and kinds.count("level") >= 4
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0, (tmp_path / "serve.log").read_text()
