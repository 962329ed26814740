"""The JSON/HTTP API (docs/api.md)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import typing
from collections.abc import Awaitable
from typing import TypeVar

import numpy as np
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from PIL import Image

from hidenet_core import ImageError, ImageTooLarge, UnsupportedImage, default_levels, image_from_bytes, png_bytes
from hidenet_core.codec.container import MAX_ERROR, MAX_PIXELS, MAX_SIDE
from hidenet_core.codec.encoder import EncodeCancelled
from hidenet_core.imageio import to_pil
from hidenet_core.tools.contenders import contenders_json

from ..keys import CONFIG, ORIGINALS, PEERS, RACES, SOCKETS, SOURCES, STATIC, STATS, STORE, THUMBNAILS, WORKER
from ..peers import client_address
from ..storage.spool import Spool
from ..storage.store import ImageInfo, StoreFull, display_name
from ..streaming.links import presets_json
from ..streaming.protocol import STREAM_KINDS
from ..streaming.source import Busy
from ..streaming.stream import open_stream, stream_key
from .errors import json_error

log = logging.getLogger(__name__)

__all__ = ["image_or_404", "list_images", "upload_image", "get_image", "stream_file", "original_png", "thumbnail_png",
           "list_links", "list_contenders", "static_file", "healthz", "server_stats", "THUMBNAIL_SIDE"]

THUMBNAIL_SIDE = 320
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_CHUNK = 64 * 1024
CLIENT_CHECK_S = 0.25  # how often a handler waiting for work checks that its client is still there
#: the worker priority of HTTP jobs (original.png, thumbnails): behind the first chunks of every
#: stream (a chunk's frame has its index as priority), ahead of the later ones
HTTP_PRIORITY = 4
T = TypeVar("T")


def image_or_404(request: web.Request) -> ImageInfo:
    """The image a route's ``{id}`` names, or a 404 (a 410 if its upload's file vanished)."""
    info = request.app[STORE].get_stored(request.match_info["id"])
    if info is None:
        json_error(web.HTTPNotFound, f"no image with id {request.match_info['id']!r}")
    return info


async def list_images(request: web.Request) -> web.Response:
    return web.json_response([info.to_json() for info in request.app[STORE].list()])


async def get_image(request: web.Request) -> web.Response:
    info = image_or_404(request)
    levels = default_levels(info.height, info.width)
    return web.json_response({**info.to_json(), "channels": info.channels, "levels": levels + 1,
                              "encoding": _encoding(request.app, info)})


def _encoding(app: web.Application, info: ImageInfo) -> dict | None:
    """How far this process is in encoding the image's default stream (lossless, layered), or None
    when it is not encoding it (not started, done, or cached)."""
    source = app[SOURCES].get(stream_key(app, info.id, 0, 0))
    if source is None or source.complete or source.error is not None:
        return None
    return {"chunks_done": len(source.chunks), "chunks": source.planned or None}


def _decode_upload(spool: typing.BinaryIO, max_pixels: int) -> np.ndarray:
    """Blocking (worker): decode an upload spooled to a file (checked from its header first);
    every failure is a 4xx. Its bytes are in memory only here, in one of the worker's threads.

    Besides the server's pixel limit, the image must be one the codec can encode: at most
    ``MAX_SIDE`` pixels a side and ``MAX_PIXELS`` in all (hidenet_core/codec/container.py),
    so that everything accepted can be streamed."""
    try:
        spool.seek(0)
        return image_from_bytes(spool.read(), min(max_pixels, MAX_PIXELS), max_side=MAX_SIDE).pixels
    except ImageTooLarge as exc:
        failure = (web.HTTPRequestEntityTooLarge, str(exc))
    except UnsupportedImage as exc:
        failure = (web.HTTPUnsupportedMediaType, str(exc))
    except ImageError as exc:
        failure = (web.HTTPBadRequest, str(exc))
    finally:
        spool.close()
    # raised here, not in the handlers: a failed decode's traceback held its frames and so the
    # upload's bytes until the answer was sent (16 refused uploads of 150 MB at once: 2.6 GiB)
    json_error(*failure)


async def _read_file_field(request: web.Request, limit: int, spool: Spool) -> str | None:
    """Write the multipart field ``file`` to ``spool``, refusing more than ``limit`` bytes; its
    file name. Spooled, not kept in memory: 16 uploads of 150 MB sent at once held 4.95 GiB of
    the server's memory (an upload waits for one of the worker's threads to decode it), enough
    of them would have exhausted it; and written on a thread (``storage/spool.py``)."""
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        json_error(web.HTTPRequestEntityTooLarge,
                   f"upload of {request.content_length} bytes exceeds the limit of {limit}")
    if not request.content_type.startswith("multipart/form-data"):
        json_error(web.HTTPBadRequest, "expected a multipart/form-data upload with a field named 'file'")
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if getattr(part, "name", None) != "file":
                continue
            try:
                while chunk := await part.read_chunk(_CHUNK):
                    if spool.size + len(chunk) > limit:
                        json_error(web.HTTPRequestEntityTooLarge, f"upload exceeds the limit of {limit} bytes")
                    await spool.write(chunk)
                await spool.finish()  # the last bytes: a full disk is found here, not in the decode
            except OSError as exc:  # the disk is full (ENOSPC, EDQUOT): nothing stored, a clear answer
                _no_room(exc)
            return part.filename
    except (ValueError, HttpProcessingError) as exc:  # HttpProcessingError: a bad or overlong part header line
        json_error(web.HTTPBadRequest, f"malformed multipart body: {_one_line(exc)}")
    except RequestPayloadError as exc:  # a body that its Content-Encoding (gzip, deflate) does not decode
        json_error(web.HTTPBadRequest, f"malformed request body: {_one_line(exc)}")
    json_error(web.HTTPBadRequest, "the upload has no field named 'file'")


def _no_room(exc: OSError) -> typing.NoReturn:
    """507 for an upload the data directory cannot take (full disk, quota, not writable), with the reason."""
    json_error(web.HTTPInsufficientStorage, f"cannot receive the upload: {exc.strerror or exc}")


def _one_line(exc: Exception) -> str:
    text = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    return " ".join(str(text).split())[:200]


async def upload_image(request: web.Request) -> web.Response:
    cfg, store, worker, peers = request.app[CONFIG], request.app[STORE], request.app[WORKER], request.app[PEERS]
    client = client_address(request, cfg.forwarded_allow_ips)
    if peers.of(client).uploads >= cfg.max_client_uploads:
        json_error(web.HTTPTooManyRequests, f"this client is already sending {peers.of(client).uploads} uploads "
                                            f"(at most {cfg.max_client_uploads} at once); wait for one to finish",
                   **{"Retry-After": "5"})
    peers.change(client, uploads=+1)
    try:
        try:
            spool = Spool(cfg.data_dir)
        except OSError as exc:
            _no_room(exc)
        try:
            filename = await _read_file_field(request, cfg.max_upload_bytes, spool)
            if not spool.size:
                json_error(web.HTTPBadRequest, "the uploaded file is empty")
        except BaseException:
            spool.close()
            raise
        # the decode closes the spool: closing it here while a decode reads it would wait on the read
        pixels = await worker.run(_decode_upload, spool.file, cfg.max_pixels)
    finally:
        peers.change(client, uploads=-1)
    try:
        info, created = await worker.run(store.save_upload, pixels, display_name(filename), cfg.max_uploads)
    except StoreFull as exc:
        json_error(web.HTTPInsufficientStorage, str(exc))
    if cfg.encode_uploads:
        await _encode_in_background(request.app, info, client)
    return web.json_response(info.to_json(), status=201 if created else 200,
                             headers={"Location": f"/api/images/{info.id}"})


async def _encode_in_background(app: web.Application, info: ImageInfo, client: str) -> None:
    """Start encoding the upload's default stream (lossless, layered), so that its first view reads
    the cache; skipped, not queued, when it would take the last free encode slot, which is left
    to viewers, or when its uploader (``client``) already has a new stream being encoded (the
    first view encodes it then). It counts as the uploader's encode."""
    try:
        await open_stream(app, info, stream_key(app, info.id, 0, 0), viewer=False, client=client)
    except Busy as exc:
        log.info("not encoding upload %s in the background: %s", info.id, exc)


_DIGITS = re.compile(r"-?[0-9]{1,6}")


def _int_query(request: web.Request, key: str, hi: int) -> int:
    """A query integer in 0..hi, written in ASCII digits only (no "+", space, "_" or other scripts'
    digits, all of which ``int()`` would take)."""
    text = request.query.get(key, "0")
    if not _DIGITS.fullmatch(text):
        json_error(web.HTTPBadRequest, f"{key} must be an integer in 0..{hi}, got {text!r}")
    value = int(text)
    if not 0 <= value <= hi:
        json_error(web.HTTPBadRequest, f"{key} {value} is outside 0..{hi}")
    return value


async def stream_file(request: web.Request) -> web.StreamResponse:
    """The ``.hdn`` stream of a mode, sent as it is encoded: a first request starts the encode and
    receives each chunk as it is made (chunked transfer); a cached stream has a Content-Length.
    Closing the connection before the end cancels an encode nobody else waits for."""
    app = request.app
    info = image_or_404(request)
    max_error = _int_query(request, "max_error", MAX_ERROR)
    generative = _int_query(request, "generative_levels", default_levels(info.height, info.width))
    kind = request.query.get("stream", "layered")
    if kind not in STREAM_KINDS:
        json_error(web.HTTPBadRequest, f"stream must be one of {list(STREAM_KINDS)}, got {kind!r}")
    client = client_address(request, app[CONFIG].forwarded_allow_ips)
    try:
        source = await open_stream(app, info, stream_key(app, info.id, max_error, generative, kind == "layered"),
                                   client=client)
    except Busy as exc:
        json_error(web.HTTPServiceUnavailable, str(exc), **{"Retry-After": "5"})
    try:
        await _while_client_waits(request, source.wait_header())  # the pixels may wait for a worker
        filename = f"{info.id[:12]}-d{max_error}-g{generative}.hdn"
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                               "Content-Disposition": f'attachment; filename="{filename}"'})
        if source.complete:
            response.content_length = len(source.data)
        await response.prepare(request)
        sent = 0
        try:
            while True:
                while len(source.data) > sent:  # in slices: a slow reader holds one in memory, not the stream
                    end = min(len(source.data), sent + _CHUNK)
                    await response.write(bytes(source.data[sent:end]))
                    sent = end
                if len(source.chunks) == source.planned:
                    break
                # a client that leaves is noticed while the encoder works, not at the next write
                await _while_client_waits(request, source.wait(len(source.chunks)))
            await response.write_eof()
        except (ConnectionResetError, _ClientGone):  # the client went away: nothing to answer
            log.info("stream.hdn of %s: the client left after %d bytes", info.id, sent)
        except Exception as exc:  # the encode failed or stopped: the response is cut short
            if not (exc is source.error or isinstance(exc, EncodeCancelled)):
                raise
            log.warning("stream.hdn of %s cut after %d bytes: %s", info.id, sent, exc)
            if request.transport is not None:  # closed without the final chunk: no client takes it for whole
                request.transport.abort()
        return response
    finally:
        app[SOURCES].release(source, client)


def _client_gone(request: web.Request) -> bool:
    """Whether the client of ``request`` has closed its connection."""
    transport = request.transport
    return transport is None or transport.is_closing()


class _ClientGone(web.HTTPException):
    """The client left while its answer was being made: nobody to answer (499, never sent)."""

    status_code = 499


async def _while_client_waits(request: web.Request, work: Awaitable[T]) -> T:
    """``work``'s result, cancelled as soon as the client of ``request`` is gone (checked every
    ``CLIENT_CHECK_S``): a worker job still queued then never runs. (``hidenet serve`` does not
    cancel a handler whose client leaves; only this notices.)"""
    task = asyncio.ensure_future(work)
    try:
        while not (await asyncio.wait([task], timeout=CLIENT_CHECK_S))[0]:
            if _client_gone(request):
                raise _ClientGone()
        return task.result()
    finally:
        task.cancel()


async def original_png(request: web.Request) -> web.StreamResponse:
    """The original pixels as a PNG: an upload's stored file as it is (the server wrote it, from
    these very pixels: no work at all), a fixed image's made on a worker thread once for every
    request that asks meanwhile, and kept (``OriginalPNGs``)."""
    info = image_or_404(request)
    store, worker = request.app[STORE], request.app[WORKER]
    if info.path.parent == store.uploads_dir:
        return web.FileResponse(info.path, headers={**IMMUTABLE, "Content-Type": "image/png"})

    def make() -> bytes:
        return png_bytes(store.pixels(info.id), compress_level=3)

    body = await _while_client_waits(
        request, request.app[ORIGINALS].get(info.id, lambda: worker.run(make, priority=HTTP_PRIORITY)))
    return web.Response(body=body, content_type="image/png", headers=IMMUTABLE)


def _thumbnail(pixels: np.ndarray) -> bytes:
    img = to_pil(pixels)
    img.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


async def thumbnail_png(request: web.Request) -> web.Response:
    info = image_or_404(request)
    store, worker, cache = request.app[STORE], request.app[WORKER], request.app[THUMBNAILS]
    body = cache.get(info.id)
    if body is None:
        body = await _while_client_waits(request, worker.run(lambda: _thumbnail(store.pixels(info.id)),
                                                             priority=HTTP_PRIORITY))
        cache.put(info.id, body)
    return web.Response(body=body, content_type="image/png", headers=IMMUTABLE)


async def static_file(request: web.Request) -> web.FileResponse:
    """A file of the static directory; cached for good when the URL carries its content hash."""
    file = request.app[STATIC].resolve(request.match_info["path"])
    if file is None:
        json_error(web.HTTPNotFound, f"no static file {request.match_info['path']!r}")
    return web.FileResponse(file, headers=IMMUTABLE if "v" in request.query else {"Cache-Control": "no-cache"})


async def list_links(request: web.Request) -> web.Response:
    return web.json_response(presets_json())


async def list_contenders(request: web.Request) -> web.Response:
    return web.json_response(contenders_json())


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def server_stats(request: web.Request) -> web.Response:
    app = request.app
    return web.json_response({
        **app[STATS].to_json(), "pid": os.getpid(), "sockets": len(app[SOCKETS]), "clients": len(app[PEERS]),
        "images": len(app[STORE]),
        "worker_queue": app[WORKER].queued, "race_timelines": len(app[RACES]),
        "streams_live": len(app[SOURCES]), "encoding": app[SOURCES].encoding,
    })
