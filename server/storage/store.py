"""The images the server offers, by id; an id is the content hash of the pixels.

Sample and ``--images`` files are read where they are. Uploads are normalised to PNG
and stored below the data directory as ``<id>.png`` plus ``<id>.json`` (name and
size); the PNG is written first (temporary file, then rename), and the metadata is
*published* last, with a hard link that fails if it exists: an upload is either fully
stored or not at all, and of several uploads of the same pixels exactly one creates it.

The uploads directory is shared by every server process on the data directory (and by
several machines, on a shared file system): a process looks an id it does not know up
in the directory (read-through), lists the directory again whenever it changed, and
checks the upload cap and publishes under a lock file (``files.DirLock``), so the cap
and the de-duplication hold across processes. No path from a request ever reaches the
filesystem: requests name images only by id, and an id is checked against ``ID_RE``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from hidenet_core import ImageError, image_from_bytes, load_image, png_bytes
from hidenet_core.imageio import image_files

from .files import DirLock, atomic_write, publish_once
from .lru import LRU

__all__ = ["ImageInfo", "ImageStore", "StoreFull", "ImageGone", "image_id", "ID_RE", "display_name", "atomic_write"]

log = logging.getLogger(__name__)

ID_RE = re.compile(r"^[0-9a-f]{32}$")
_MTIME_TICK_NS = 1_000_000_000


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


class StoreFull(Exception):
    """No room for another upload."""


class ImageGone(ImageError):
    """An image the server knew whose stored file has vanished (deleted by hand, or by another
    process's operator); the message names the id, never a server path."""


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
    """Images by id: the fixed ones (samples, ``--images``) and the uploads directory, shared
    with other processes. The methods that write, or read pixels, block: call them in the
    worker. ``get`` and ``list`` may read the uploads directory's small metadata files."""

    def __init__(self, uploads_dir: Path, memory_bytes: int = 256 * 1024 * 1024) -> None:
        self.uploads_dir = uploads_dir
        self._fixed: dict[str, ImageInfo] = {}
        self._uploads: dict[str, ImageInfo] = {}  # what this process has seen of uploads_dir
        self._order: dict[str, tuple[int, str]] = {}  # upload id -> (when it was stored, id): listing order
        self._listed_mtime: int | None = None  # uploads_dir's mtime when it was last listed
        self._pixels = LRU(memory_bytes, weigh=lambda pixels: pixels.nbytes)  # type: ignore[attr-defined]
        self._lock = threading.Lock()
        self._dir_lock = DirLock(uploads_dir)

    def __len__(self) -> int:
        return len(self.list())

    def get(self, image_id: str) -> ImageInfo | None:
        """The image with this id; an upload stored by another process is found too."""
        if not ID_RE.match(image_id):
            return None
        info = self._fixed.get(image_id) or self._uploads.get(image_id)
        return info if info is not None else self._read_upload(image_id)

    def get_stored(self, image_id: str) -> ImageInfo | None:
        """Like ``get``, but an upload whose file vanished (removed by hand, or by another process's
        operator) raises ``ImageGone`` and is forgotten, so that no route serves what is derived from
        it (a cached stream, a thumbnail) after its original is gone. One ``stat`` per call."""
        info = self.get(image_id)
        if info is None or info.id in self._fixed:
            return info
        if not info.path.exists():
            self.forget(info.id)
            raise ImageGone(f"image {info.id} ({info.name!r}) is no longer stored")
        return info

    def list(self) -> list[ImageInfo]:
        """The fixed images, then the uploads (every process's) in upload order."""
        self._refresh()
        with self._lock:
            uploads = sorted(self._uploads.values(), key=lambda info: self._order[info.id])
        return [*self._fixed.values(), *(u for u in uploads if u.id not in self._fixed)]

    def add_file(self, path: Path, name: str | None = None) -> ImageInfo:
        """Offer an image file read in place (samples, ``--images``)."""
        pixels = load_image(path).pixels
        h, w, c = pixels.shape
        info = ImageInfo(image_id(pixels), name or path.stem, w, h, c, path)
        pixels.setflags(write=False)
        self._pixels.put(info.id, pixels)
        with self._lock:
            return self._fixed.setdefault(info.id, info)

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
        """The uploads stored so far, by this process or any other (metadata only)."""
        self._listed_mtime = None
        return [info for info in self.list() if info.id in self._uploads]

    @property
    def uploads(self) -> int:
        """Uploads stored in the directory (by every process)."""
        return len(self._upload_ids())

    def save_upload(self, pixels: np.ndarray, name: str, limit: int | None = None) -> tuple[ImageInfo, bool]:
        """Store an uploaded image; return it and whether this call stored it (False: it was there).

        Raises ``StoreFull`` if ``limit`` uploads are stored already. Both hold across
        threads and processes: the cap is checked and the upload published under the
        directory's lock."""
        iid = image_id(pixels)
        existing = self._fixed.get(iid) or self._read_upload(iid)
        if existing is not None and existing.path.is_file():
            return existing, False
        h, w, c = pixels.shape
        png = self.uploads_dir / f"{iid}.png"
        meta = self.uploads_dir / f"{iid}.json"
        # outside the lock: the slow part. zlib level 1, not 6: a 40 MP photograph's upload is
        # answered (and its encode started) 9 s sooner, for a file 15% larger (47 MB, not 41)
        data = png_bytes(pixels, compress_level=1)
        with self._dir_lock.held():
            existing = self._read_upload(iid)
            if existing is not None and existing.path.is_file():
                return existing, False
            stored = len(self._upload_ids())
            if existing is None and limit is not None and stored >= limit:  # a file lost by hand is no new upload
                raise StoreFull(f"the server holds {stored} uploads, its limit; no more can be stored")
            atomic_write(png, data)  # the same bytes for the same id: rewriting it is harmless
            if existing is None:
                # "stored_ns" orders the gallery; taken under the lock, it increases from one upload to the next
                record = {"name": name, "width": w, "height": h, "channels": c, "stored_ns": time.time_ns()}
                created = publish_once(meta, json.dumps(record).encode())
            else:  # its pixels were removed by hand (a 410 since): stored again under its entry
                created = True
        info = self._read_upload(iid)
        if info is None:  # pragma: no cover - removed by hand in between
            raise ImageGone(f"image {iid} was removed while it was being stored")
        pixels.setflags(write=False)
        self._pixels.put(iid, pixels)
        return info, created

    def pixels(self, iid: str) -> np.ndarray:
        """The original (H, W, C) uint8 pixels (a read-only array). ``ImageGone`` if its file vanished."""
        cached = self._pixels.get(iid)
        if cached is not None:
            return cached  # type: ignore[return-value]
        info = self.get(iid)
        if info is None:
            raise ImageGone(f"image {iid} is no longer stored")
        try:
            data = info.path.read_bytes()
        except FileNotFoundError:
            self.forget(iid)
            raise ImageGone(f"image {iid} ({info.name!r}) is no longer stored") from None
        except OSError as exc:
            raise ImageError(f"cannot read the stored file of image {iid}: {exc.strerror}") from None
        pixels = image_from_bytes(data).pixels
        if image_id(pixels) != iid:
            raise ImageError(f"the file of image {iid} ({info.name!r}) changed on disk; restart the server")
        pixels.setflags(write=False)
        self._pixels.put(iid, pixels)
        return pixels

    def forget(self, iid: str) -> None:
        """Drop what this process remembers of an upload (its file vanished)."""
        self._pixels.discard(iid)
        with self._lock:
            self._uploads.pop(iid, None)
            self._order.pop(iid, None)

    # --- the shared uploads directory ----------------------------------------------------------

    def _upload_ids(self) -> list[str]:
        try:
            names = os.listdir(self.uploads_dir)
        except FileNotFoundError:
            return []
        return [n[:-5] for n in names if n.endswith(".json") and ID_RE.match(n[:-5])]

    def _read_upload(self, iid: str) -> ImageInfo | None:
        """An upload's metadata from the directory (None if it is not stored, or broken)."""
        meta = self.uploads_dir / f"{iid}.json"
        try:
            st = meta.stat()
            m = json.loads(meta.read_bytes())
            info = ImageInfo(iid, str(m["name"]), int(m["width"]), int(m["height"]), int(m["channels"]),
                             meta.with_suffix(".png"))
            stored = int(m.get("stored_ns", st.st_mtime_ns))  # uploads of earlier versions: the file's time
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("skipping stored upload %s: %s", meta.name, exc)
            return None
        with self._lock:
            self._order[iid] = (stored, iid)
            return self._uploads.setdefault(iid, info)

    def _refresh(self) -> None:
        """List the uploads directory again if it changed (another process stored or removed one)."""
        try:
            mtime = self.uploads_dir.stat().st_mtime_ns
        except FileNotFoundError:
            return
        # a directory's mtime ticks coarsely (a few ms): trust it only once it is older than the listing
        if mtime == self._listed_mtime and time.time_ns() - mtime > _MTIME_TICK_NS:
            return
        self._listed_mtime = mtime
        ids = set(self._upload_ids())
        with self._lock:
            for gone in set(self._uploads) - ids:
                self._uploads.pop(gone)
                self._order.pop(gone, None)
        for iid in ids - set(self._uploads):
            self._read_upload(iid)
