"""The file-system primitives the stores share between threads and processes."""

from __future__ import annotations

import os
import time

import pytest

from server.storage.files import PartialFile, publish_once, sweep_partials


def age(path, seconds: float = 60) -> None:
    os.utime(path, (time.time() - seconds, time.time() - seconds))


def test_a_partial_file_is_invisible_until_committed_and_kept_by_the_sweeper_while_open(tmp_path):
    final = tmp_path / "stream.hdn"
    with PartialFile(final) as f:
        f.write(b"chunk 1;")
        age(f.tmp)
        assert sweep_partials(tmp_path) == 0 and f.tmp.exists()  # its writer holds the lock
        f.write(b"chunk 2")
        assert not final.exists()
        f.commit()
    assert final.read_bytes() == b"chunk 1;chunk 2" and os.listdir(tmp_path) == ["stream.hdn"]


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), PartialFile(tmp_path / "x") as f:
        f.write(b"half")
        raise RuntimeError("encoder failed")
    assert os.listdir(tmp_path) == []


def test_an_abandoned_partial_file_is_swept(tmp_path):
    f = PartialFile(tmp_path / "x")
    f.write(b"half")
    os.close(f.fd)  # as if its process died: the lock is gone, the file stays
    age(f.tmp)
    assert sweep_partials(tmp_path) == 1 and os.listdir(tmp_path) == []


def test_publish_once_creates_only_once(tmp_path):
    assert publish_once(tmp_path / "meta.json", b"first") is True
    assert publish_once(tmp_path / "meta.json", b"second") is False
    assert (tmp_path / "meta.json").read_bytes() == b"first" and os.listdir(tmp_path) == ["meta.json"]
