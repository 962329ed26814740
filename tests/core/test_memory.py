"""glibc allocator settings (hidenet_core/memory.py), each in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

CALL = "from hidenet_core.memory import limit_arenas; print(limit_arenas())"


def _run(env_extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env_extra
    return subprocess.run([sys.executable, "-c", CALL], capture_output=True, text=True, env=env,
                          check=True).stdout.strip()


def test_a_server_process_caps_its_malloc_arenas():
    assert _run({}) == "True"


def test_malloc_arena_max_in_the_environment_wins():
    assert _run({"MALLOC_ARENA_MAX": "4"}) == "False"
