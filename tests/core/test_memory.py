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


@pytest.mark.parametrize("value, said", [("fats", True), ("FAST", True), ("", True), ("default", False),
                                         ("fast", False), ("bounded", False)])
def test_a_malloc_setting_it_cannot_take_is_said_not_ignored(value, said):
    env = dict(os.environ, HIDENET_MALLOC=value)
    code = "from hidenet_core.memory import fast_allocator; print(fast_allocator())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert ("is not one of bounded, fast, default" in done.stderr) == said, done.stderr
    assert done.stdout.strip() == str(value == "fast")  # only "fast" (or no setting) turns it on


def test_freed_pages_go_back_to_the_system_when_asked():
    """Blocks under the mmap threshold come from the heap, which glibc keeps when they are freed
    (here the block made last pins its top); ``release_free_memory`` gives the free pages back."""
    code = """
import os
from hidenet_core.memory import release_free_memory
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
blocks = [b"x" * 100_000 for _ in range(2000)]
last = b"y" * 100_000
del blocks
before = rss()
released = release_free_memory()
print(released, (before - rss()) >> 20)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True" and int(out[1]) >= 100, out


def test_a_pass_releases_freed_pages_after_each_large_strip_where_the_process_asks(monkeypatch):
    """``strip_done`` gives freed pages back only in a process that asked (a server); a level's
    pass calls it after each strip of at least ``RELEASE_POSITIONS`` positions."""
    from hidenet_core import encode, load_model, memory
    from hidenet_core.codec import loop
    from tests.conftest import smooth_image

    calls: list[int] = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(memory, "_release_after_strips", False)
    monkeypatch.setattr(loop, "RELEASE_POSITIONS", 1)
    image = smooth_image(40, 56, 3, seed=1)
    encode(image, load_model("interp"))
    assert calls == []
    memory.release_after_strips()
    encode(image, load_model("interp"))
    assert len(calls) > 3
    calls.clear()
    monkeypatch.setattr(loop, "RELEASE_POSITIONS", 10**9)  # no strip is that large
    encode(image, load_model("interp"))
    assert calls == []


def test_a_server_process_releases_freed_pages_after_large_strips(monkeypatch, tmp_path):
    from hidenet_core import memory
    from server import create_app
    from server.config import ServerConfig

    monkeypatch.setattr(memory, "_release_after_strips", False)
    create_app(ServerConfig(model="interp", data_dir=tmp_path / "data"))
    assert memory._release_after_strips is True


FAULTS = """
import resource, sys
from hidenet_core.memory import fast_allocator
print(fast_allocator(), file=sys.stderr)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def churn():
    blocks = [bytearray(8 << 20) for _ in range(12)]  # 96 MB in blocks of 8 MB, touched (zeroed)
    del blocks
churn(); churn()
before = faults()
churn()
print(faults() - before)
"""


def _faults(env_extra: dict[str, str]) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "HIDENET_MALLOC"} | env_extra
    done = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True, env=env, check=True)
    return int(done.stdout.strip()), done.stderr.strip()


def test_the_fast_allocator_keeps_freed_blocks_for_reuse():
    """Arrays freed and made again (as a decoder's per-strip working arrays are) come back from the
    heap with ``fast_allocator``; with glibc's default its heap is trimmed and the kernel maps and
    zeroes the pages again (12 x 8 MB: about 24,000 page faults)."""
    fast, set_fast = _faults({})
    default, set_default = _faults({"HIDENET_MALLOC": "default"})
    assert set_fast == "True" and set_default == "False"
    assert default > 10_000 and fast < default // 10, (fast, default)
