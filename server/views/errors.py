"""HTTP errors: JSON ``{"error": "..."}`` for the API, an HTML page for the pages.

Under ``/api/``, ``/ws``, ``/static/`` and ``/healthz`` every error is JSON with the right
status; anywhere else (the gallery, the viewer, a mistyped page address) a person is
reading, so the error is a page that says what happened and links to the gallery.
"""

from __future__ import annotations

import json
import logging
from typing import NoReturn

import aiohttp_jinja2
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler

from ..storage.store import ImageGone

__all__ = ["json_error", "json_errors", "json_protocol_errors", "wants_json", "MACHINE_PREFIXES"]

#: paths whose errors are JSON: read by programs, not people
MACHINE_PREFIXES = ("/api/", "/ws", "/static/", "/healthz")

log = logging.getLogger(__name__)


class PayloadTooLarge(web.HTTPClientError):
    """413 without aiohttp's required size arguments (the message says the sizes)."""

    status_code = 413


def json_error(status: type[web.HTTPException], message: str, **headers: str) -> NoReturn:
    """Raise ``status`` with a JSON body ``{"error": message}``."""
    if status is web.HTTPRequestEntityTooLarge:
        status = PayloadTooLarge
    raise status(text=json.dumps({"error": message}), content_type="application/json", headers=headers or None)


def wants_json(request: web.Request) -> bool:
    return request.path.startswith(MACHINE_PREFIXES)


def _message(exc: web.HTTPException) -> str:
    if exc.content_type == "application/json" and exc.text:
        try:
            return str(json.loads(exc.text)["error"])
        except (ValueError, KeyError, TypeError):
            pass
    return exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason


def _page(request: web.Request, status: int, reason: str, message: str, headers: dict) -> web.Response:
    if status == 404 and message == reason:  # aiohttp's own: no route for this path
        message = f"There is no page at {request.path}."
    context = {"status": status, "reason": reason, "message": message}
    response = aiohttp_jinja2.render_template("error.html", request, context, status=status)
    response.headers.update(headers)
    return response


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's plain-text errors (404, 405, 413, ...) and crashes into JSON, or into an
    HTML page outside the API."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)}
        if not wants_json(request):
            return _page(request, exc.status, exc.reason, _message(exc), headers)
        if exc.content_type == "application/json":
            raise
        return web.json_response({"error": _message(exc)}, status=exc.status, headers=headers)
    except ImageGone as exc:  # its stored file vanished (removed by hand or by another process's operator)
        if not wants_json(request):
            return _page(request, 410, "Gone", str(exc), {})
        return web.json_response({"error": str(exc)}, status=410)
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        if not wants_json(request):
            return _page(request, 500, "Internal Server Error", "Something went wrong on the server; "
                         "its log says what.", {})
        return web.json_response({"error": "internal server error"}, status=500)


def json_protocol_errors() -> None:
    """Make the errors aiohttp answers before any handler or middleware runs (a malformed request
    line, an invalid or overlong header: 400, 413, 431...) JSON too, like every other error.

    aiohttp has no hook for these: they come from ``RequestHandler.handle_error``, which this
    wraps, once per process, keeping the status and the message and changing only the body."""
    original = RequestHandler.handle_error
    if getattr(original, "_hidenet_json", False):
        return

    def handle_error(self, request, status=500, exc=None, message=None):  # noqa: ANN001 - aiohttp's signature
        response = original(self, request, status, exc, message)
        if isinstance(response, web.Response) and response.content_type != "application/json":
            if status >= 500:
                error = "internal server error"
            else:
                error = " ".join(str(message or response.reason or "bad request").split())[:300]
            response.text = json.dumps({"error": error})
            response.content_type = "application/json"
        return response

    handle_error._hidenet_json = True  # type: ignore[attr-defined]
    RequestHandler.handle_error = handle_error  # type: ignore[method-assign]
