"""Where the templates and static files are, and content-hashed static URLs.

In the source tree ``templates/`` and ``static/`` are top-level siblings of
``server/``; ``server/templates`` and ``server/static`` are symbolic links to them, so
that a wheel built from the tree ships them inside the ``server`` package (see
pyproject.toml, package-data). At run time the package copy is used when present, the
source tree otherwise.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["find_dir", "StaticFiles"]

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).parent.parent  # the server package


def find_dir(name: str) -> Path:
    """``templates`` or ``static``: inside the installed package, else next to it in the source tree."""
    candidates = (_PACKAGE / name, _PACKAGE.resolve().parent / name)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"cannot find the {name}/ directory (looked in {candidates[0]} and {candidates[1]}); reinstall hidenet"
    )


@dataclass
class StaticFiles:
    """The static directory and ``url(path)``: ``/static/<path>?v=<content hash>``."""

    root: Path
    prefix: str = "/static"
    _hashes: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # path -> (mtime_ns, size, hash)

    def url(self, path: str) -> str:
        """The URL of a static file with its content hash (recomputed when the file changes)."""
        path = path.lstrip("/")
        digest = self._hash(path)
        base = f"{self.prefix}/{path}"
        return f"{base}?v={digest}" if digest else base

    def resolve(self, path: str) -> Path | None:
        """The file for a URL path below the static directory; None if missing or outside it."""
        root = self.root.resolve()
        try:
            file = (root / path.lstrip("/")).resolve()
            # is_file() raises, not answers False, for a name too long (ENAMETOOLONG) or a NUL
            return file if file.is_relative_to(root) and file.is_file() else None
        except (OSError, ValueError):
            return None

    def _hash(self, path: str) -> str | None:
        file = self.resolve(path)
        if file is None:
            log.warning("static(%r): no such file in %s", path, self.root)
            return None
        st = file.stat()
        cached = self._hashes.get(path)
        if cached and cached[:2] == (st.st_mtime_ns, st.st_size):
            return cached[2]
        digest = hashlib.sha256(file.read_bytes()).hexdigest()[:12]
        self._hashes[path] = (st.st_mtime_ns, st.st_size, digest)
        return digest
