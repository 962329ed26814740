"""The upload spool: every byte received reaches the file, in batches written off the event loop."""

from __future__ import annotations

import asyncio

import pytest

from server.storage import spool as spool_module
from server.storage.spool import BATCH, Spool
from tests.server.conftest import SlowDisk

pytestmark = pytest.mark.asyncio


async def test_every_byte_reaches_the_file_in_order(tmp_path):
    spool = Spool(tmp_path)
    chunks = [bytes([i % 251]) * n for i, n in enumerate([1, 65536, BATCH, 3, BATCH + 17, 0, 5])]
    for chunk in chunks:
        await spool.write(chunk)
    await spool.finish()
    spool.file.seek(0)
    assert spool.file.read() == b"".join(chunks) and spool.size == sum(map(len, chunks))
    spool.close()
    assert spool.file.closed
    assert list(tmp_path.iterdir()) == []  # unnamed: nothing in the directory


async def test_a_spool_closed_during_a_write_is_closed_after_it_without_waiting(tmp_path, monkeypatch):
    """A request cancelled while its batch is being written (the client went away): ``close``
    returns at once, and the file is closed when the write ends, not while it runs."""
    disk = SlowDisk(monkeypatch)
    spool = Spool(tmp_path)
    writing = asyncio.ensure_future(spool.write(b"x" * BATCH))
    await disk.wait_entered()
    writing.cancel()
    spool.close()  # returns at once: the write still waits
    assert not spool.file.closed
    disk.release.set()
    for _ in range(500):
        if spool.file.closed:
            break
        await asyncio.sleep(0.01)
    assert spool.file.closed and not disk.closed_under_write


async def test_a_full_disk_is_an_os_error_from_the_write_that_meets_it(tmp_path, monkeypatch):
    import errno
    import os

    class Full:
        def __init__(self, *args, **kwargs) -> None:
            self.closed = False

        def write(self, data) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(spool_module.tempfile, "TemporaryFile", Full)
    spool = Spool(tmp_path)
    await spool.write(b"x" * 10)  # gathered, not yet written
    with pytest.raises(OSError, match="No space left"):
        await spool.finish()
    spool.close()
    assert spool.file.closed
