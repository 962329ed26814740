"""hidenet fetch names the files it writes from the server's messages: only names it expects."""

from __future__ import annotations

import pytest

from hidenet_core.cli import CliError
from server.clients.fetch import frame_name


def test_frames_are_named_by_chunk_and_by_contender():
    assert frame_name({"type": "level", "index": 2}) == "chunk-03.png"
    assert frame_name({"type": "race", "contender": "pjpeg:90", "frame": 2}) == "race-pjpeg-q90-2.png"
    assert frame_name({"type": "race", "contender": "webp-lossless", "frame": 1}) == "race-webp-lossless-1.png"


@pytest.mark.parametrize("message", [
    {"type": "level", "index": "1"},  # a traceback before
    {"type": "level", "index": True},
    {"type": "level"},
    {"type": "race", "contender": "x/../../escaped", "frame": 1},  # a path out of --out
    {"type": "race", "contender": "pjpeg:90", "frame": "../x"},
    {"type": "race", "contender": None, "frame": 1},
])
def test_a_hostile_servers_names_are_refused(message):
    with pytest.raises(CliError, match="the server sent"):
        frame_name(message)
