"""Every route of the application, in one list."""

from __future__ import annotations

from aiohttp import web

from .streaming.protocol import WS_PATH
from .streaming.ws import websocket
from .views import api, pages

__all__ = ["routes"]

def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/", pages.gallery, name="gallery"),
        web.get("/view/{id}", pages.viewer, name="viewer"),
        web.get(WS_PATH, websocket, name="ws"),
        web.get("/healthz", api.healthz, name="healthz"),
        web.get("/api/stats", api.server_stats, name="stats"),
        web.get("/api/links", api.list_links, name="links"),
        web.get("/api/contenders", api.list_contenders, name="contenders"),
        web.get("/api/images", api.list_images, name="images"),
        web.post("/api/images", api.upload_image, name="upload"),
        web.get("/api/images/{id}", api.get_image, name="image"),
        web.get("/api/images/{id}/stream.hdn", api.stream_file, name="stream"),
        web.get("/api/images/{id}/original.png", api.original_png, name="original"),
        web.get("/api/images/{id}/thumbnail.png", api.thumbnail_png, name="thumbnail"),
        web.get("/static/{path:.+}", api.static_file, name="static"),
    ]
