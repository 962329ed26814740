"""numba's compilation as the codec uses it: machine code without the GIL, cached on disk.

The codec's loops over values that numpy cannot vectorise well (rANS, ``tablecoder.py``; the
refinement's categorical rows, ``intervals.py``) are compiled by numba with ``nogil=True``, so
a server's threads run them at once. The compiled code is cached beside the module (else in
the user's cache directory); where neither is writable (a read-only install without a home)
each process compiles it instead, about a second, rather than failing to import.
"""

from __future__ import annotations

import numba

__all__ = ["jit"]


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
