"""The open-file limit the server raises at start (``server/descriptors.py``), against a real process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from server.descriptors import raise_open_files


def test_connections_that_never_finish_a_request_cannot_fill_a_low_open_file_limit(tmp_path):
    """Started under a soft limit of 256 open files (Linux often starts processes at 1024), 400
    connections that each send half a request and wait (a slowloris, from one client) took every
    descriptor, and nobody else could connect. The server raises its soft limit at start."""
    import resource
    import socket
    import urllib.request

    from server.clients.process import start_server, stop_server

    if not Path("/proc/self/limits").exists():
        pytest.skip("reads the server's limits from /proc (Linux)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the hard limit on open files here is {hard}: no room to raise the soft one past 400 connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # what the server process inherits
    try:
        server = start_server(tmp_path / "data", "interp")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    held = []
    try:
        port = int(server.url.rsplit(":", 1)[1])
        for _ in range(400):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the headers never end
            held.append(s)
        time.sleep(0.5)  # the server accepts them
        with urllib.request.urlopen(server.url + "/healthz", timeout=10) as response:
            assert response.status == 200
        limits = Path(f"/proc/{server.proc.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
        assert int(line.split()[3]) > 400, line
    finally:
        for s in held:
            s.close()
        stop_server(server)


def test_raising_the_limit_never_lowers_it():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before, after = raise_open_files(wanted=16)  # below what the process has: left as it is
    assert before == after == soft and resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)
