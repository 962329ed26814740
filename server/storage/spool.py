"""An upload's bytes on their way to disk, written off the event loop.

An upload is spooled to an unnamed file in the data directory (gone when closed, also if the
process dies) instead of being kept in memory. The data directory may be a network file
system shared by several server processes (README, "Scaling out"), where one write can take
seconds: a write on the event loop would stall every stream of the process meanwhile. So the
bytes are gathered in batches of ``BATCH`` and each batch is written on a thread, while the
loop goes on; the file is unbuffered, so that nothing is left to write when it is closed.
"""

from __future__ import annotations

import asyncio
import tempfile
import typing
from pathlib import Path

__all__ = ["Spool", "BATCH"]

#: bytes gathered in memory before they are written (on a thread), per upload
BATCH = 1 << 20


class Spool:
    """An upload being received: ``write`` its chunks, ``finish``, then hand ``file`` to its reader.

    Raises ``OSError`` where the directory has no room (full disk, quota, not writable), from the
    constructor or from the write that meets it."""

    def __init__(self, directory: Path) -> None:
        self.file: typing.BinaryIO = tempfile.TemporaryFile(dir=directory, buffering=0)  # noqa: SIM115 (close)
        self.size = 0
        self._batch = bytearray()
        self._writing: asyncio.Future[None] | None = None

    async def write(self, chunk: bytes) -> None:
        self._batch += chunk
        self.size += len(chunk)
        if len(self._batch) >= BATCH:
            await self._write_batch()

    async def finish(self) -> None:
        """Write what is still gathered: every byte received is then in the file."""
        await self._write_batch()

    def close(self) -> None:
        """Close the file without waiting on the loop: after the write under way, if any (a request
        cancelled mid-write), on the thread that ends it."""
        writing = self._writing
        if writing is not None and not writing.done():
            writing.add_done_callback(lambda _: self.file.close())
        else:
            self.file.close()

    async def _write_batch(self) -> None:
        if not self._batch:
            return
        data, self._batch = bytes(self._batch), bytearray()
        self._writing = asyncio.get_running_loop().run_in_executor(None, _write_all, self.file, data)
        # shielded: a cancelled request must not mark the write ended while its thread still runs
        await asyncio.shield(self._writing)


def _write_all(file: typing.BinaryIO, data: bytes) -> None:
    """Blocking (a thread): all of ``data``, through as many writes as the file takes."""
    view = memoryview(data)
    while view:
        written = file.write(view)
        view = view[written if written is not None else len(view) :]
