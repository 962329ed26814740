"""The images the server offers, by id; an id is the content hash of the pixels.

Sample and ``--images`` files are read where they are; uploads are normalised to PNG
and written below the data directory as ``<id>.png`` plus ``<id>.json`` (name and
size), each atomically (temporary file, then rename), the metadata last: an upload is
either fully stored or not at all. No path from a request ever reaches the filesystem:
requests name images only by id, and an id is checked against ``ID_RE``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from hidenet_core import ImageError, load_image, png_bytes
from hidenet_core.imageio import image_files

from .lru import LRU

__all__ = ["ImageInfo", "ImageStore", "StoreFull", "image_id", "ID_RE", "display_name", "atomic_write"]

log = logging.getLogger(__name__)

ID_RE = re.compile(r"^[0-9a-f]{32}$")


def image_id(pixels: np.ndarray) -> str:
    """The content hash of an (H, W, C) uint8 image: same pixels, same id, whatever the file format."""
    h, w, c = pixels.shape
    digest = hashlib.sha256(f"hidenet-image:{h}x{w}x{c}\n".encode())
    digest.update(np.ascontiguousarray(pixels).data)
    return digest.hexdigest()[:32]


def display_name(filename: str | None, fallback: str = "upload") -> str:
    """A harmless display name from an uploaded file name (never used as a path)."""
    name = Path(unquote(filename or "").replace("\\", "/")).name
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    clean = "".join(ch for ch in unicodedata.normalize("NFC", stem) if unicodedata.category(ch)[0] != "C")
    clean = " ".join(clean.split())[:80]
    return clean or fallback


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StoreFull(Exception):
    """No room for another upload."""


@dataclass(frozen=True)
class ImageInfo:
    """One image the server offers."""

    id: str  # content hash (ID_RE)
    name: str  # display name
    width: int
    height: int
    channels: int  # 1, 3 or 4
    path: Path  # where its pixels are read from (server-chosen, never from a request)

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "width": self.width, "height": self.height}


class ImageStore:
    """Images by id. The methods that read or write files are blocking: call them in the worker."""

    def __init__(self, uploads_dir: Path, memory_bytes: int = 256 * 1024 * 1024) -> None:
        self.uploads_dir = uploads_dir
        self._images: dict[str, ImageInfo] = {}
        self._pixels = LRU(memory_bytes, weigh=lambda pixels: pixels.nbytes)  # type: ignore[attr-defined]
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._images)

    def get(self, image_id: str) -> ImageInfo | None:
        return self._images.get(image_id) if ID_RE.match(image_id) else None

    def list(self) -> list[ImageInfo]:
        return list(self._images.values())

    def add_file(self, path: Path, name: str | None = None) -> ImageInfo:
        """Offer an image file read in place (samples, ``--images``)."""
        pixels = load_image(path).pixels
        h, w, c = pixels.shape
        info = ImageInfo(image_id(pixels), name or path.stem, w, h, c, path)
        pixels.setflags(write=False)
        self._pixels.put(info.id, pixels)
        with self._lock:
            self._images.setdefault(info.id, info)
        return self._images[info.id]

    def add_dir(self, directory: Path) -> list[ImageInfo]:
        """Every readable image directly in ``directory``, sorted by file name."""
        out = []
        for path in image_files(directory, required=False):
            try:
                out.append(self.add_file(path))
            except ImageError as exc:
                log.warning("skipping %s: %s", path, exc)
        return out

    def load_uploads(self) -> list[ImageInfo]:
        """The uploads stored by earlier runs (metadata only; pixels are read when needed)."""
        out = []
        if not self.uploads_dir.is_dir():
            return out
        metas = sorted(self.uploads_dir.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for meta in metas:
            png = meta.with_suffix(".png")
            try:
                m = json.loads(meta.read_text())
                info = ImageInfo(meta.stem, str(m["name"]), int(m["width"]), int(m["height"]), int(m["channels"]), png)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("skipping stored upload %s: %s", meta.name, exc)
                continue
            if ID_RE.match(info.id) and png.is_file():
                with self._lock:
                    self._images.setdefault(info.id, info)
                out.append(info)
        return out

    @property
    def uploads(self) -> int:
        return sum(1 for info in self._images.values() if info.path.parent == self.uploads_dir)

    def save_upload(self, pixels: np.ndarray, name: str, limit: int | None = None) -> tuple[ImageInfo, bool]:
        """Store an uploaded image; return it and whether it is new (False: already there).

        Raises ``StoreFull`` if ``limit`` uploads are stored already."""
        iid = image_id(pixels)
        existing = self.get(iid)
        if existing is not None:
            return existing, False
        if limit is not None and self.uploads >= limit:
            raise StoreFull(f"the server holds {self.uploads} uploads, its limit; no more can be stored")
        h, w, c = pixels.shape
        png = self.uploads_dir / f"{iid}.png"
        atomic_write(png, png_bytes(pixels, compress_level=6))
        meta = {"name": name, "width": w, "height": h, "channels": c}
        atomic_write(png.with_suffix(".json"), json.dumps(meta).encode())
        info = ImageInfo(iid, name, w, h, c, png)
        pixels.setflags(write=False)
        self._pixels.put(iid, pixels)
        with self._lock:
            self._images.setdefault(iid, info)
        return self._images[iid], True

    def pixels(self, iid: str) -> np.ndarray:
        """The original (H, W, C) uint8 pixels (a read-only array)."""
        cached = self._pixels.get(iid)
        if cached is not None:
            return cached  # type: ignore[return-value]
        info = self._images[iid]
        pixels = load_image(info.path).pixels
        if image_id(pixels) != iid:
            raise ImageError(f"the file of image {iid} ({info.name!r}) changed on disk; restart the server")
        pixels.setflags(write=False)
        self._pixels.put(iid, pixels)
        return pixels
