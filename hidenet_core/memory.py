"""Peak memory against CPU time: optionally, large freed blocks go back to the system at once.

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
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["MMAP_THRESHOLD", "bound_allocator"]

#: with HIDENET_MALLOC=bounded, blocks of at least this many bytes are mapped on their own
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def bound_allocator() -> bool:
    """Fix glibc's mmap threshold at ``MMAP_THRESHOLD``; True when it was set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


if os.environ.get("HIDENET_MALLOC") == "bounded":
    bound_allocator()
