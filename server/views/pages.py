"""The HTML pages: the gallery and the viewer (templates by the viewer's author)."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from .errors import json_error
from ..keys import STORE
from ..streaming.links import PRESETS

__all__ = ["gallery", "viewer", "links_json"]


def links_json() -> list[dict]:
    return [link.to_json() for link in PRESETS.values()]


async def gallery(request: web.Request) -> web.Response:
    images = [info.to_json() for info in request.app[STORE].list()]
    return aiohttp_jinja2.render_template("gallery.html", request, {"images": images, "links": links_json()})


async def viewer(request: web.Request) -> web.Response:
    info = request.app[STORE].get(request.match_info["id"])
    if info is None:
        json_error(web.HTTPNotFound, f"no image with id {request.match_info['id']!r}")
    return aiohttp_jinja2.render_template("viewer.html", request, {"image": info.to_json(), "links": links_json()})
