"""File-system primitives the stores share between threads and processes.

Several server processes (or machines, on a shared file system) may use one data
directory at once. They coordinate only through the file system, with three
primitives it must provide (any local Linux file system does; NFSv4 does):

- ``rename`` replaces a file atomically (``atomic_write``): readers see the old file
  or the whole new one;
- ``link`` (like ``O_EXCL``) fails if the name exists (``publish_once``): of several
  writers of the same name exactly one succeeds;
- advisory locks (``flock``; on NFS, Linux maps them to byte-range locks, which the
  server coordinates), released by the kernel when their process dies: ``DirLock``
  serialises a check-then-write across processes, and a temporary file is locked while
  it is written, so that ``sweep_partials`` can tell an abandoned one (its writer was
  killed) from one being written right now.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PartialFile", "atomic_write", "publish_once", "DirLock", "sweep_partials", "PART_SUFFIX"]

log = logging.getLogger(__name__)

#: temporary files are ``.<final name>.<random>.part`` next to their final name
PART_SUFFIX = ".part"
#: a temporary file younger than this is never swept, locked or not (it may be between
#: its creation and its lock)
_SWEEP_MIN_AGE_S = 2.0


class PartialFile:
    """A temporary file next to ``path``, locked while it is written, published whole by
    ``commit`` (rename over ``path``) or ``link_once`` (only if ``path`` does not exist);
    removed if the ``with`` block fails. Written piece by piece, it can hold a stream as
    its chunks are encoded; ``sweep_partials`` leaves it alone while its writer lives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PART_SUFFIX, dir=path.parent)
        self.fd, self.tmp = fd, Path(tmp)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held until closed
        except BaseException:
            self.close()
            raise

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def commit(self) -> None:
        """Make the file ``path`` (replacing any old one), durably."""
        os.fsync(self.fd)
        os.replace(self.tmp, self.path)

    def link_once(self) -> bool:
        """Make the file ``path`` unless it exists; True if this call made it."""
        os.fsync(self.fd)
        try:
            os.link(self.tmp, self.path)
        except FileExistsError:
            return False
        finally:
            self.tmp.unlink(missing_ok=True)
        return True

    def close(self) -> None:
        """Drop the temporary file if it was not published, and release it."""
        self.tmp.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def __enter__(self) -> PartialFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def atomic_write(path: Path, *parts: bytes) -> None:
    """Write ``parts`` one after the other to ``path`` so that readers see the old file or the
    whole new one (parts, not their concatenation: a stream of tens of megabytes is not copied)."""
    with PartialFile(path) as f:
        for data in parts:
            f.write(data)
        f.commit()


def publish_once(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists; True if this call created it.

    The file appears whole (hard link of a complete temporary file), and of concurrent
    callers, in this process or another, exactly one gets True.
    """
    with PartialFile(path) as f:
        f.write(data)
        return f.link_once()


class DirLock:
    """An exclusive lock on a directory, across threads and processes: ``flock`` on ``<dir>/.lock``,
    opened anew each time (so two openers conflict even within one process), released by the
    kernel if its process dies."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"
        self._mutex = threading.Lock()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._mutex:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the lock


def sweep_partials(directory: Path) -> int:
    """Remove the temporary files in ``directory`` that nobody is writing (their writer
    died: kill -9, power loss); return how many. Files being written are locked, and kept."""
    removed = 0
    try:
        candidates = [p for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(PART_SUFFIX)]
    except FileNotFoundError:
        return 0
    now = time.time()
    for path in candidates:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # finished meanwhile
        try:
            if now - os.fstat(fd).st_mtime < _SWEEP_MIN_AGE_S:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            path.unlink(missing_ok=True)
            removed += 1
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d abandoned temporary file(s) in %s", removed, directory)
    return removed
