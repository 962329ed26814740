"""Streams as the server has them: read from the cache, or being encoded chunk by chunk.

A ``StreamSource`` is one stream (image, mode, model, format) shared by every viewer of
it: its header and the chunks that exist so far, each with the moment it was made. A
first view starts an encode that yields the header at once and then each chunk as the
encoder makes it (``hidenet_core.encode_chunks``), so a viewer's first level goes out
within moments whatever the image size; viewers who come while it runs share it, and each
may render its frames from the encoder's own reconstruction as each chunk is made (a
``Tap``), instead of decoding the chunk again. The
encode runs only while somebody waits for it: when its last viewer leaves it is
cancelled (within a channel's coding), and at most ``max_encodes`` run per process
(past that a viewer is told "busy", never queued), each on a thread of its own, so that
encodes never hold up the worker that renders the frames of streams already running. A complete stream is written to the
disk cache, which keeps the most recently used streams within its byte bound.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from hidenet_core import EncodeSettings
from hidenet_core.codec.container import Chunk, Header, StreamLayout, parse_header, scan_stream
from hidenet_core.codec.encoder import EncodeCancelled, EncodedChunk, encode_chunks
from hidenet_core.codec.reconstruction import Reconstruction

from ..storage.cache import CorruptCacheFile, StreamCache, StreamKey

__all__ = ["StreamSource", "StreamSources", "Busy", "Tap"]

log = logging.getLogger(__name__)


class Busy(Exception):
    """Every encode slot of this process is taken."""


class Tap(Protocol):
    """A viewer's hook into an encode in progress (``StreamSource.taps``): it sees the encoder's
    reconstruction after each chunk, on the encode's thread, just after the chunk is published."""

    def expect(self, index: int) -> None:
        """Chunk ``index`` is published and ``tap`` will follow: wait for it rather than decode."""

    def tap(self, index: int, state: Reconstruction) -> None:
        """The reconstruction after chunk ``index``, valid only during the call (the encoder waits)."""

    def missed(self, index: int) -> None:
        """``tap`` failed for chunk ``index``: its frame will not come this way."""

    def keep_pace(self, index: int, cancel: threading.Event) -> None:
        """After every tap has seen chunk ``index``: block while this viewer needs the encoder to
        wait (return at once when ``cancel`` is set)."""


class StreamSource:
    """One stream as it stands: the header, the chunks made so far and when each was made."""

    def __init__(self, key: StreamKey) -> None:
        self.key = key
        self.data = bytearray()  # the stream so far: header and complete chunks
        self.header: Header | None = None
        self.header_bytes = 0
        self.planned = 0  # the stream's chunk count, once the header is known
        self.chunks: list[Chunk] = []
        self.made: list[float] = []  # clock time each chunk was made (0: read from the cache)
        self.complete = False
        self.error: BaseException | None = None
        self.from_cache = False
        self.viewers = 0
        self.held = 0  # of the viewers, the holds of a background encode (after an upload): no one waits
        self.starter: str | None = None  # the client whose first view, download or upload started its encode
        #: the clients among the viewers, in the order they came, with how many sockets or downloads each
        self.watchers: collections.Counter[str] = collections.Counter()
        self.cancel = threading.Event()  # asked by the encoder between channels
        #: shown the encoder's reconstruction after each chunk (``Tap``): frames rendered without decoding
        self.taps: list[Tap] = []
        self.task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @classmethod
    def cached(cls, key: StreamKey, data: bytes, layout: StreamLayout) -> StreamSource:
        source = cls(key)
        source.data = bytearray(data)
        source.header, source.header_bytes, source.planned = layout.header, layout.header_bytes, layout.planned
        source.chunks = list(layout.chunks)
        source.made = [0.0] * len(layout.chunks)
        source.complete = source.from_cache = True
        return source

    @property
    def owner(self) -> str | None:
        """The client whose cap the encode counts toward (``peers``): its starter while the starter
        watches it or nobody does (an upload's background encode), else the client who has watched
        it longest. Before, it stayed the starter's after the starter left while others watched,
        and the starter was told "busy" until their stream ended (a minute at 12 MP)."""
        if self.starter is None or not self.watchers or self.watchers.get(self.starter):
            return self.starter
        return next(iter(self.watchers))

    def add(self, piece: EncodedChunk, now: float) -> None:
        """Record the next piece the encoder made (the header, then each chunk)."""
        start = len(self.data)
        self.data += piece.data
        if piece.spec is None:
            self.header, self.header_bytes = parse_header(bytes(self.data))
            self.planned = piece.chunks
        else:
            spec, size = piece.spec, self.header.chunk_header_size
            parts = 1 if spec.pass_ is None else len(spec.pass_.parts)
            self.chunks.append(Chunk(spec.level, start, len(self.data), len(piece.data) - size, spec.layer,
                                     spec.part, parts, piece.max_error))
            self.made.append(now)
        self._pulse()

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self.complete = error is None and len(self.chunks) == self.planned
        self._pulse()

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_header(self) -> Header:
        while self.header is None:
            self._raise()
            await self._changed.wait()
        return self.header

    async def wait(self, index: int, timeout: float | None = None) -> bool:
        """Until chunk ``index`` exists (True), or ``timeout`` seconds pass (False); raises the
        encode's error if it failed."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while index >= len(self.chunks):
            self._raise()
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result of a future that
            # completed in the same turn as a cancel of its caller, and loses the cancel. A stream told to
            # stop then waited for its next chunk, and the socket's next ``start`` with it (until the
            # encode ended: a minute at 12 MP)
            try:
                async with asyncio.timeout(left):
                    await self._changed.wait()
            except TimeoutError:
                return False
        return True

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error
        if self.task is not None and self.task.done() and not self.complete:
            raise EncodeCancelled("the encoding stopped")

    def layout(self) -> StreamLayout:
        """The stream as it stands, as ``scan_stream`` would describe it."""
        assert self.header is not None
        return StreamLayout(self.header, self.header_bytes, tuple(self.chunks), self.planned)


@dataclass
class EncodeJob:
    """What an encode needs: the pixels (read in the worker), the model and the settings."""

    pixels: Callable[[], object]
    model: object
    settings: EncodeSettings


def _show_taps(source: StreamSource, taps: list[Tap], index: int, state: Reconstruction) -> None:
    """On the encode's thread, the encoder waiting: each tap sees the reconstruction after chunk
    ``index`` (a tap that fails is dropped: its viewer decodes instead); then the encoder keeps
    the pace its taps ask for."""
    for tap in taps:
        try:
            tap.tap(index, state)
        except Exception:
            log.exception("a frame of %s could not be rendered from the encoder's state", source.key.filename)
            tap.missed(index)
            if tap in source.taps:
                source.taps.remove(tap)
    for tap in list(source.taps):
        tap.keep_pace(index, source.cancel)


class StreamSources:
    """Every stream being viewed or encoded in this process, by key."""

    def __init__(self, cache: StreamCache, run: Callable[..., object], now: Callable[[], float],
                 max_encodes: int, on_event: Callable[[str], None] = lambda event: None,
                 max_client_encodes: int | None = None) -> None:
        self.cache, self._run, self._now, self.max_encodes = cache, run, now, max_encodes
        self.max_client_encodes = max_client_encodes or max_encodes
        self._on_event = on_event
        self._live: dict[StreamKey, StreamSource] = {}
        self._opening: dict[StreamKey, list] = {}  # key -> [lock, how many wait on it]
        self.encoding = 0
        self._pool = ThreadPoolExecutor(max_workers=max_encodes, thread_name_prefix="hidenet-encode")

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[StreamSource]:
        """The live sources (a snapshot: safe while sources come and go)."""
        return iter(list(self._live.values()))

    def get(self, key: StreamKey) -> StreamSource | None:
        """The live source of ``key`` (being encoded or viewed), if any."""
        return self._live.get(key)

    async def open(self, key: StreamKey, job: Callable[[], EncodeJob], viewer: bool = True,
                   client: str | None = None) -> StreamSource:
        """The source of ``key``, shared with whoever has it open: the live one, else the cached
        stream, else a new encode (``job()`` says how; Busy if every encode slot is taken, or if
        ``client`` already runs ``max_client_encodes`` encodes it started). Counted as a viewer
        until ``release``; ``viewer=False`` keeps an encode running unwatched until it ends (a
        background encode after an upload, which counts as its uploader's, is let go when that
        client's own first view needs its place, and never takes the last free slot of several:
        Busy then)."""
        lock = self._opening.setdefault(key, [asyncio.Lock(), 0])
        lock[1] += 1
        try:
            async with lock[0]:  # one lookup per key at a time: concurrent first views share one encode
                return await self._open(key, job, viewer, client)
        finally:
            lock[1] -= 1
            if not lock[1]:
                del self._opening[key]

    def _wanted_encodes(self, client: str) -> Iterator[StreamSource]:
        """The sources whose encode ``client`` started that run and are still wanted (one being
        cancelled, as after a change of mode, is not: its slot is free within a channel's coding)."""
        return (s for s in self._live.values()
                if s.owner == client and s.task is not None and not s.task.done() and not s.cancel.is_set())

    def encodes_of(self, client: str) -> int:
        """How many encodes ``client`` started that run and are still wanted (``_wanted_encodes``)."""
        return sum(1 for _ in self._wanted_encodes(client))

    def _let_go_background(self, client: str) -> None:
        """Cancel ``client``'s background encodes that nobody watches (an upload's), so that its
        own first view of another stream takes their place: an upload, then its viewer in
        another mode, would otherwise be told "busy". Each stops within a channel's coding; the
        upload's first view encodes its stream later."""
        for s in list(self._wanted_encodes(client)):
            if s.viewers - s.held <= 0:
                s.cancel.set()

    async def _open(self, key: StreamKey, job: Callable[[], EncodeJob], viewer: bool,
                    client: str | None = None) -> StreamSource:
        source = self._live.get(key)
        if source is not None and source.cancel.is_set() and not source.complete:
            # its last viewer left and its encode is stopping (a replay, a new link, a reload, a
            # retried download): wait for it (within a channel's coding), then start afresh
            if source.task is not None:
                await asyncio.wait([source.task])
            self._drop(source)
            source = self._live.get(key)
        if source is None:
            source = await self._cached(key)
            if source is None:
                if self.encoding >= self.max_encodes:
                    if viewer:  # a background encode not started refuses nobody
                        self._on_event("busy")
                    raise Busy(f"server busy: {self.encoding} streams are being encoded; try again shortly")
                if not viewer and 1 < self.max_encodes <= self.encoding + 1:
                    # nobody waits for a background encode: it never takes the last slot from a viewer's
                    # first view (two uploads of 40 MP photographs held both for minutes)
                    raise Busy(f"{self.encoding} of {self.max_encodes} encode slots are taken: the last one is "
                               "left to viewers")
                if client is not None and viewer and self.encodes_of(client) >= self.max_client_encodes:
                    self._let_go_background(client)  # this client's own viewer comes first
                if client is not None and (mine := self.encodes_of(client)) >= self.max_client_encodes:
                    if viewer:
                        self._on_event("busy")
                    raise Busy(f"this client already has {mine} new stream{'s' * (mine != 1)} being encoded (at most "
                               f"{self.max_client_encodes} at once); wait for it to finish, or view one encoded "
                               "already")
                source = StreamSource(key)
                source.starter = client
                self.encoding += 1
                source.task = asyncio.create_task(self._encode(source, job()))
            self._live[key] = source
        if viewer:
            source.viewers += 1
            if client is not None:
                source.watchers[client] += 1
        elif source.task is not None and not source.task.done():  # held until the encode ends
            source.viewers += 1
            source.held += 1
            source.task.add_done_callback(lambda _: self._unhold(source))
        else:
            self._drop(source)
        return source

    def _unhold(self, source: StreamSource) -> None:
        source.held -= 1
        self.release(source)

    def release(self, source: StreamSource, client: str | None = None) -> None:
        """One viewer fewer (``client``'s, as it opened the source: ``StreamSource.owner`` follows
        who still watches); with none left an unfinished encode is cancelled."""
        source.viewers -= 1
        if client is not None and source.watchers.get(client):
            source.watchers[client] -= 1
            if not source.watchers[client]:
                del source.watchers[client]
        if source.viewers > 0:
            return
        if not source.complete:
            source.cancel.set()
        if source.task is None or source.task.done():
            self._drop(source)

    def _drop(self, source: StreamSource) -> None:
        if self._live.get(source.key) is source and source.viewers <= 0:
            del self._live[source.key]

    async def _cached(self, key: StreamKey) -> StreamSource | None:
        try:
            hit = await self.cache.lookup(key, self._run)
        except CorruptCacheFile:
            self._on_event("corrupt")
            hit = None
        if hit is None:
            return None
        self._on_event("hit")
        return StreamSource.cached(key, *hit)

    async def _encode(self, source: StreamSource, job: EncodeJob) -> None:
        self._on_event("miss")
        try:
            loop = asyncio.get_running_loop()
            pixels = await self._run(job.pixels)
            pieces = encode_chunks(pixels, job.model, job.settings, cancelled=source.cancel.is_set)
            while (piece := await loop.run_in_executor(self._pool, next, pieces, None)) is not None:
                if piece.spec is not None and len(source.chunks) + 1 == source.planned:
                    # the last chunk: cached before anyone receives it, so that whoever has the whole
                    # stream finds it in the cache (a disk write; the chunks before went out at once)
                    data = b"".join((source.data, piece.data))  # one copy of the stream, not two
                    await self._run(self.cache.store, source.key, data, scan_stream(data))
                taps = list(source.taps) if piece.spec is not None and piece.state is not None else []
                for tap in taps:
                    tap.expect(piece.spec.index)
                source.add(piece, self._now())  # published: the link sends it while its frames are rendered
                if taps:
                    await loop.run_in_executor(self._pool, _show_taps, source, taps, piece.spec.index, piece.state)
            source.finish()
        except (asyncio.CancelledError, EncodeCancelled) as exc:
            self._on_event("cancelled")
            source.cancel.set()
            source.finish(EncodeCancelled("the encoding was cancelled: nobody waits for it"))
            if isinstance(exc, asyncio.CancelledError):
                raise
        except Exception as exc:
            log.exception("encoding %s failed", source.key.filename)
            source.finish(exc)
        finally:
            self.encoding -= 1
            if source.viewers <= 0:
                self._drop(source)

    async def close(self) -> None:
        """Cancel every encode (at shutdown): each stops within a channel's coding."""
        tasks = [s.task for s in self._live.values() if s.task is not None and not s.task.done()]
        for source in self._live.values():
            source.cancel.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
