"""Every contender by id, in menu order."""

from __future__ import annotations

from .base import Contender
from .j2k import Jpeg2000
from .jpeg import BaselineJpeg
from .pjpeg import ProgressiveJpeg
from .png import InterlacedPng
from .webp import WebpLossless, WebpLossy

__all__ = ["CONTENDERS", "contenders_json"]

CONTENDERS: dict[str, Contender] = {
    c.id: c for c in (ProgressiveJpeg(), BaselineJpeg(), InterlacedPng(), WebpLossless(), WebpLossy(), Jpeg2000())
}


def contenders_json() -> list[dict]:
    """Each contender as JSON (``GET /api/contenders``, the viewer's menus)."""
    out = []
    for c in CONTENDERS.values():
        reason = c.available()
        q = c.quality
        out.append({
            "id": c.id, "name": c.name, "lossless": c.lossless, "repaints": c.repaints,
            "quality": None if q is None else {"default": q.default, "min": q.low, "max": q.high},
            "available": reason is None, "reason": reason,
        })
    return out
