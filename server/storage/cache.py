"""Encoded ``.hdn`` streams on disk, named by image content hash, mode, model and format version.

Recently used streams are also kept in memory. A file is written atomically and
checked when read: it starts with a seal naming its key (image id, model hash, mode,
format version: ``StreamKey.seal``), then the stream, whose header CRC, every chunk's
payload CRC, level order and exact length are checked. A file that fails the check (a
stream of another image copied over it, a flipped bit, a truncation) is deleted, counted
and the image re-encoded, never served. Concurrent requests for a stream that is being
encoded wait for that one encoding. Temporary files left by a writer that died are
removed by ``sweep`` (at start-up).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hidenet_core import HdnFormatError
from hidenet_core.codec.container import StreamLayout, scan_stream
from hidenet_core.codec.versions import VERSION

from .files import atomic_write, sweep_partials
from .lru import LRU
from .singleflight import SingleFlight

__all__ = ["StreamKey", "StreamCache"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamKey:
    """What determines an encoded stream."""

    image_id: str  # content hash of the pixels
    model_hash: str  # hex weights hash of the predictor
    max_error: int  # d for every level
    generative_levels: int  # g
    version: int = VERSION  # the format version the stream is written in

    @property
    def filename(self) -> str:
        # the format version: streams an older server wrote are re-encoded, not served
        return (f"{self.image_id}.{self.model_hash[:16]}.d{self.max_error}.g{self.generative_levels}"
                f".v{self.version}.hdn")

    @property
    def seal(self) -> bytes:
        """The first bytes of this key's cache file: they bind the stream that follows to its key,
        so that a file copied or renamed onto another key's name is refused, not served."""
        identity = f"{self.image_id}:{self.model_hash}:d{self.max_error}:g{self.generative_levels}:v{self.version}"
        return _SEAL_MAGIC + hashlib.sha256(identity.encode()).digest()


_SEAL_MAGIC = b"hidenet-cache\x01"


class StreamCache:
    """The on-disk cache. ``load``/``save`` block (call them in the worker)."""

    def __init__(self, directory: Path, memory_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = directory
        self._memory = LRU(memory_bytes, weigh=lambda item: len(item[0]))  # type: ignore[index]
        self._flights: SingleFlight[tuple[bytes, StreamLayout]] = SingleFlight()

    def path(self, key: StreamKey) -> Path:
        return self.directory / key.filename

    def sweep(self) -> int:
        """Blocking: remove temporary files whose writer died (kill -9 mid-write); how many."""
        return sweep_partials(self.directory)

    def load(self, key: StreamKey) -> tuple[bytes, StreamLayout] | None:
        """The cached stream, or None if absent. ``CorruptCacheFile`` (the file is removed) if it
        fails its check."""
        path = self.path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        seal = key.seal
        data = raw[len(seal) :]
        try:
            if raw[: len(seal)] != seal:
                raise HdnFormatError("its seal names another image, mode or model")
            layout = scan_stream(data)
            if layout.header.model_hash.hex() != key.model_hash:
                raise HdnFormatError("encoded with other weights")
            if layout.header.version != key.version:
                raise HdnFormatError(f"format version {layout.header.version}, not {key.version}")
        except HdnFormatError as exc:
            log.warning("cache file %s is corrupted (%s): re-encoding", path.name, exc)
            path.unlink(missing_ok=True)
            raise CorruptCacheFile(str(exc)) from None
        return data, layout

    def save(self, key: StreamKey, data: bytes) -> None:
        """Blocking: store ``data`` (a whole stream) for ``key``, sealed, atomically."""
        atomic_write(self.path(key), key.seal + data)

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
