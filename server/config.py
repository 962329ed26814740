"""The server's settings: one frozen dataclass, built by ``hidenet serve`` or by tests."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hidenet_core.codec.encoder import DEFAULT_EFFORT, EFFORTS

from .peers import ANY_PROXY, normalized

__all__ = ["ServerConfig", "default_data_dir"]

MB = 1024 * 1024


def default_data_dir() -> Path:
    """Where uploads and the stream cache live unless ``--data-dir`` says otherwise."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hidenet"


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``create_app`` needs; the defaults are safe for a public demo on loopback."""

    host: str = "127.0.0.1"  # bind address (loopback unless the user asks otherwise)
    port: int = 8080  # TCP port
    model: str = "default"  # predictor name or checkpoint path (``load_model``)
    data_dir: Path = field(default_factory=default_data_dir)  # uploads/ and cache/ below it
    images_dir: Path | None = None  # serve these images; None: the bundled samples
    include_samples: bool = True  # with images_dir None: add the bundled sample photographs
    templates_dir: Path | None = None  # None: the templates shipped with the package
    static_dir: Path | None = None  # None: the static files shipped with the package
    # largest accepted upload (413 beyond): a PNG of max_pixels RGBA pixels that does not compress
    # at all (a 40 MP photograph's lossless PNG is 40 to 100 MB; 20 MB refused most of them)
    max_upload_bytes: int = 160 * MB
    max_pixels: int = 40_000_000  # largest accepted image in pixels (413 beyond: decompression bombs)
    max_uploads: int = 1000  # stored uploads; more are refused with 507 (the disk is not unbounded)
    max_streams: int = 48  # streams running at once over all sockets; more are answered "busy"
    max_sockets: int = 256  # open websockets; more are refused with 503 at the handshake
    max_client_sockets: int = 32  # open websockets of one client (``peers``); more are refused with 429
    max_client_streams: int = 8  # streams one client runs at once over its sockets; more are answered "busy"
    max_client_encodes: int = 1  # new streams one client has encoded at once (first views, downloads): "busy" beyond
    max_client_uploads: int = 2  # uploads one client sends at once; more are refused with 429
    #: 1:1 regions answered by decoding the stream at once (a generative or unfinished stream's exact
    #: pixels: seconds, a minute at 12 MP), below ``workers`` so that frames always find a thread;
    #: more are answered "region_busy" (the viewer asks again)
    max_region_decodes: int = 1
    max_client_region_decodes: int = 1  # of those, what one client may have at once
    #: peers trusted to say whom they forward (``X-Forwarded-For``): the proxy in front, e.g. ("127.0.0.1",)
    forwarded_allow_ips: tuple[str, ...] = ()
    ws_max_message: int = 64 * 1024  # largest websocket message a client may send (close 1009 beyond)
    heartbeat_s: float = 20.0  # websocket ping interval; a peer that misses a pong is dropped
    allowed_origins: tuple[str, ...] = ()  # extra origins allowed on /ws besides the server's own
    workers: int = 2  # executor threads for decoding and encoding (bounded concurrency)
    torch_threads: int = 1  # intra-op threads per inference call
    pixel_cache_mb: int = 256  # decoded originals kept in memory
    frame_cache_mb: int = 128  # rendered level frames (PNG) kept in memory
    final_cache_mb: int = 256  # final pictures of finished near-lossless streams, for 1:1 regions
    race_cache_mb: int = 96  # the race's contender timelines (their PNG frames) kept in memory
    original_cache_mb: int = 64  # original.png of the images served from a directory, made once and kept
    max_encodes: int = 2  # streams encoded at once; a viewer who would start one more is answered "busy"
    cache_mb: int = 4096  # encoded streams kept on disk; the least recently used go first beyond this
    effort: int = DEFAULT_EFFORT  # how hard the encoder works (hidenet encode --effort): faster or smaller
    encode_uploads: bool = True  # start encoding an upload's default stream as soon as it is stored

    def __post_init__(self) -> None:
        checks = {
            "port": 0 <= self.port <= 65535,
            "max_upload_bytes": self.max_upload_bytes >= 1,
            "max_pixels": self.max_pixels >= 1,
            "max_uploads": self.max_uploads >= 0,
            "max_streams": self.max_streams >= 1,
            "max_sockets": self.max_sockets >= 1,
            "max_client_sockets": self.max_client_sockets >= 1,
            "max_client_streams": self.max_client_streams >= 1,
            "max_client_encodes": self.max_client_encodes >= 1,
            "max_client_uploads": self.max_client_uploads >= 1,
            "max_region_decodes": self.max_region_decodes >= 1,
            "max_client_region_decodes": self.max_client_region_decodes >= 1,
            "ws_max_message": self.ws_max_message >= 1024,
            "heartbeat_s": self.heartbeat_s > 0,
            "workers": self.workers >= 1,
            "torch_threads": self.torch_threads >= 1,
            "pixel_cache_mb": self.pixel_cache_mb >= 1,
            "frame_cache_mb": self.frame_cache_mb >= 1,
            "final_cache_mb": self.final_cache_mb >= 1,
            "race_cache_mb": self.race_cache_mb >= 1,
            "original_cache_mb": self.original_cache_mb >= 1,
            "max_encodes": self.max_encodes >= 1,
            "cache_mb": self.cache_mb >= 1,
            "effort": self.effort in EFFORTS,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid server setting {bad[0]}={getattr(self, bad[0])!r}")
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        proxies = tuple(a if a == ANY_PROXY else normalized(a) for a in self.forwarded_allow_ips)
        if None in proxies:
            raise ValueError(f"invalid server setting forwarded_allow_ips={self.forwarded_allow_ips!r}: "
                             "IP addresses, or '*'")
        object.__setattr__(self, "forwarded_allow_ips", proxies)
