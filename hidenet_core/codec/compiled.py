"""numba's compilation as the codec uses it: machine code without the GIL, cached on disk.

The codec's loops over values that numpy cannot vectorise well (rANS, ``tablecoder.py``; the
refinement's categorical rows, ``intervals.py``) are compiled by numba with ``nogil=True``, so
a server's threads run them at once. The compiled code is cached beside the module (else in
the user's cache directory); where neither is writable (a read-only install without a home)
each process compiles it instead, about a second, rather than failing to import.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TypeVar

import numba

__all__ = ["jit", "in_two"]

T = TypeVar("T")


def jit(fn=None, *, ieee_division: bool = False):
    """``fn`` compiled by numba without the GIL, cached on disk where a directory is writable.

    ``ieee_division``: divide as IEEE 754 does, without numba's test of every divisor for zero
    (which raises as Python would, and keeps a loop from being vectorised: the interpolation's
    rows ran 7 times faster without it), for loops whose divisors are never zero. Used as
    ``@jit`` or ``@jit(ieee_division=True)``."""
    options = {"error_model": "numpy"} if ieee_division else {}

    def compile_(f):
        try:
            return numba.njit(cache=True, nogil=True, **options)(f)
        except RuntimeError:  # numba: no locator available for the cache
            return numba.njit(nogil=True, **options)(f)

    return compile_ if fn is None else compile_(fn)


@lru_cache(maxsize=1)
def _helper() -> ThreadPoolExecutor:
    """The one thread a process lends the compiled loops' second halves (``in_two``)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="hidenet-half")


def in_two(fn: Callable[[int, int], T], n: int, least: int) -> list[tuple[int, T]]:
    """``fn(0, n)`` as ``fn(0, n // 2)`` on this thread and ``fn(n // 2, n)`` on a helper thread at
    once, where ``n >= least`` and the machine has a second core (else all here): for a compiled
    loop without the GIL whose items are independent (each writes its own part of the outputs),
    so the result is the same either way. Returns each part's (start, result), in order."""
    if n < least or (os.cpu_count() or 1) < 2:
        return [(0, fn(0, n))]
    half = n // 2
    other = _helper().submit(fn, half, n)
    try:
        first = fn(0, half)
    finally:
        second = other.result()
    return [(0, first), (half, second)]
