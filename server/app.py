"""The application factory and the lifetime of its resources."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator

import aiohttp_jinja2
import jinja2
from aiohttp import web

from hidenet_core import Predictor, load_model, sample_paths
from hidenet_core.memory import limit_arenas, release_after_strips

from .collector import freeze_start_up
from .config import MB, ServerConfig
from .descriptors import raise_open_files
from .keys import (
    CACHE,
    CLOCK,
    CONFIG,
    FINALS,
    FRAMES,
    MODEL,
    MODEL_HASH,
    ORIGINALS,
    PEERS,
    RACES,
    SOCKETS,
    SOURCES,
    STATIC,
    STATS,
    STORE,
    THUMBNAILS,
    WORKER,
)
from .peers import Peers
from .routes import routes
from .stats import ServerStats
from .storage.cache import StreamCache
from .storage.files import sweep_partials
from .storage.lru import LRU
from .storage.originals import OriginalPNGs
from .storage.store import ImageStore
from .streaming.clock import Clock, MonotonicClock
from .streaming.frames import FinalPictures, FrameCache, warm_up
from .streaming.race import RaceCache
from .streaming.source import StreamSources
from .streaming.ws import close_sockets
from .views.errors import json_errors, json_protocol_errors
from .views.resources import StaticFiles, find_dir
from .worker import Worker

__all__ = ["create_app"]

log = logging.getLogger(__name__)

#: the worker's priority for encoding a chunk: after the first frames of streams starting (priority =
#: chunk index), before the later frames of streams already running
ENCODE_PRIORITY = 2


def create_app(config: ServerConfig | None = None, *, clock: Clock | None = None,
               model: Predictor | None = None) -> web.Application:
    """The hideNet web application. ``clock`` replaces the real one (tests); ``model``, if
    given, is used instead of loading ``config.model``."""
    config = config or ServerConfig()
    raise_open_files()  # a connection is a descriptor: a soft limit of 1024 was a cap anyone could fill
    limit_arenas()  # before the worker and encoder threads exist: 0.3 GiB less at 12 MP (memory.limit_arenas)
    release_after_strips()  # freed pages back after each strip of a large level: 0.27 GiB less at 40 MP
    json_protocol_errors()
    app = web.Application(middlewares=[json_errors], client_max_size=config.max_upload_bytes + MB)
    app[CONFIG] = config
    app[CLOCK] = clock or MonotonicClock()
    app[STATS] = ServerStats()
    app[SOCKETS] = weakref.WeakSet()
    app[PEERS] = Peers()
    static_dir = config.static_dir or find_dir("static")
    app[STATIC] = StaticFiles(static_dir)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(config.templates_dir or find_dir("templates"))),
        autoescape=jinja2.select_autoescape(default=True),
    )
    env.globals["static"] = app[STATIC].url
    app.add_routes(routes())
    app.cleanup_ctx.append(_resources(model))
    app.on_shutdown.append(close_sockets)
    return app


def _resources(preloaded: Predictor | None):
    async def resources(app: web.Application) -> AsyncIterator[None]:
        cfg = app[CONFIG]
        worker = Worker(cfg.workers, cfg.torch_threads)
        try:
            app[WORKER] = worker
            app[MODEL] = preloaded or await worker.run(load_model, cfg.model)
            app[MODEL_HASH] = (await worker.run(app[MODEL].weights_hash)).hex()
            await worker.run(warm_up, app[MODEL])  # the first viewer's first frame without one-time costs
            store = ImageStore(cfg.data_dir / "uploads", cfg.pixel_cache_mb * MB)
            await worker.run(_fill_store, store, cfg)
            app[STORE] = store
            (cfg.data_dir / "cache").mkdir(parents=True, exist_ok=True)
            app[CACHE] = StreamCache(cfg.data_dir / "cache", max_bytes=cfg.cache_mb * MB)
            # what a writer killed mid-write (kill -9) left behind; files other processes are writing stay
            await worker.run(_sweep, app[CACHE], store)
            app[FRAMES] = FrameCache(cfg.frame_cache_mb * MB)
            app[FINALS] = FinalPictures(cfg.final_cache_mb * MB)
            app[RACES] = RaceCache(cfg.race_cache_mb * MB)
            app[THUMBNAILS] = LRU(256)
            app[ORIGINALS] = OriginalPNGs(cfg.original_cache_mb * MB)
            app[SOURCES] = StreamSources(app[CACHE], lambda fn, *a: worker.run(fn, *a, priority=ENCODE_PRIORITY),
                                         app[CLOCK].now, cfg.max_encodes, lambda event: _count_cache_event(app, event),
                                         cfg.max_client_encodes)
            log.info("serving %d images with model %r", len(store), app[MODEL].name)
            freeze_start_up()  # what start-up loaded is never scanned again by a full collection
            yield
        finally:
            if SOURCES in app:  # every encode stops within a channel's coding, so the worker closes at once
                await app[SOURCES].close()
            if RACES in app:  # race builds waiting for a worker thread never start
                await app[RACES].close()
            if ORIGINALS in app:
                await app[ORIGINALS].close()
            await asyncio.to_thread(worker.close)

    return resources


def _count_cache_event(app: web.Application, event: str) -> None:
    stats = app[STATS]
    attr = {"hit": "cache_hits", "miss": "cache_misses", "corrupt": "cache_corrupt", "cancelled": "encodes_cancelled",
            "busy": "encodes_refused"}[event]
    setattr(stats, attr, getattr(stats, attr) + 1)


def _sweep(cache: StreamCache, store: ImageStore) -> None:
    cache.sweep()
    sweep_partials(store.uploads_dir)


def _fill_store(store: ImageStore, cfg: ServerConfig) -> None:
    if cfg.images_dir is not None:
        if not store.add_dir(cfg.images_dir):
            log.warning("no readable images in %s", cfg.images_dir)
    elif cfg.include_samples:
        for path in sample_paths():
            store.add_file(path)
    store.load_uploads()
