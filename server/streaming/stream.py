"""One stream: the levels of an image released on the link schedule, and the race.

t = 0 is the moment the server sends ``meta``. Before it, the stream's header is read
from the cache or made by a new encode, and each contender of the race prepared
(``progress`` messages say so). Chunk i is released when its last byte arrives on the
link (``links.LinkSchedule``: ``t0 + arrival_ms(link, end of its chunk)``, later if the
encoder had not made it yet), and sent as a JSON message followed by its frame at the size
the viewer shows it: rendered from the encoder's own state as the chunk is made during a
first view, else read from the frame cache or decoded in the worker (``LevelFrames``). Each contender
(``race.Racer``) sends its repaints at their own arrival times on the same link, and
``done`` carries the verdict, computed from the same events the viewer's chart draws.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from aiohttp import web

from hidenet_core import EncodeSettings, ProgressiveDecoder, level_shapes, read_header
from hidenet_core.codec.container import Header
from hidenet_core.codec.encoder import version_for
from hidenet_core.codec.plan import ChunkSpec, guarantees, stream_plan
from hidenet_core.codec.reconstruction import Reconstruction
from hidenet_core.tools.contenders import Event, verdict
from hidenet_core.tools.contenders import Racer as VerdictRacer

from ..keys import CLOCK, CONFIG, FINALS, FRAMES, MODEL, MODEL_HASH, RACES, SOURCES, STATS, STORE, WORKER
from ..storage.cache import StreamKey
from ..storage.store import ImageInfo, ImageStore
from .clock import Clock
from .frames import (
    FinalPictures,
    Frame,
    FrameCache,
    FrameSpec,
    original_region,
    render_frame,
    render_region,
    shown_size,
)
from .links import Link, LinkSchedule, arrival_ms
from .protocol import StartRequest
from .race import Racer
from .source import Busy, EncodeJob, StreamSource

__all__ = ["Sender", "Progress", "LevelFrames", "StreamWatch", "StreamBusy", "ChunkTimes", "Superseded", "newest_due",
           "render_horizon", "run_stream", "stream_key", "open_stream"]

log = logging.getLogger(__name__)

@dataclass
class Sender:
    """Sends on one websocket; a JSON message and its frame always go out back to back."""

    ws: web.WebSocketResponse
    json_bytes: int = 0
    frame_bytes: int = 0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def json(self, message: dict) -> None:
        text = json.dumps(message, separators=(",", ":"))
        async with self._lock:
            await self.ws.send_str(text)
        self.json_bytes += len(text)

    async def pair(self, message: dict, frame: bytes) -> None:
        text = json.dumps(message, separators=(",", ":"))
        async with self._lock:
            await self.ws.send_str(text)
            await self.ws.send_bytes(frame)
        self.json_bytes += len(text)
        self.frame_bytes += len(frame)


def stream_key(app: web.Application, image_id: str, max_error: int, generative_levels: int,
               layered: bool = True) -> StreamKey:
    """What determines a stream: quality layers (the default) or one pass over the levels."""
    return StreamKey(image_id, app[MODEL_HASH], max_error, generative_levels, version_for(app[MODEL]), layered)


def _job(app: web.Application, info: ImageInfo, key: StreamKey) -> EncodeJob:
    settings = EncodeSettings(key.max_error, key.generative_levels, version=key.version,
                              layers=None if key.layered else (), effort=app[CONFIG].effort)
    return EncodeJob(lambda: app[STORE].pixels(info.id), app[MODEL], settings)


async def open_stream(app: web.Application, info: ImageInfo, key: StreamKey, viewer: bool = True,
                      client: str | None = None) -> StreamSource:
    """The stream's source, shared with every viewer of it: cached, being encoded, or a new encode
    (``Busy`` past the process's encode cap, or past ``client``'s). Release it with ``app[SOURCES].release``."""
    return await app[SOURCES].open(key, lambda: _job(app, info, key), viewer, client)


#: a region asked for while the decoder of every level is further behind than this (about a
#: second of decoding) is first answered from the frames' decoder, then exactly
REGION_LAG_BYTES = 64 * 1024
#: that decoder catches up this many bytes at a time, asking between them whether the
#: region is still wanted (a viewer that left stops it within about a chunk's decoding)
REGION_FEED_BYTES = 64 * 1024


#: while a viewer of a first view is at 1:1 (``LevelFrames.keep_pace``), the encoder waits after
#: each chunk until that viewer has the frames of every chunk but this many of those made (its
#: frames are made up to ``FRAMES_AHEAD`` chunks ahead of its link)
PACE_CHUNKS_AHEAD = 2
#: a viewer counts as at 1:1 for this long after its last region request (the viewer at 1:1 asks
#: again after every picture; a chunk of a large photo's level 0 is seconds on a slow link)
FOLLOW_S = 20.0
#: how often a held encoder looks again whether it may go on (and whether it is cancelled)
PACE_WAIT_S = 0.25
#: the longest an encode waits for one viewer's link in all (``keep_pace``): past it the encode
#: goes on at full speed (its slot is free sooner; the viewer's regions come from a decoder). A
#: 40 MP photograph reaches a viewer in about 3 minutes on 3g, 20 on 2g; a custom link of 1 kbps
#: would otherwise hold an encode slot for days
PACE_BUDGET_S = 600.0
#: how often a wait for a frame being rendered from the encoder's state wakes to look again, and
#: how long it waits at most before decoding the chunk instead (a frame takes under a second)
TAP_WAIT_S = 1.0
TAP_WAIT_LIMIT_S = 120.0


class LevelFrames:
    """The frames of one stream: rendered from the encoder's state as it codes (a first view),
    else from the cache, else by decoding the chunks.

    Decoding is deterministic and checked by CRC, so a chunk's frame is the same for every
    stream of the same (image, mode) shown the same way; concurrent viewers of a cached image
    share the frames the first one decoded. When a frame is missing (first view, or evicted),
    the decoder catches up on every chunk received so far and renders it.

    During a first view the encoder's reconstruction after each chunk is the decoder's (the
    closed loop), so a viewer's frames at its display size are rendered from it on the
    encode's thread just after each chunk is published (``tap``: the link sends the chunk
    meanwhile, and ``next`` waits for the frame), and nothing is decoded. Decoding each
    chunk again took the other core as long as a coarse level's coding (up to 0.7 s a chunk
    for a 12-megapixel photo) and showed each picture that much later.

    A frame for a display is made at its *frame level* (``frame_level``), so the decoder
    decodes only the levels down to it: the chunks of finer levels change nothing the frame
    shows, and their frame is the one before, not rendered again. For a 12-megapixel photo
    in a 1280x800 viewer that skips level 0, three quarters of the pixels and of the decoding.
    ``region`` gives the exact pixels of the latest picture (the viewer's 1:1 view), from a
    second decoder of every level, started on the first region asked for; once a lossless
    stream is complete, from the original's pixels, which its final picture is; once another
    (near-lossless) stream is complete, from its final picture (``FinalPictures``), kept by the
    encoder of its first view or by the first decoder that decoded it all, for every viewer.
    """

    def __init__(self, model, store: ImageStore, info: ImageInfo, frames: FrameCache, key: StreamKey,
                 spec: FrameSpec, source: StreamSource | None = None, finals: FinalPictures | None = None) -> None:
        self._model = model
        self._finals = finals  # the final pictures of finished near-lossless streams, shared by every viewer
        self._final: np.ndarray | None = None  # this stream's, once taken from there (an eviction keeps it here)
        self._finest = spec.level(info.height, info.width) if spec.preview else 0
        self._decoder = ProgressiveDecoder(model, images=False, finest_level=self._finest)
        # every byte received so far, which the decoders read: the source's own (not a copy, which
        # would be 30 to 60 MB more for a 40 MP photograph), or given piece by piece to ``next``
        self._data = source.data if source is not None else bytearray()
        self._own_data = source is None
        #: (bytes of ``_data`` given to ``next`` so far, the index of the chunk they end with: -1 none),
        #: one tuple, so that the event loop reads both from one ``next`` (``latest``)
        self._latest = (0, -1)
        self._exact: ProgressiveDecoder | None = None  # that decoder, once a region is asked for
        self._last: tuple[int, Frame] | None = None  # (decoder.decoded_chunks, frame) of the latest frame
        self._store, self._info, self._frames, self._key, self._spec = store, info, frames, key, spec
        self._lock = threading.Lock()  # next() and region() may run on two worker threads at once
        self._region_lock = threading.Lock()
        self._tapped: dict[int, Frame] = {}  # chunk index -> its frame from the encoder's state, until taken
        self._expected: set[int] = set()  # chunks published whose frames the encode's thread is rendering
        self._tap_lock = threading.Condition()
        self._tap_last: Frame | None = None
        self._tapped_up_to = -1  # the last chunk the encoder's state was shown to this viewer for
        self._region_asked = -FOLLOW_S  # when this viewer last asked for a region (monotonic clock)
        self._paced_s = 0.0  # how long the encoder has waited for this viewer's link (``keep_pace``)
        #: a 1:1 region to cut from the encoder's state at the next chunk: (x, y, width, height, answer)
        self._region_wanted: tuple[int, int, int, int, Callable[[tuple | None], None]] | None = None
        self._plan: list[ChunkSpec] | None = None  # the stream's, once known
        self._header: Header | None = None  # the stream's, once its first chunk is given
        self._source: StreamSource | None = None
        if source is not None and not source.complete and spec.from_encoder(info.height, info.width):
            self._source = source
            source.taps.append(self)

    @property
    def _received(self) -> int:
        """The bytes of ``_data`` given to ``next`` so far."""
        return self._latest[0]

    @property
    def _seen(self) -> int:
        """The chunks given to ``next`` so far."""
        return self._latest[1] + 1

    @property
    def showing(self) -> bool:
        """Whether a picture has been sent (``next``): a region of it can be asked for."""
        return self._seen > 0

    def close(self) -> None:
        """Stop rendering frames from the encoder's state (the stream ended, or the viewer left)."""
        if self._source is not None and self in self._source.taps:
            self._source.taps.remove(self)
        with self._tap_lock:
            self._tapped.clear()
            self._expected.clear()
            wanted, self._region_wanted = self._region_wanted, None
            self._tap_lock.notify_all()
        if wanted is not None:
            wanted[4](None)
        self._shed()

    def _shed(self) -> None:
        """Once the latest picture is the original (a complete lossless stream), every region is a
        crop of the original's pixels: drop what only decoding needed (the stream's bytes, the
        decoders and their levels, the last frame: up to a gigabyte at 40 MP), which the session
        keeps for its regions until its next ``start``. Skipped if a region is being made then."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if not self._region_lock.acquire(blocking=False):
                return
            try:
                if self._final_is_original():
                    self._data, self._own_data = bytearray(), True
                    self._decoder = self._exact = self._last = None  # type: ignore[assignment]
            finally:
                self._region_lock.release()
        finally:
            self._lock.release()

    def region_from_encoder(self, x: int, y: int, width: int, height: int,
                            answer: Callable[[tuple | None], None]) -> bool:
        """Ask for a 1:1 region from the encoder's own state after its next chunk, during a first
        view: no decoder of every level, whose state would double the memory of a large photo's
        first view and whose decoding would take the encoder's second core. While the viewer
        is at 1:1 the encoder keeps pace with its link (``keep_pace``), so the answer, sent
        after that chunk, is never far behind. ``answer`` gets (chunk index, PNG, rectangle)
        on the encode's thread, or None if no chunk comes (the viewer left); a newer request
        replaces a waiting one (which gets None). False when this path does not apply (no
        encode under way, or its last chunk made)."""
        self._region_asked = time.monotonic()
        source = self._source
        if source is None or self not in source.taps or source.complete or self._plan is None:
            return False
        if self._tapped_up_to >= len(self._plan) - 1:
            return False
        with self._tap_lock:
            replaced, self._region_wanted = self._region_wanted, (x, y, width, height, answer)
        if replaced is not None:
            replaced[4](None)
        return True

    def expect(self, index: int) -> None:
        """(``source.Tap``) Chunk ``index`` is published; its frame is being rendered from the encoder's state."""
        with self._tap_lock:
            self._expected.add(index)

    def missed(self, index: int) -> None:
        """(``source.Tap``) Rendering chunk ``index``'s frame failed: ``next`` decodes it."""
        with self._tap_lock:
            self._expected.discard(index)
            self._tap_lock.notify_all()

    def tap(self, index: int, state: Reconstruction) -> None:
        """On the encode's thread (``source.Tap``): chunk ``index``'s frame, from the encoder's
        reconstruction after it; kept until ``next`` takes it, and cached for other viewers."""
        if self._plan is None:
            self._plan = stream_plan(state.header)
        level = self._plan[index].level
        frame = self._frames.get(self._key, index, self._spec)
        if frame is None:
            if self._spec.preview and level < self._finest and self._tap_last is not None:
                frame = replace(self._tap_last, render_ms=0.0)  # a finer level's chunk: the frame shows the same
            else:
                frame = replace(render_frame(state, level, self._store.pixels(self._info.id), self._spec),
                                origin="encoder")
            self._frames.put(self._key, index, self._spec, frame)
        self._tap_last = frame
        if index == len(self._plan) - 1 and self._keeps_final(state.header):
            # before the last frame is released: a viewer that has seen the end finds the final picture kept
            try:  # the encoder's last reconstruction is the stream's final picture: kept for every viewer
                kept = self._finals.get(self._key)  # (an array has no truth value: compared with None)
                self._final = kept if kept is not None else self._finals.put(self._key, state)
            except Exception:  # only a region's speed is lost: it decodes the stream instead
                log.exception("the final picture of %s could not be kept", self._key.filename)
        with self._tap_lock:
            self._tapped[index] = frame
            self._expected.discard(index)
            self._tapped_up_to = index
            wanted, self._region_wanted = self._region_wanted, None
            self._tap_lock.notify_all()
        if wanted is not None:  # the exact pixels of the picture after this chunk, from the encoder's state
            x, y, width, height, answer = wanted
            try:
                answer((index, *render_region(state, x, y, width, height)))
            except Exception:  # not the frames' fault: the region alone is lost, and asked for again
                log.exception("a region of %s could not be cut from the encoder's state", self._key.filename)
                answer(None)

    def keep_pace(self, index: int, cancel: threading.Event) -> None:
        """(``source.Tap``) On the encode's thread, after chunk ``index`` is shown to every tap:
        while this viewer is at 1:1 (it asked for a region within ``FOLLOW_S``), hold the
        encoder until the viewer has the frame of chunk ``index - PACE_CHUNKS_AHEAD`` (made at
        most ``FRAMES_AHEAD`` chunks ahead of its link).

        A region is exact for the chunks the viewer has, so it comes from the encoder's state
        only while the encoder is not far ahead; otherwise it would take a decoder of every
        level, whose state doubles the memory of a large photo's first view (about 0.7 GB at
        40 MP) and whose decoding takes the encoder's core. A viewer at 1:1 sees no further
        than its link anyway; the encode goes on at full speed once nobody is at 1:1, is
        cancelled if its viewers leave (``cancel``), and the next viewers read the cache. It is
        never held while another viewer or a download shares it (they would wait for this
        viewer's link), nor for more than ``PACE_BUDGET_S`` in all."""
        if self._plan is None or index >= len(self._plan) - 1:
            return
        source = self._source
        if source is None:
            return
        with self._tap_lock:
            started = time.monotonic()
            try:  # shared with other viewers or downloads, they would wait for this viewer's link (a
                # background encode's hold waits for nobody)
                while (index - (self._seen - 1) > PACE_CHUNKS_AHEAD and self._following() and not cancel.is_set()
                       and self in source.taps and source.viewers - source.held <= 1
                       and self._paced_s + time.monotonic() - started < PACE_BUDGET_S):
                    self._tap_lock.wait(PACE_WAIT_S)
            finally:
                self._paced_s += time.monotonic() - started

    def _following(self) -> bool:
        """Whether this viewer is at 1:1: a region is waiting, or was asked for within ``FOLLOW_S``."""
        return self._region_wanted is not None or time.monotonic() - self._region_asked < FOLLOW_S

    def drop_region(self) -> None:
        """Forget a region waiting for the encoder's next chunk (its answer gets None)."""
        with self._tap_lock:
            wanted, self._region_wanted = self._region_wanted, None
        if wanted is not None:
            wanted[4](None)

    def _take_tapped(self, index: int) -> Frame | None:
        """Chunk ``index``'s frame from the encoder's state, waiting while it is being rendered."""
        deadline = time.monotonic() + TAP_WAIT_LIMIT_S
        with self._tap_lock:
            self._tap_lock.notify_all()  # this viewer is at chunk ``index``: an encoder keeping pace may go on
            while index in self._expected and index not in self._tapped and time.monotonic() < deadline:
                self._tap_lock.wait(TAP_WAIT_S)
            for i in [i for i in self._tapped if i < index]:  # superseded: never sent
                del self._tapped[i]
            return self._tapped.pop(index, None)

    def next(self, piece: bytes, index: int) -> tuple[Frame, bool]:
        """Blocking (worker): the frame after chunk ``index`` (whose bytes are ``piece``); and whether it was shared."""
        with self._lock:
            if self._own_data:
                self._data += piece
            self._latest = (self._received + len(piece), index)
            if self._header is None:  # the first chunk's bytes come after the header's
                self._header = read_header(bytes(self._data[: self._received]))
            frame = self._take_tapped(index)
            if frame is not None:
                return frame, False
            frame = self._frames.get(self._key, index, self._spec)
            if frame is not None:
                return frame, True
            decoded = self._catch_up()
            assert decoded and decoded[-1].index == index, f"chunk {index} decoded to {decoded}"
            if self._last is not None and self._last[0] == self._decoder.decoded_chunks:  # a finer level's chunk
                frame = replace(self._last[1], render_ms=0.0, decode_ms=0.0)
            else:
                chunk = decoded[-1]
                frame = render_frame(self._decoder.reconstruction, chunk.level, self._store.pixels(self._info.id),
                                     self._spec, chunk.decode_seconds * 1000)
            self._last = (self._decoder.decoded_chunks, frame)
            self._frames.put(self._key, index, self._spec, frame)
            return frame, False

    def _complete(self) -> bool:
        """Whether every chunk of the stream has been given to ``next``."""
        if self._header is None:
            return False
        if self._plan is None:
            self._plan = stream_plan(self._header)
        return self._seen == len(self._plan)

    def _keeps_final(self, header: Header) -> bool:
        """Whether a complete stream's final picture is kept (``FinalPictures``): a stream coded
        within an error everywhere, not lossless (its final picture is the original) and with no
        predicted levels (a region predicts those as the frames do)."""
        return self._finals is not None and any(header.max_error) and not header.generative_levels

    def _final_picture(self) -> np.ndarray | None:
        """The complete stream's final picture, if kept (by this viewer, or for every viewer)."""
        if self._finals is None or not self._complete() or not self._keeps_final(self._header):
            return None
        if self._final is None:
            self._final = self._finals.get(self._key)
        return self._final

    def _final_is_original(self) -> bool:
        """Whether the latest picture is the original's pixels: after the last chunk of a lossless
        stream without generative levels. The server made this stream from these very pixels
        (the image id is their hash) and every level's reconstruction CRC was checked as it was
        encoded, so its final picture is them, bit for bit: a 1:1 region of it is a crop of the
        original, not a minute of decoding every level again (12 MP; four at 40 MP)."""
        header = self._header
        return self._complete() and not any(header.max_error) and not header.generative_levels

    def region_behind(self) -> bool:
        """Whether an exact region would first have to decode much of the stream (more than
        ``REGION_LAG_BYTES`` not decoded at every level): seconds, for a large photo. The
        frames' decoder answers first then, decoding only the levels down to the frame level
        (where the frames came from the encoder's state or the cache, it catches up first)."""
        if not self._finest or self._final_is_original() or self._final_picture() is not None:
            return False
        exact = self._exact  # a region on a worker thread may drop it meanwhile
        return self._received - (exact.bytes_fed if exact is not None else 0) > REGION_LAG_BYTES

    @property
    def latest(self) -> tuple[int, int]:
        """The stream's bytes received so far and the index of the chunk they end with (-1: none),
        read together: a region answered from those bytes says which chunk's picture it is of."""
        return self._latest

    def region_decodes(self, exact: bool = True, upto: int | None = None) -> bool:
        """Whether ``region(..., exact, upto=upto)`` would decode stream bytes, rather than crop a
        picture kept whole or render from a decoder already caught up: the regions that cost seconds
        of a worker thread (a minute at 12 MP), which the server caps per client and per process."""
        if exact and (self._final_is_original() or self._final_picture() is not None):
            return False
        end = self._bytes_upto(upto)
        if not exact or not self._finest:
            return self._decoder.bytes_fed < end
        exact_decoder = self._exact  # a region on a worker thread may drop it meanwhile
        return exact_decoder is None or exact_decoder.bytes_fed < end

    def _bytes_upto(self, upto: int | None) -> int:
        """The stream's bytes a region decodes to: those received, or fewer (``upto``)."""
        return self._received if upto is None else min(upto, self._received)

    def region(self, x: int, y: int, width: int, height: int, exact: bool = True,
               cancelled: Callable[[], bool] = lambda: False,
               upto: int | None = None) -> tuple[bytes, tuple[int, int, int, int]] | None:
        """Blocking (worker): the PNG of the latest picture's full-resolution pixels in a rectangle,
        and the rectangle (x, y, width, height) clipped to the image. ``exact`` False: from the
        frames' decoder, the levels finer than the frame level predicted in the rectangle.
        None if ``cancelled()`` became true while the decoder of every level caught up (what it
        decoded is kept for the next region). ``upto``: decode no further than this many bytes of
        the stream (the picture when the region was asked, as ``region_decodes`` judged it)."""
        self._region_asked = time.monotonic()
        with self._lock:
            if exact and self._final_is_original():
                return original_region(self._store.pixels(self._info.id), x, y, width, height)
            final = self._final_picture() if exact else None
            if final is not None:
                return original_region(final, x, y, width, height)
            received = self._bytes_upto(upto)
            if not exact or not self._finest:  # the frames' decoder (of every level, when the frame is full size)
                if not self._feed_unless(self._decoder, received, cancelled):
                    return None
                return render_region(self._decoder.reconstruction, x, y, width, height)
        with self._region_lock:  # catching up on level 0 may take seconds: frames go on meanwhile
            final = self._final_picture()  # a region before this one may have decoded it all meanwhile
            if final is not None:
                return original_region(final, x, y, width, height)
            if self._exact is None:
                self._exact = ProgressiveDecoder(self._model, images=False)
            if not self._feed_unless(self._exact, received, cancelled):
                return None
            if self._complete() and self._exact.bytes_fed >= len(self._data) and self._keeps_final(self._header):
                # the whole stream decoded: its final picture serves every viewer's regions from now on
                self._final = self._finals.put(self._key, self._exact.reconstruction)
                self._exact = None  # its levels are the picture's memory several times over
                return original_region(self._final, x, y, width, height)
            return render_region(self._exact.reconstruction, x, y, width, height)

    def _catch_up(self):
        """Decode every chunk received and not decoded yet (the frames came from elsewhere)."""
        decoded = self._decoder.feed(bytes(self._data[self._decoder.bytes_fed : self._received]))
        del self._decoder.levels[:-1]  # the decoder keeps every chunk's result; a frame needs only the latest
        return decoded

    def _feed_unless(self, decoder: ProgressiveDecoder, end: int, cancelled: Callable[[], bool]) -> bool:
        """Feed ``decoder`` the stream's bytes up to ``end`` a slice at a time (``REGION_FEED_BYTES``),
        giving up (False) as soon as ``cancelled()``: for a region, which nobody may wait for by
        the time it is ready (a decoder of every level catching up: a minute at 12 MP). What it
        decoded is kept."""
        while decoder.bytes_fed < end:
            if cancelled():
                return False
            start = decoder.bytes_fed
            decoder.feed(bytes(self._data[start : min(end, start + REGION_FEED_BYTES)]))
            del decoder.levels[:-1]
        return True


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class Progress:
    """``progress`` messages: what the server is doing while the viewer waits for ``meta``.

    ``{"type": "progress", "racer": "hidenet" or a contender key, "stage": ..., "message": ...,
    "elapsed_ms": ...}``; ``elapsed_ms`` counts from the ``start`` request. More fields may come
    (a step and a step count); clients show ``message`` and ignore what they do not know.
    """

    def __init__(self, send: Sender, clock: Clock, started: float) -> None:
        self.send, self.clock, self.started = send, clock, started
        self.said: set[str] = set()

    async def say(self, racer: str, stage: str, message: str, **extra: object) -> None:
        self.said.add(racer)
        await self.send.json({"type": "progress", "racer": racer, "stage": stage, "message": message,
                              "elapsed_ms": _ms(self.clock.now() - self.started), **extra})


#: while a chunk is not encoded yet, say what the encoder is doing this often (seconds)
WAIT_NOTICE_S = 0.5


def _describe(chunk_spec, total: int, index: int) -> str:
    if chunk_spec.pass_ is None:
        return f"predicting level {chunk_spec.level} (chunk {index + 1} of {total})"
    p = chunk_spec.pass_
    part = f", part {chunk_spec.part + 1} of {len(p.parts)}" if len(p.parts) > 1 else ""
    return f"layer {p.layer + 1}, level {p.level}{part} (chunk {index + 1} of {total})"


async def _await_chunk(source: StreamSource, index: int, plan, progress: Progress,
                       watched: Callable[[], bool] = lambda: True) -> None:
    """Until chunk ``index`` exists, saying every WAIT_NOTICE_S what is being encoded (while
    ``watched()``: the viewer has every frame before it and waits for this one)."""
    while not await source.wait(index, WAIT_NOTICE_S):
        if watched():
            await progress.say("hidenet", "encode", f"Encoding {_describe(plan[index], len(plan), index)}",
                               step=index + 1, steps=len(plan))


#: frames rendered before their chunk's link arrival, at most this many ahead of the one sent
FRAMES_AHEAD = 4


class ChunkTimes:
    """When each chunk of a stream is due: its last byte's arrival on the link, later if the
    encoder made it too late for the link to send it on time (``LinkSchedule``). Computed once
    per chunk, in stream order, for the renderer (which frames to skip) and the sender (when
    to release each chunk); in ms after t = 0, rounded as sent."""

    def __init__(self, source: StreamSource, link: Link, t0: float) -> None:
        self.source, self.t0 = source, t0
        self._schedule = LinkSchedule(link)
        self._due: list[float] = []

    def due_ms(self, index: int) -> float:
        """Chunk ``index``'s due time; every chunk up to it must exist."""
        while len(self._due) <= index:
            i = len(self._due)
            chunk = self.source.chunks[i]
            made_ms = 1000 * (self.source.made[i] - self.t0)
            self._due.append(round(self._schedule.arrive(chunk.start, chunk.end, made_ms), 3))
        return self._due[index]

    def made(self) -> int:
        """How many chunks exist so far."""
        return len(self.source.chunks)


#: a viewer's chunk may be shown this much after it is due before the frames of the chunks
#: before it are skipped to keep up (below half a second: issue 14's bound, with room for a
#: render slower than the last)
LATE_TOLERANCE_MS = 250.0


def newest_due(due_ms: Callable[[int], float], first: int, made: int, horizon_ms: float) -> int:
    """The chunk to render next when ``first`` is the first chunk without a frame: the newest
    chunk made (below ``made``) that is due by ``horizon_ms``, or ``first`` when none after
    it is. Due times never decrease along a stream."""
    newest = first
    for i in range(first + 1, made):
        if due_ms(i) > horizon_ms:
            break
        newest = i
    return newest


def render_horizon(now_ms: float, render_ms: float) -> float:
    """How far ahead a render starting at ``now_ms`` looks for a newer chunk to render instead
    (``newest_due``). Rendering a chunk and then the next one shows the next ``2 render_ms``
    from now: a chunk due before ``now + 2 render_ms - LATE_TOLERANCE_MS`` would be shown more
    than the tolerance late, so the frames before it are skipped and it is rendered at once.
    Every chunk is then shown at most about the tolerance after it is due (the render times
    staying alike), and fast renders (small images) skip nothing unless far behind."""
    return now_ms + 2 * render_ms - LATE_TOLERANCE_MS


@dataclass(frozen=True)
class Superseded:
    """A chunk whose own frame is not rendered: chunk ``by``'s frame, due by the time it would
    have been rendered, shows it (``by`` comes later in the stream)."""

    by: int


class _FramesAhead:
    """Renders each chunk's frame as soon as the chunk is made, not when it arrives on the link:
    the render (about 0.3 s for a 12-megapixel photo's frame) overlaps the link's delay instead
    of adding to it. At most ``FRAMES_AHEAD`` frames wait to be sent; an error of the encode
    (or of rendering) reaches the sender in order, after the frames before it.

    With ``coalesce`` (a viewer's frames, at its display size, on a link with a rate), chunks
    that come faster than frames are rendered do not queue up behind each other: before each
    render the renderer takes the newest chunk made that would otherwise be shown too late
    (``render_horizon``, timed by the last render), and the chunks it passes over are
    ``Superseded`` by it. So a picture is shown at most about ``LATE_TOLERANCE_MS`` after
    its chunk is due, however many chunks arrive meanwhile; without it each chunk waited
    for the frames of all the chunks before it (1.5 s behind, for a 12-megapixel photo on
    the 3g link). Clients that measure every chunk ("full" frames: ``hidenet fetch``, the
    bench), a race (whose verdict reads hideNet's picture at every chunk, as it reads every
    contender's repaint) and the unlimited link (every chunk there at once) get every frame.
    """

    def __init__(self, source: StreamSource, plan, progress: Progress, worker, decoding: LevelFrames,
                 times: ChunkTimes, clock: Clock, coalesce: bool) -> None:
        self.source, self.plan, self.progress, self.worker, self.decoding = source, plan, progress, worker, decoding
        self.times, self.clock, self.coalesce = times, clock, coalesce
        self._ready: asyncio.Queue = asyncio.Queue()
        self._room = asyncio.Semaphore(FRAMES_AHEAD)
        self._waiting = False  # the sender waits for the next frame: progress notices are due
        self._render_ms = 0.0  # how long the last render took (on the stream's clock)

    async def run(self) -> None:
        fed = 0  # the stream bytes given to the decoder so far
        first = 0  # the first chunk without a frame
        try:
            while first < len(self.plan):
                await self._room.acquire()
                await _await_chunk(self.source, first, self.plan, self.progress, lambda: self._waiting)
                now_ms = 1000 * (self.clock.now() - self.times.t0)
                index = first
                if self.coalesce:
                    horizon = render_horizon(now_ms, self._render_ms)
                    index = newest_due(self.times.due_ms, first, self.times.made(), horizon)
                for _ in range(first, index):
                    self._ready.put_nowait(Superseded(index))
                end = self.source.chunks[index].end
                started = self.clock.now()
                rendered = await self.worker.run(self.decoding.next, bytes(self.source.data[fed:end]), index,
                                                 priority=index)
                self._render_ms = 1000 * (self.clock.now() - started)
                fed, first = end, index + 1
                self._ready.put_nowait(rendered)
        except Exception as exc:  # handed to the sender, which raises it where it would have met it
            self._ready.put_nowait(exc)

    async def next(self) -> tuple[Frame, bool] | Superseded:
        """The next chunk's (frame, shared) once rendered, or that its frame was skipped."""
        self._waiting = True
        try:
            item = await self._ready.get()
        finally:
            self._waiting = False
        if isinstance(item, Exception):
            raise item
        if not isinstance(item, Superseded):
            self._room.release()
        return item


async def run_stream(app: web.Application, send: Sender, req: StartRequest, info: ImageInfo,
                     watch: StreamWatch | None = None, client: str | None = None) -> None:
    """Stream one image (and its race); returns after ``done``. Cancel the task to stop it.
    ``watch`` hears the stream's frames (for the session's region requests); ``client`` is
    whose socket it is (``peers``: an encode it starts counts toward its cap)."""
    key = stream_key(app, info.id, req.max_error, req.generative_levels, req.layered)
    try:
        source = await open_stream(app, info, key, client=client)
    except Busy as exc:
        app[STATS].streams_refused += 1
        raise StreamBusy(str(exc)) from None
    watch = watch or StreamWatch()
    # before anything awaits, so that an encode this viewer starts renders its frames from its first chunk
    watch.frames = LevelFrames(app[MODEL], app[STORE], info, app[FRAMES], key, frame_spec(req), source, app[FINALS])
    try:
        await _run_stream(app, send, req, info, key, source, watch)
    finally:
        watch.frames.close()
        app[SOURCES].release(source, client)


def frame_spec(req: StartRequest) -> FrameSpec:
    """How this stream's frames are shown: in a race, measured at full size whatever size they are sent at."""
    return FrameSpec(req.preview, req.frame, full_quality=bool(req.contenders))


class StreamBusy(Exception):
    """Every encode slot of this process is taken: the client is told "busy"."""


@dataclass
class StreamWatch:
    """What a session knows of its running stream: its frames, once it has them, and the last
    chunk whose message went out."""

    frames: LevelFrames | None = None
    sent: int = -1
    _sent_changed: asyncio.Event = field(default_factory=asyncio.Event)

    def mark_sent(self, index: int) -> None:
        self.sent = index
        self._sent_changed.set()
        self._sent_changed = asyncio.Event()

    async def until_sent(self, index: int) -> None:
        """Until the message of chunk ``index`` has gone out."""
        while self.sent < index:
            await self._sent_changed.wait()


async def _run_stream(app: web.Application, send: Sender, req: StartRequest, info: ImageInfo, key: StreamKey,
                      source: StreamSource, watch: StreamWatch) -> None:
    clock, worker, store, stats = app[CLOCK], app[WORKER], app[STORE], app[STATS]
    decoding = watch.frames
    assert decoding is not None
    progress = Progress(send, clock, clock.now())
    if not source.complete:
        mode = ("lossless" if req.max_error == 0 else f"max error {req.max_error}") + (
            f", {req.generative_levels} predicted levels" if req.generative_levels else "")
        await progress.say("hidenet", "encode", f"Encoding the hideNet stream ({mode}) as it is sent: the first view "
                                                "of this image in this mode; later views read the cache")
    racers = [Racer(spec, slot, shown_size(info.height, info.width, req.frame))
              for slot, spec in enumerate(req.contenders, 1)]
    # The contenders are prepared before the race's clock starts, so that no racer waits for its encoder;
    # hideNet's stream needs only its header (its chunks are sent as the encoder makes them).
    preparing = [asyncio.ensure_future(source.wait_header())]
    preparing += [asyncio.ensure_future(r.prepare(app[RACES], worker, store, info, progress)) for r in racers]
    try:
        header, *_ = await asyncio.gather(*preparing)
    finally:
        for task in preparing:  # one failed: the others are of no use (a cache still gets what they finish)
            task.cancel()
    spec = frame_spec(req)
    chunk_plan = stream_plan(header)
    promised = guarantees(header, chunk_plan)
    plan = [_schedule_entry(i, c, req.link) for i, c in enumerate(source.chunks)] + [
        {"index": c.index, "layer": c.layer, "level": c.level, "part": c.part,
         "parts": 1 if c.pass_ is None else len(c.pass_.parts), "max_error": promised[c.index]}
        for c in chunk_plan[len(source.chunks) :]
    ]  # chunks not encoded yet: their sizes and arrival times are not known
    # On the unlimited link every byte arrives at t = 0: racers are timed by when they were sent.
    unlimited = req.link.down_kbps is None
    time_of = (lambda arrival, sent: sent) if unlimited else (lambda arrival, sent: arrival)
    t0 = clock.now()
    await send.json({
        "type": "meta", "image": info.to_json(), "width": header.width, "height": header.height,
        "channels": header.channels, "mode": header.mode, "levels": len(chunk_plan), "chunks": len(chunk_plan),
        "base_level": header.levels, "max_error": req.max_error, "generative_levels": req.generative_levels,
        "preview": req.preview, "race": req.race, "link": req.link.to_json(), "model": header.model_name,
        "stream": "layered" if req.layered else "resolution", "format_version": header.version,
        "layers": [list(r) for r in header.layers] or [list(header.max_error)],
        "colour_layers": [list(r) for r in header.colours] or [list(header.max_error)], "encoding": not source.complete,
        "header_bytes": source.header_bytes, "schedule": plan,
        "payload_bytes": source.layout().payload_bytes if source.complete else None,
        "total_bytes": len(source.data) if source.complete else None,
        "frame": None if req.frame is None else {"width": req.frame[0], "height": req.frame[1]},
        "contenders": [r.schedule(req.link) for r in racers],
        "prepared_ms": _ms(t0 - progress.started), "time": "sent" if unlimited else "arrival",
    })
    tasks = [asyncio.create_task(r.run(send, clock, req.link, t0, time_of)) for r in racers]
    events: list[Event] = []
    rendering: asyncio.Task | None = None
    try:
        shapes = level_shapes(header.height, header.width, header.levels)
        level_frame_bytes = 0
        times = ChunkTimes(source, req.link, t0)
        arrival = round(arrival_ms(req.link, source.header_bytes), 3)
        ahead = _FramesAhead(source, chunk_plan, progress, worker, decoding, times, clock,
                             coalesce=spec.size is not None and not unlimited and not racers)
        rendering = asyncio.create_task(ahead.run())
        for i in range(len(chunk_plan)):
            item = await ahead.next()
            chunk = source.chunks[i]
            # released when its last byte arrives on the link, which cannot send it before it is encoded
            arrival = times.due_ms(i)
            await clock.sleep_until(t0 + arrival / 1000)
            h, w = shapes[chunk.level]
            about = {"level": chunk.level, "layer": chunk.layer, "part": chunk.part, "parts": chunk.parts,
                     "max_error": chunk.max_error, "width": w, "height": h, "payload_bytes": chunk.payload_bytes,
                     "total_bytes": chunk.end, "arrival_ms": arrival,
                     "encoded_ms": _ms(max(0.0, source.made[i] - t0)), "sent_ms": _ms(clock.now() - t0),
                     "index": i, "levels": len(chunk_plan), "chunks": len(chunk_plan)}
            if isinstance(item, Superseded):
                stats.frames_superseded += 1
                await send.json({"type": "chunk", **about, "superseded_by": item.by})
                watch.mark_sent(i)
                continue
            frame, shared = item
            stats.frame_hits += shared
            stats.frame_misses += not shared
            level_frame_bytes += len(frame.data)
            events.append(Event(time_of(arrival, about["sent_ms"]), chunk.end, frame.psnr))
            await send.pair({
                "type": "level", **about, "decode_ms": round(frame.decode_ms, 3), "shared": shared,
                "psnr": frame.psnr, "ssim": frame.ssim, "psnr_level": frame.level,
                "frame_bytes": len(frame.data), "frame_width": frame.width, "frame_height": frame.height,
                "frame_format": frame.format, "frame_from": frame.origin, "estimated": frame.estimated,
            }, frame.data)
            watch.mark_sent(i)
        summaries = list(await asyncio.gather(*tasks))
        total = len(source.data)
        result = verdict([VerdictRacer("hidenet", "hideNet", total, tuple(events))] + [r.racer() for r in racers])
        await send.json({
            "type": "done", "levels": len(chunk_plan), "chunks": len(chunk_plan),
            "payload_bytes": source.layout().payload_bytes, "total_bytes": total,
            "arrival_ms": arrival,
            "elapsed_ms": _ms(clock.now() - t0), "frame_bytes": level_frame_bytes,
            "json_bytes": send.json_bytes, "race": summaries[0] if summaries else None, "contenders": summaries,
            "verdict": {**result, "time": "sent" if unlimited else "arrival", "comparable": req.preview or not racers},
        })
    finally:
        background = [task for task in (*tasks, rendering) if task is not None]
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)


def _schedule_entry(index: int, chunk, link: Link) -> dict:
    """A chunk of ``meta``'s schedule whose size is known (it exists already)."""
    return {"index": index, "layer": chunk.layer, "level": chunk.level, "part": chunk.part, "parts": chunk.parts,
            "max_error": chunk.max_error, "payload_bytes": chunk.payload_bytes, "total_bytes": chunk.end,
            "arrival_ms": round(arrival_ms(link, chunk.end), 3)}
