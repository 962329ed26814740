"""Peak memory against CPU time: glibc's allocator, tuned where it pays.

A server process caps its malloc arenas (``limit_arenas``) and has the codec give the pages
of freed blocks back to the system after each strip of a large level (``release_after_strips``).
Optionally, large freed blocks go back to the system at once (below).

The codec allocates and frees arrays of tens of megabytes per part of a large level
(the predictor's tiles, the per-image stages' planes). glibc's allocator raises its
mmap threshold each time such a block is freed, up to 32 MB, after which blocks of that
size come from heaps it rarely gives back: the resident memory of ``hidenet decode``
of a 2.7 MP photograph peaked at 1.03 GB. With ``HIDENET_MALLOC=bounded`` in the
environment the threshold is fixed at 1 MB, so every large block has a mapping of its
own, returned when freed: 0.72 GB, but the kernel then zeroes fresh pages for every
large array, and the decode's system time rose from 2.9 s to 15 s (its user time, 16 s,
unchanged). So it is off by default: for a process whose memory is capped, not for
one that must be fast. Applied when ``hidenet_core`` is imported (this module first).

The other way round, ``fast_allocator`` keeps freed blocks for reuse: the mmap threshold fixed
at 32 MB (where glibc's own ends up, but from the start) and the heap trimmed only past 256 MB
free. A fresh process decoding a 12 MP photograph otherwise has the kernel map and zero pages
for the same arrays again and again: 3.7 s of system time, 1.56 million page faults; with it,
0.6 s and 0.13 million, the decode call 14.9 -> 11.9 s (2 threads), the peak the same
(1.04 GB). ``hidenet`` commands other than ``serve`` turn it on (``cli.main``), as do the
bench's child processes; ``HIDENET_MALLOC`` chooses instead where it is set (``bounded``,
``fast`` or ``default``: glibc's own). A server keeps glibc's default with its own
measures (``limit_arenas``, ``release_after_strips``), its peak memory being a target.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["MMAP_THRESHOLD", "MALLOC_CHOICES", "SERVER_ARENAS", "bound_allocator", "fast_allocator", "limit_arenas",
           "release_free_memory", "release_after_strips", "strip_done"]

#: with HIDENET_MALLOC=bounded, blocks of at least this many bytes are mapped on their own
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter numbers
_M_TRIM_THRESHOLD = -1
_M_ARENA_MAX = -8
#: ``fast_allocator``: blocks below this come from glibc's heaps, which are trimmed past the second
FAST_MMAP_THRESHOLD = 32 << 20
FAST_TRIM_THRESHOLD = 256 << 20
#: malloc arenas a server process keeps (``limit_arenas``)
SERVER_ARENAS = 2


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _libc()


def _mallopt(param: int, value: int) -> bool:
    """glibc's ``mallopt(param, value)``; True when it was set."""
    try:
        return _LIBC is not None and bool(_LIBC.mallopt(param, value))
    except AttributeError:  # not glibc (musl has no mallopt)
        return False


def release_free_memory() -> bool:
    """Give the whole free pages inside glibc's heaps back to the system now (``malloc_trim(0)``);
    True when some were."""
    try:
        return _LIBC is not None and bool(_LIBC.malloc_trim(0))
    except AttributeError:  # not glibc
        return False


_release_after_strips = False


def release_after_strips(enabled: bool = True) -> None:
    """Have ``strip_done`` give freed pages back to the system (``release_free_memory``), in this
    process from now on. A strip of a large level allocates and frees tens of megabytes of
    working arrays (the predictor's tiles, the per-image stages' planes), and glibc keeps what
    was freed: in a server, whose encoder, frames and regions run on different threads, the
    pages kept added up to 0.8 GB over the live heap during a 40 MP first view, whose peak at
    1:1 went from 2.06 to 1.79 GiB with this (the whole stream 249 and 258 s). The kernel then
    zeroes those pages again when they are reused: ``hidenet decode`` of a 12 MP photograph
    spends 4 s more in the system for 0.1 GB less, so the CLI leaves it off; a server turns
    it on (``server.app``)."""
    global _release_after_strips
    _release_after_strips = enabled


def strip_done() -> None:
    """A strip of a large level is coded (``loop.LevelPass``): its working arrays are freed."""
    if _release_after_strips:
        release_free_memory()


def bound_allocator() -> bool:
    """Fix glibc's mmap threshold at ``MMAP_THRESHOLD``; True when it was set."""
    return _mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def fast_allocator() -> bool:
    """Keep freed blocks for reuse (module docstring): the mmap threshold fixed at
    ``FAST_MMAP_THRESHOLD``, the heap trimmed past ``FAST_TRIM_THRESHOLD`` free. Nothing where
    ``HIDENET_MALLOC`` chooses otherwise; True when it was set."""
    if os.environ.get("HIDENET_MALLOC", "fast") != "fast":
        return False
    return _mallopt(_M_MMAP_THRESHOLD, FAST_MMAP_THRESHOLD) and _mallopt(_M_TRIM_THRESHOLD, FAST_TRIM_THRESHOLD)


def limit_arenas(arenas: int = SERVER_ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas``; True when it was set. A server encodes on one
    thread while another decodes and renders frames, and glibc gives each busy thread an arena
    of its own (up to 8 per core), whose freed blocks the others cannot reuse: on a first view
    of a 12-megapixel photograph with its 1:1 region the server's peak was 2.07 GiB, 1.76 GiB
    with 2 arenas, in the same time (first picture 0.43 / 0.42 s, whole stream 75.6 / 74.4 s;
    ``python -m server.clients.firstview``, README "First view of a large photograph").
    Called before the server starts its threads; ``MALLOC_ARENA_MAX`` in the environment
    still wins where it is set."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return _mallopt(_M_ARENA_MAX, arenas)


#: the values ``HIDENET_MALLOC`` may take
MALLOC_CHOICES = ("bounded", "fast", "default")


def _apply_environment() -> None:
    """Apply ``HIDENET_MALLOC`` where it is set; a value it cannot take is said on stderr (and
    glibc's default kept), not ignored in silence: a misspelt setting would else pass for one."""
    choice = os.environ.get("HIDENET_MALLOC")
    if choice == "bounded":
        bound_allocator()
    elif choice == "fast":
        fast_allocator()
    elif choice is not None and choice != "default":
        print(f"hidenet: HIDENET_MALLOC={choice!r} is not one of {', '.join(MALLOC_CHOICES)}: ignored, glibc's "
              "default allocator is used (and the hidenet commands do not turn on the fast one)", file=sys.stderr)


_apply_environment()
