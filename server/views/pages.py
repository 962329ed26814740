"""The HTML pages: the gallery and the viewer (templates by the viewer's author)."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from hidenet_core.codec.container import MAX_ERROR, MAX_LEVELS
from hidenet_core.tools.contenders import MAX_CONTENDERS, contenders_json

from ..keys import STORE
from ..streaming.links import CUSTOM_LIMITS, presets_json

__all__ = ["gallery", "viewer", "viewer_limits"]


def viewer_limits() -> dict[str, tuple[int, int]]:
    """The range of each number setting of the viewer (its inputs carry them, and its URL state
    keeps to them): what the server accepts."""
    return {
        "max_error": (1, MAX_ERROR),
        "generative_levels": (1, MAX_LEVELS),  # narrowed by the viewer to the image's level count
        **{key: (int(lo), int(hi)) for key, (lo, hi) in CUSTOM_LIMITS.items()},
    }


async def gallery(request: web.Request) -> web.Response:
    images = [info.to_json() for info in request.app[STORE].list()]
    return aiohttp_jinja2.render_template("gallery.html", request, {"images": images})


async def viewer(request: web.Request) -> web.Response:
    info = request.app[STORE].get(request.match_info["id"])
    if info is None:
        raise web.HTTPNotFound(text=f"There is no image with id {request.match_info['id']!r} on this server: "
                                    "it may have been mistyped, or uploaded to another server.")
    context = {"image": info.to_json(), "links": presets_json(), "limits": viewer_limits(),
               "contenders": contenders_json(), "contenders_max": MAX_CONTENDERS}
    return aiohttp_jinja2.render_template("viewer.html", request, context)
