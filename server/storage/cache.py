"""Encoded ``.hdn`` streams on disk, named by image content hash, mode, model and format version.

Recently used streams are also kept in memory. A file is written atomically and
checked when read: it starts with a seal naming its key (image id, model hash, mode,
format version: ``StreamKey.seal``), then the stream, whose header CRC, every chunk's
payload CRC, level order and exact length are checked. A file that fails the check (a
stream of another image copied over it, a flipped bit, a truncation) is deleted, counted
and the image re-encoded, never served. The disk holds at most ``max_bytes``: the least
recently used streams go first (``trim``). Encoding, and sharing an encode between
viewers, is the stream sources' (``server/streaming/source.py``). Temporary files left by
a writer that died are removed by ``sweep`` (at start-up).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hidenet_core import HdnFormatError
from hidenet_core.codec.container import StreamLayout, scan_stream
from hidenet_core.codec.versions import VERSION

from .files import atomic_write, sweep_partials
from .lru import LRU

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
    layered: bool = True  # quality layers, or one pass over the levels (resolution only)

    @property
    def _mode(self) -> str:
        return f"d{self.max_error}.g{self.generative_levels}.{'layers' if self.layered else 'levels'}"

    @property
    def filename(self) -> str:
        # the format version: streams an older server wrote are re-encoded, not served
        return f"{self.image_id}.{self.model_hash[:16]}.{self._mode}.v{self.version}.hdn"

    @property
    def seal(self) -> bytes:
        """The first bytes of this key's cache file: they bind the stream that follows to its key,
        so that a file copied or renamed onto another key's name is refused, not served."""
        identity = f"{self.image_id}:{self.model_hash}:{self._mode}:v{self.version}"
        return _SEAL_MAGIC + hashlib.sha256(identity.encode()).digest()


_SEAL_MAGIC = b"hidenet-cache\x01"


class StreamCache:
    """The on-disk cache. ``load``/``save`` block (call them in the worker)."""

    def __init__(self, directory: Path, memory_bytes: int = 64 * 1024 * 1024, max_bytes: int | None = None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes  # the disk bound (None: none)
        self._memory = LRU(memory_bytes, weigh=lambda item: len(item[0]))  # type: ignore[index]

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
            with open(path, "rb") as f:
                inode = os.fstat(f.fileno()).st_ino
                raw = f.read()
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
            with contextlib.suppress(FileNotFoundError):  # not a good file another process put there since
                if os.stat(path).st_ino == inode:
                    path.unlink()
            raise CorruptCacheFile(str(exc)) from None
        return data, layout

    def save(self, key: StreamKey, data: bytes) -> None:
        """Blocking: store ``data`` (a whole stream) for ``key``, sealed, atomically."""
        atomic_write(self.path(key), key.seal, data)

    async def lookup(self, key: StreamKey, run: Callable[..., object]) -> tuple[bytes, StreamLayout] | None:
        """The stream for ``key`` from memory or disk (None if absent); ``CorruptCacheFile``
        (the file is removed) if it fails its check. ``run(fn, *args)`` runs blocking work in
        the worker. A hit marks the file as used now, for the size bound."""
        hot = self._memory.get(key)
        if hot is not None:  # checked when it was read or written; no need to read it again
            await run(self._touch, key)
            return hot  # type: ignore[return-value]
        cached = await run(self.load, key)
        if cached is not None:
            self._memory.put(key, cached)
            await run(self._touch, key)
        return cached  # type: ignore[return-value]

    def store(self, key: StreamKey, data: bytes, layout: StreamLayout) -> None:
        """Blocking: save a complete stream, keep it in memory, and trim the disk to the bound."""
        self.save(key, data)
        self._memory.put(key, (data, layout))
        self.trim()

    def _touch(self, key: StreamKey) -> None:
        with contextlib.suppress(OSError):
            os.utime(self.path(key))

    def trim(self) -> int:
        """Blocking: remove the least recently used streams (by file time: every process of a
        shared data dir sees the same) until the cache holds at most ``max_bytes``; how many."""
        if self.max_bytes is None:
            return 0
        files = []
        for path in self.directory.glob("*.hdn"):
            with contextlib.suppress(OSError):
                st = path.stat()
                files.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in files)
        removed = 0
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed

    async def close(self) -> None:
        """Nothing to cancel any more: the encodes are the stream sources' (``streaming.source``)."""


class CorruptCacheFile(Exception):
    """A cache file failed its check (and has been removed)."""
