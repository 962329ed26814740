"""Encoded ``.hdn`` streams on disk, named by image content hash, mode, model and format version.

Recently used streams are also kept in memory. A file is written atomically and
checked when read: the header CRC, every chunk's payload CRC, the level order and the
exact length. A file that fails the check is deleted and the image re-encoded, never
served. Concurrent requests for a stream that is being encoded wait for that one encoding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hidenet_core import HdnFormatError
from hidenet_core.codec.container import StreamLayout, scan_stream
from hidenet_core.codec.versions import VERSION

from .lru import LRU
from .singleflight import SingleFlight
from .store import atomic_write

__all__ = ["StreamKey", "StreamCache"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamKey:
    """What determines an encoded stream."""

    image_id: str  # content hash of the pixels
    model_hash: str  # hex weights hash of the predictor
    max_error: int  # d for every level
    generative_levels: int  # g

    @property
    def filename(self) -> str:
        # the format version: streams an older server wrote are re-encoded, not served
        return f"{self.image_id}.{self.model_hash[:16]}.d{self.max_error}.g{self.generative_levels}.v{VERSION}.hdn"


class StreamCache:
    """The on-disk cache. ``load``/``save`` block (call them in the worker)."""

    def __init__(self, directory: Path, memory_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = directory
        self._memory = LRU(memory_bytes, weigh=lambda item: len(item[0]))  # type: ignore[index]
        self._flights: SingleFlight[tuple[bytes, StreamLayout]] = SingleFlight()

    def path(self, key: StreamKey) -> Path:
        return self.directory / key.filename

    def load(self, key: StreamKey) -> tuple[bytes, StreamLayout] | None:
        """The cached stream, or None if absent or corrupted (a corrupted file is removed)."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            layout = scan_stream(data)
            if layout.header.model_hash.hex() != key.model_hash:
                raise HdnFormatError("encoded with other weights")
            if layout.header.version != VERSION:
                raise HdnFormatError(f"format version {layout.header.version}, not {VERSION}")
        except HdnFormatError as exc:
            log.warning("cache file %s is corrupted (%s): re-encoding", path.name, exc)
            path.unlink(missing_ok=True)
            raise CorruptCacheFile(str(exc)) from None
        return data, layout

    def save(self, key: StreamKey, data: bytes) -> None:
        atomic_write(self.path(key), data)

    async def get(
        self,
        key: StreamKey,
        run: Callable[..., object],
        encode: Callable[[], bytes],
        on_event: Callable[[str], None] = lambda event: None,
    ) -> tuple[bytes, StreamLayout]:
        """The stream for ``key``: from disk, or encoded once however many ask at the same time.

        ``run(fn)`` runs a blocking function in the worker; ``encode()`` makes the stream;
        ``on_event`` hears "hit", "miss" and "corrupt".
        """
        hot = self._memory.get(key)
        if hot is not None:  # checked when it was read or written; no need to read it again
            on_event("hit")
            return hot  # type: ignore[return-value]
        return await self._flights.run(key, lambda: self._load_or_encode(key, run, encode, on_event))

    async def close(self) -> None:
        """Cancel encodings still running (at shutdown)."""
        await self._flights.close()

    async def _load_or_encode(self, key, run, encode, on_event) -> tuple[bytes, StreamLayout]:
        try:
            cached = await run(self.load, key)
        except CorruptCacheFile:
            on_event("corrupt")
            cached = None
        if cached is not None:
            on_event("hit")
            self._memory.put(key, cached)
            return cached
        on_event("miss")

        def make() -> tuple[bytes, StreamLayout]:
            data = encode()
            layout = scan_stream(data)
            self.save(key, data)
            return data, layout

        result = await run(make)
        self._memory.put(key, result)
        return result


class CorruptCacheFile(Exception):
    """A cache file failed its check (and has been removed)."""
