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


def jit(fn):
    """``fn`` compiled by numba without the GIL, cached on disk where a directory is writable."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # numba: no locator available for the cache
        return numba.njit(nogil=True)(fn)
