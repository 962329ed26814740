"""The ``/ws`` websocket: one session per socket, at most one stream running in it.

A ``start`` replaces the running stream (it is cancelled first, so every message of the
old stream precedes the new ``meta``); ``cancel`` stops it and is answered with
``cancelled``. Errors are ``{"type": "error", "code", "message"}`` and leave the
socket open. A client that goes away cancels its stream quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from hidenet_core import HdnFormatError, ImageError, default_levels

from ..keys import CONFIG, PEERS, SOCKETS, STATS, STORE, WORKER
from ..peers import client_address, peer_address
from ..storage.store import ImageGone
from ..views.errors import json_error
from .protocol import Cancel, ProtocolError, Region, StartRequest, parse_message
from .stream import Sender, StreamBusy, StreamWatch, run_stream

__all__ = ["websocket", "close_sockets", "origin_allowed"]

log = logging.getLogger(__name__)

#: how long a viewer told ``region_busy`` waits before it asks again
REGION_RETRY_MS = 2000
#: how long a client told ``busy`` for a ``start`` should wait before it asks again (the web viewer
#: does, a few times, a little longer each time)
BUSY_RETRY_MS = 3000


def origin_allowed(request: web.Request) -> bool:
    """Same-origin browsers, configured origins, and clients that send no Origin (CLI tools)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin in request.app[CONFIG].allowed_origins:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == request.host.lower()


_warned_untrusted = False


def _warn_untrusted_proxy(request: web.Request, peer: str, trusted: tuple[str, ...]) -> None:
    """Say once, in the log, that a socket came with X-Forwarded-For while no proxy is trusted: a
    proxy in front forwards clients this server does not tell apart, and every visitor behind
    it shares one client's caps (``peers``). (A client may send the header itself: it is ignored.)"""
    global _warned_untrusted
    if _warned_untrusted or trusted or "X-Forwarded-For" not in request.headers:
        return
    _warned_untrusted = True
    log.warning("websockets from %s carry X-Forwarded-For, which is not trusted: every client behind that proxy "
                "counts as one for the per-client caps; name the proxy with --forwarded-allow-ips", peer)


class Session:
    """The state of one socket."""

    def __init__(self, app: web.Application, ws: web.WebSocketResponse, client: str = "unknown") -> None:
        self.app = app
        self.client = client  # whose socket this is (``peers``): its streams count toward its cap
        self.send = Sender(ws)
        self.task: asyncio.Task[None] | None = None
        self.watch = StreamWatch()
        self._region: Region | None = None  # the latest region asked for and not answered yet
        self._region_task: asyncio.Task[None] | None = None

    async def on_text(self, text: str) -> None:
        try:
            message = parse_message(text)
            if isinstance(message, Cancel):
                await self.stop()
                await self.send.json({"type": "cancelled"})
                return
            if isinstance(message, Region):
                self.ask_region(message)
                return
            await self.start(message)
        except ProtocolError as exc:
            await self.error(str(exc), exc.code)

    def ask_region(self, region: Region) -> None:
        """Answer with the latest picture's exact pixels in ``region`` (the 1:1 view); while one
        is being rendered, a newer request replaces any waiting one (a pan sends many)."""
        if self.watch.frames is None or not self.watch.frames.showing:
            raise ProtocolError("no stream to show a region of: send start first, and wait for its first level",
                                "no_stream")
        self._region = region
        if self._region_task is None or self._region_task.done():
            self._region_task = asyncio.create_task(self._regions())
        else:  # one waiting for the encoder's next chunk gives way (the loop takes this one next)
            self.watch.frames.drop_region()

    async def _regions(self) -> None:
        while self._region is not None and self.watch.frames is not None:
            region, self._region, frames = self._region, None, self.watch.frames
            rect = (region.x, region.y, region.width, region.height)
            if await self._region_from_encoder(frames, rect):
                continue
            # a large photo's frames skip its finest levels: the exact pixels may need seconds of
            # decoding, so they come second, after the region as the frames' decoder predicts it
            passes = (False, True) if frames.region_behind() else (True,)
            # the picture asked for: a chunk arriving meanwhile is not decoded for it
            upto, index = frames.latest
            gone = threading.Event()  # set when the session stops: a catch-up in the worker gives up
            for exact in passes:
                decodes = frames.region_decodes(exact, upto)
                if decodes and (why := self._take_region_decode()):
                    await self._send_region_busy(rect, why)
                    break
                try:  # a decode's count is given back when its worker job ends, not when this task does
                    answer = await self.app[WORKER].run(frames.region, *rect, exact, gone.is_set, upto, priority=0,
                                                        ended=self._give_region_decode if decodes else None)
                except asyncio.CancelledError:
                    gone.set()
                    raise
                if answer is None:
                    return
                await self._send_region(*answer, exact, index)

    def _take_region_decode(self) -> str | None:
        """Count a region answered by decoding the stream for this client and the process, or say
        why not (None: counted): at most ``max_region_decodes`` at once, below the worker's threads so
        that every stream's frames still find one, and ``max_client_region_decodes`` per client. A
        socket asks one region at a time; one client's sockets asking at once (a region of a
        generative stream decodes every level sent, a minute at 12 MP) held every worker thread and
        every other viewer's first frame waited for them."""
        stats, cfg, peers = self.app[STATS], self.app[CONFIG], self.app[PEERS]
        mine = peers.of(self.client).regions
        if mine >= cfg.max_client_region_decodes:
            why = (f"this client already has {mine} region{'s' * (mine != 1)} being decoded "
                   f"(at most {cfg.max_client_region_decodes} at once)")
        elif stats.regions_decoding >= cfg.max_region_decodes:
            why = (f"the server is decoding {stats.regions_decoding} region{'s' * (stats.regions_decoding != 1)} "
                   "for other viewers")
        else:
            stats.regions_decoding += 1
            peers.change(self.client, regions=+1)
            return None
        stats.regions_refused += 1
        return why

    def _give_region_decode(self) -> None:
        self.app[STATS].regions_decoding -= 1
        self.app[PEERS].change(self.client, regions=-1)

    async def _send_region_busy(self, rect: tuple[int, int, int, int], why: str) -> None:
        """``region_busy``: the region is not answered now (``_take_region_decode``); the viewer
        keeps what it shows and asks again after ``retry_ms``. Not an error: the stream goes on."""
        x, y, width, height = rect
        with contextlib.suppress(ConnectionResetError):
            await self.send.json({"type": "region_busy", "x": x, "y": y, "width": width, "height": height,
                                  "retry_ms": REGION_RETRY_MS, "message": f"{why}; the exact pixels come later"})

    async def _region_from_encoder(self, frames, rect: tuple[int, int, int, int]) -> bool:
        """During a first view: the region cut from the encoder's state after its next chunk (the
        encoder keeps pace with a viewer at 1:1), sent once that chunk's own message has gone out
        (so never ahead of the link). False when that path does not apply
        (``LevelFrames.region_from_encoder``)."""
        loop = asyncio.get_running_loop()
        got: asyncio.Future = loop.create_future()

        def answer(result) -> None:  # on the encode's thread, or this one
            loop.call_soon_threadsafe(lambda: got.done() or got.set_result(result))

        if not frames.region_from_encoder(*rect, answer):
            return False
        result = await got
        if result is None:  # a newer request took its place, or the stream ended: the loop goes on
            if self._region is None and self.watch.frames is frames and frames.showing:
                self._region = Region(*rect)  # not replaced: asked again, answered by the decoders
            return True
        index, png, rect = result
        await self.watch.until_sent(index)
        await self._send_region(png, rect, True, index)
        return True

    async def _send_region(self, png: bytes, rect: tuple[int, int, int, int], exact: bool, index: int) -> None:
        """A ``region`` message and its PNG (the rectangle as clipped to the image); ``index``: the chunk
        whose picture it is of. A viewer tells by it an answer to an earlier request of the same
        rectangle (served while the last chunks came) from the picture it shows now."""
        x, y, width, height = rect
        with contextlib.suppress(ConnectionResetError):
            await self.send.pair({"type": "region", "x": x, "y": y, "width": width, "height": height,
                                  "exact": exact, "index": index, "frame_bytes": len(png)}, png)

    async def error(self, message: str, code: str) -> None:
        retry = {"retry_ms": BUSY_RETRY_MS} if code == "busy" else {}
        await self.send.json({"type": "error", "code": code, "message": message, **retry})

    async def start(self, req: StartRequest) -> None:
        try:
            info = self.app[STORE].get_stored(req.image)
        except ImageGone as exc:  # its file was removed: nothing derived from it (a cached stream) is sent
            raise ProtocolError(str(exc), "not_found") from None
        if info is None:
            raise ProtocolError(f"unknown image {req.image!r}; GET /api/images lists the ids", "not_found")
        levels = default_levels(info.height, info.width)
        if req.generative_levels > levels:
            raise ProtocolError(
                f"generative_levels {req.generative_levels} is outside 0..{levels} "
                f"for this {info.width}x{info.height} image"
            )
        for spec in req.contenders:
            if max(info.width, info.height) > spec.contender.max_side:
                raise ProtocolError(f"{spec.label} cannot code this {info.width}x{info.height} image (at most "
                                    f"{spec.contender.max_side} pixels a side): race it without {spec.key}")
        await self.stop()
        stats, cfg = self.app[STATS], self.app[CONFIG]
        if stats.streams_running >= cfg.max_streams:
            stats.streams_refused += 1
            raise ProtocolError(f"server busy: {stats.streams_running} streams are running; try again shortly", "busy")
        peers = self.app[PEERS]
        if peers.of(self.client).streams >= cfg.max_client_streams:
            stats.streams_refused += 1
            raise ProtocolError(f"this client already runs {peers.of(self.client).streams} streams on other sockets "
                                f"(at most {cfg.max_client_streams} at once); stop one first", "busy")
        peers.change(self.client, streams=+1)
        stats.streams_running += 1
        stats.streams_started += 1
        self.watch = StreamWatch()
        self.task = asyncio.create_task(self._run(req, info))
        self.task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """Runs once however a stream's task ends, also when it was cancelled before it ever ran
        (a ``start`` or ``cancel`` right behind a ``start``): so ``streams_running`` always
        counts exactly the tasks not ended yet."""
        stats = self.app[STATS]
        stats.streams_running -= 1
        self.app[PEERS].change(self.client, streams=-1)
        if task.cancelled():
            stats.streams_cancelled += 1

    async def _run(self, req: StartRequest, info) -> None:
        stats = self.app[STATS]
        try:
            await run_stream(self.app, self.send, req, info, self.watch, self.client)
            stats.streams_completed += 1
        except StreamBusy as exc:
            await self._report(str(exc), "busy")
        except ConnectionResetError:  # the client went away: nothing to report to
            stats.streams_cancelled += 1
        except ImageGone as exc:  # its file was removed meanwhile
            stats.streams_failed += 1
            await self._report(str(exc), "not_found")
        except (HdnFormatError, ImageError) as exc:
            stats.streams_failed += 1
            log.warning("stream of %s failed: %s", info.id, exc)
            await self._report(f"cannot stream image {info.id}: {exc}", "stream_failed")
        except Exception:
            stats.streams_failed += 1
            log.exception("stream of %s failed", info.id)
            await self._report("internal error while streaming; see the server log", "internal")

    async def _report(self, message: str, code: str) -> None:
        with contextlib.suppress(ConnectionResetError):  # the client went away
            await self.error(message, code)

    async def stop(self) -> None:
        """Cancel the running stream, if any, and wait until it has stopped."""
        task, self.task = self.task, None
        self._region = None
        running = [t for t in (task, self._region_task) if t is not None and not t.done()]
        for t in running:  # both cancelled before either is awaited
            t.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    app, cfg = request.app, request.app[CONFIG]
    if not origin_allowed(request):
        json_error(web.HTTPForbidden,
                   f"cross-origin websocket refused: origin {request.headers['Origin']!r} is not this server")
    # no permessage-deflate: the frames are PNGs already, deflating them again only burns CPU
    # aiohttp refuses a message of max_msg_size bytes or more; the protocol allows ws_max_message bytes
    ws = web.WebSocketResponse(heartbeat=cfg.heartbeat_s, max_msg_size=cfg.ws_max_message + 1, compress=False)
    if not ws.can_prepare(request).ok:
        json_error(web.HTTPBadRequest, "expected a websocket upgrade request on /ws")
    sockets, peers = app[SOCKETS], app[PEERS]
    if len(sockets) >= cfg.max_sockets:
        app[STATS].sockets_refused += 1
        json_error(web.HTTPServiceUnavailable, f"too many open websockets ({len(sockets)}); try again later")
    client = client_address(request, cfg.forwarded_allow_ips)
    _warn_untrusted_proxy(request, peer_address(request), cfg.forwarded_allow_ips)
    if peers.of(client).sockets >= cfg.max_client_sockets:
        app[STATS].sockets_refused += 1
        json_error(web.HTTPTooManyRequests, f"this client has {peers.of(client).sockets} websockets open (at most "
                                            f"{cfg.max_client_sockets}); close one first")
    await ws.prepare(request)
    sockets.add(ws)
    peers.change(client, sockets=+1)
    session = Session(app, ws, client)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                try:
                    await session.on_text(msg.data)
                except ConnectionResetError:
                    raise
                except Exception:  # a bug, never an HTTP 500 written onto the upgraded socket
                    log.exception("websocket message handling failed")
                    await session.error("internal error while handling the message; see the server log", "internal")
            elif msg.type == WSMsgType.BINARY:
                await session.error("binary messages are not part of the protocol; send JSON text", "bad_request")
    except ConnectionResetError:
        pass
    finally:
        try:
            await session.stop()
        finally:  # also if this handler is cancelled meanwhile: a count left behind would lock the client out
            sockets.discard(ws)
            peers.change(client, sockets=-1)
    return ws


async def close_sockets(app: web.Application) -> None:
    """on_shutdown: close every open socket with 1001 (going away)."""
    sockets = list(app[SOCKETS])
    await asyncio.gather(
        *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in sockets),
        return_exceptions=True,
    )
