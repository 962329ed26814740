"""nginx in front of the server processes, as the README's "Scaling out" section sets it up.

``NGINX_SITE`` is the README's site configuration, word for word (a test checks that
they agree, and the proxy test runs the README's own text); ``start_nginx`` runs it on
loopback ports in a private directory (its own pid file, logs and temporary files,
``daemon off``), for the proxy test and for the load test's "behind the proxy" row.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NGINX_SITE", "nginx_binary", "site_for", "start_nginx", "stop_nginx", "NginxProcess"]

#: the site configuration of the README (the app on 127.0.0.1:8081, the proxy on port 80)
NGINX_SITE = """\
map $http_upgrade $connection_upgrade { default upgrade; '' close; }
limit_conn_zone $binary_remote_addr zone=hidenet_clients:10m;
upstream hidenet {
  server 127.0.0.1:8081;                       # gunicorn: every process accepts on this socket
}
server {
  listen 80;
  client_max_body_size 161m;                   # uploads: 160 MB and the multipart envelope
  client_header_timeout 10s;                   # a request's headers within 10 s (slowloris)
  limit_conn hidenet_clients 128;              # requests in progress per visitor (the server counts finer)
  location / {
    proxy_pass http://hidenet;
    proxy_http_version 1.1;                    # websockets
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    proxy_set_header Host $http_host;          # with the port: the Origin check compares with it
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;  # who the client is (per-client caps)
    proxy_read_timeout 300s;
  }
}
"""


def nginx_binary() -> str | None:
    """``$HIDENET_NGINX``, else Debian's nginx (``make nginx`` installs it), or None."""
    for candidate in (os.environ.get("HIDENET_NGINX"), shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def site_for(site: str, listen_port: int, app_port: int) -> str:
    """The README's site with its ports replaced by these loopback ones."""
    out = site.replace("listen 80;", f"listen 127.0.0.1:{listen_port};")
    out = out.replace("127.0.0.1:8081;", f"127.0.0.1:{app_port};")
    if out == site:
        raise ValueError("the site configuration has no 'listen 80;' and '127.0.0.1:8081;' to replace")
    return out


@dataclass
class NginxProcess:
    proc: subprocess.Popen
    url: str  # http://127.0.0.1:PORT, the proxy
    directory: Path  # its configuration, logs and temporary files

    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _main_conf(site: str, directory: Path) -> str:
    # as root, nginx's workers would switch to "nobody", who cannot write the temporary
    # files of a buffered upload in a private directory: keep them as this user
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"  {kind}_temp_path {directory / kind};" for kind in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}daemon off;\nworker_processes 2;\npid {directory / 'nginx.pid'};\n"
            f"error_log {directory / 'error.log'} warn;\nevents {{ worker_connections 1024; }}\n"
            f"http {{\n  access_log off;\n{temp}\n{site}}}\n")


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def start_nginx(site: str, directory: Path, listen_port: int, timeout_s: float = 20) -> NginxProcess:
    """Run nginx with ``site`` (ports already replaced) until ``stop_nginx``."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed (Debian: apt-get install nginx; make test does it)")
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(_main_conf(site, directory))
    log = open(directory / "stderr.log", "wb")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen([binary, "-p", str(directory), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    nginx = NginxProcess(proc, f"http://127.0.0.1:{listen_port}", directory)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {proc.returncode}: "
                               f"{(directory / 'stderr.log').read_text(errors='replace')}{nginx.error_log()}")
        if _listening(listen_port):
            return nginx
        time.sleep(0.05)
    stop_nginx(nginx)
    raise RuntimeError(f"nginx did not listen on {listen_port} within {timeout_s:.0f} s: {nginx.error_log()}")


def stop_nginx(nginx: NginxProcess) -> int:
    """SIGQUIT (graceful), then kill after 10 s; the exit status."""
    if nginx.proc.poll() is None:
        nginx.proc.send_signal(3)  # SIGQUIT: nginx's graceful shutdown
    try:
        return nginx.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        nginx.proc.kill()
        return nginx.proc.wait()
