"""Every HTTP error as JSON ``{"error": "..."}`` with the right status."""

from __future__ import annotations

import json
import logging
from typing import NoReturn

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

__all__ = ["json_error", "json_errors"]

log = logging.getLogger(__name__)


class PayloadTooLarge(web.HTTPClientError):
    """413 without aiohttp's required size arguments (the message says the sizes)."""

    status_code = 413


def json_error(status: type[web.HTTPException], message: str, **headers: str) -> NoReturn:
    """Raise ``status`` with a JSON body ``{"error": message}``."""
    if status is web.HTTPRequestEntityTooLarge:
        status = PayloadTooLarge
    raise status(text=json.dumps({"error": message}), content_type="application/json", headers=headers or None)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's plain-text errors (404, 405, 413, ...) and crashes into JSON."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        headers = {k: v for k, v in exc.headers.items() if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)}
        return web.json_response({"error": message}, status=exc.status, headers=headers)
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.json_response({"error": "internal server error"}, status=500)
