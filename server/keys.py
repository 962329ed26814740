"""Every piece of typed application state, as ``web.AppKey``s in one place."""

from __future__ import annotations

import weakref

from aiohttp import web

from hidenet_core import Predictor

from .config import ServerConfig
from .peers import Peers
from .stats import ServerStats
from .storage.cache import StreamCache
from .storage.lru import LRU
from .storage.originals import OriginalPNGs
from .storage.store import ImageStore
from .streaming.clock import Clock
from .streaming.frames import FinalPictures, FrameCache
from .streaming.race import RaceCache
from .streaming.source import StreamSources
from .views.resources import StaticFiles
from .worker import Worker

__all__ = ["CONFIG", "CLOCK", "MODEL", "MODEL_HASH", "WORKER", "STORE", "CACHE", "RACES", "FRAMES", "FINALS", "STATIC",
           "THUMBNAILS", "ORIGINALS", "SOCKETS", "PEERS", "STATS", "SOURCES"]

CONFIG = web.AppKey("config", ServerConfig)
CLOCK = web.AppKey("clock", Clock)  # the link schedule's time source (a fake one in tests)
MODEL = web.AppKey("model", Predictor)
MODEL_HASH = web.AppKey("model_hash", str)  # hex weights hash, computed once (it hashes every weight)
WORKER = web.AppKey("worker", Worker)  # executor for all CPU work
STORE = web.AppKey("store", ImageStore)  # images by content-hash id
CACHE = web.AppKey("cache", StreamCache)  # encoded .hdn streams on disk
SOURCES = web.AppKey("sources", StreamSources)  # streams being viewed or encoded, shared by their viewers
RACES = web.AppKey("races", RaceCache)  # the race's contender timelines
FRAMES = web.AppKey("frames", FrameCache)  # rendered level frames and their quality
FINALS = web.AppKey("finals", FinalPictures)  # final pictures of finished near-lossless streams (1:1 regions)
THUMBNAILS = web.AppKey("thumbnails", LRU)  # thumbnail PNGs by image id
ORIGINALS = web.AppKey("originals", OriginalPNGs)  # original.png of the images served from a directory
STATIC = web.AppKey("static", StaticFiles)  # static dir + content hashes for URLs
SOCKETS = web.AppKey[weakref.WeakSet[web.WebSocketResponse]]("sockets")  # open websockets, closed on shutdown
PEERS = web.AppKey("peers", Peers)  # open websockets and running streams per client (the per-client caps)
STATS = web.AppKey("stats", ServerStats)  # counters for /api/stats
