"""A real ``hidenet serve`` process on a free loopback port.

For everything that needs the server as users run it, not an in-process app: the
load test and ``hidenet bench``, the end-to-end and browser tests, the screenshots.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServerProcess", "free_port", "start_server", "stop_server"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    proc: subprocess.Popen
    url: str  # http://127.0.0.1:PORT
    log_path: Path  # the server's stderr

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def _healthy(url: str) -> bool:
    with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url + "/healthz", timeout=2) as response:
        return json.load(response).get("status") == "ok"
    return False


def start_server(data_dir: Path, model: str = "default", max_streams: int = 64, extra: Sequence[str] = (),
                 cpus: set[int] | None = None, timeout_s: float = 120, processes: int | None = None,
                 port: int | None = None) -> ServerProcess:
    """Start ``hidenet serve`` (pinned to ``cpus`` if given; with ``processes``, that many under
    gunicorn) and return once /healthz answers ok (from every process).

    Raises RuntimeError, with the end of the server's log, if it exits or does not answer in time.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cmd = [sys.executable, "-m", "hidenet_core.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(data_dir), "--model", model, "--max-streams", str(max_streams), *extra]
    if processes is not None:
        cmd += ["--processes", str(processes)]
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    log_path = data_dir / "server.log"  # a file, not a pipe: a full pipe would stall the server
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, preexec_fn=pin)
    server = ServerProcess(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{server.log_tail()}")
        if _healthy(server.url) and len(worker_pids(server)) >= (processes or 0):
            if processes:
                time.sleep(0.5)  # the last worker to fork may still be loading its model
                if not _all_healthy(server.url, processes, deadline):
                    continue
            return server
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"the server did not answer /healthz within {timeout_s:.0f} s:\n{server.log_tail()}")


def worker_pids(server: ServerProcess) -> list[int]:
    """The server's child processes (the workers gunicorn manages; none for a single process)."""
    try:
        text = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text()
    except OSError:
        return []
    return [int(pid) for pid in text.split()]


def _all_healthy(url: str, processes: int, deadline: float) -> bool:
    """Every one of ``processes`` has answered /api/stats (each names its pid)."""
    seen: set[int] = set()
    while len(seen) < processes and time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url + "/api/stats", timeout=2) as r:
            seen.add(json.load(r)["pid"])
    return len(seen) >= processes


def stop_server(server: ServerProcess) -> int:
    """SIGTERM (a graceful shutdown), then kill after 20 s; returns the exit status."""
    server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        return server.proc.wait()
