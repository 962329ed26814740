"""Several server processes on one port, managed by gunicorn (``hidenet serve --processes N``).

aiohttp's documented way to run on several cores: gunicorn, the process manager, binds
the port and forks N workers of ``aiohttp.GunicornWebWorker``, each of which builds the
app with ``create_app`` (after the fork: every process loads its own model and thread
pool) and accepts connections on the shared socket. Gunicorn replaces a worker that
dies; on SIGTERM it asks every worker to stop, and each closes its websockets with 1001
(``on_shutdown``) before it exits. The processes share the data directory: uploads and
encoded streams are visible to all of them at once (``storage/store.py``,
``storage/cache.py``).

The same, with gunicorn's own command line (``app`` is the factory)::

    gunicorn 'server.processes:app(data_dir="/var/cache/hidenet")' \\
        --worker-class aiohttp.GunicornWebWorker --workers 2 --bind 127.0.0.1:8081 --graceful-timeout 10
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from aiohttp import web
from gunicorn.app.base import BaseApplication

from .app import create_app
from .config import ServerConfig

__all__ = ["app", "serve_processes", "per_process", "GRACEFUL_TIMEOUT_S"]

log = logging.getLogger(__name__)

#: how long a worker may take to close its sockets and finish after SIGTERM
GRACEFUL_TIMEOUT_S = 10


def per_process(config: ServerConfig, processes: int) -> ServerConfig:
    """Each process's share of the machine: decoder threads so that N processes together use
    the cores once (at least one each), one torch thread per decoder thread."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return dataclasses.replace(config, workers=max(1, min(config.workers, cores // processes)), torch_threads=1)


def app(**settings: object) -> web.Application:
    """The app factory for gunicorn's command line: ``server.processes:app(data_dir="...", ...)``
    takes any ``ServerConfig`` field (paths as strings)."""
    paths = {"data_dir", "images_dir", "templates_dir", "static_dir"}
    fields = {k: Path(v) if k in paths and v is not None else v for k, v in settings.items()}
    for name in ("allowed_origins", "forwarded_allow_ips"):
        if name in fields:
            fields[name] = tuple(fields[name])  # type: ignore[arg-type]
    return create_app(ServerConfig(**fields))  # type: ignore[arg-type]


class _Gunicorn(BaseApplication):
    """gunicorn's custom-application API: the options and, in each worker, the app."""

    def __init__(self, config: ServerConfig, processes: int) -> None:
        self.config, self.processes = config, processes
        super().__init__()

    def load_config(self) -> None:
        options = {
            "bind": f"{self.config.host}:{self.config.port}",
            "workers": self.processes,
            "worker_class": "aiohttp.GunicornWebWorker",
            "graceful_timeout": GRACEFUL_TIMEOUT_S,
            "timeout": 120,  # a worker silent this long (its loop blocked) is killed and replaced
            "proc_name": "hidenet",
            "errorlog": "-",
            "loglevel": "info",
        }
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25: one fixed path per user
            options["control_socket_disable"] = True
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> web.Application:  # in each worker, after the fork
        return create_app(self.config)


def serve_processes(config: ServerConfig, processes: int) -> int:
    """Run ``processes`` server processes under gunicorn until SIGTERM or SIGINT; the exit status."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch starts in a worker: no oversubscription
    _Gunicorn(per_process(config, processes), processes).run()
    return 0
