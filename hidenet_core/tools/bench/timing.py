"""Wall-clock measurement on a shared machine: best of a few runs, ratios to a reference.

Absolute times drift when other processes share the CPU, so every time the benchmark
reports is also given as a ratio to a reference measured in the same run (for
example hideNet's decode time over JPEG XL's on the same image).
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["best_of", "ratio", "machine_info"]

T = TypeVar("T")


def best_of(fn: Callable[[], T], repeats: int = 3, budget_s: float = 2.0) -> tuple[T, float]:
    """Run ``fn`` up to ``repeats`` times (at least once, stopping early once ``budget_s``
    seconds have been spent) and return its last result and the fastest time in seconds.

    The minimum is the figure least disturbed by other processes on a shared machine.
    """
    best = math.inf
    spent = 0.0
    result: T
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        if spent >= budget_s:
            break
    return result, best


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference``, or None when either is missing or the reference is zero."""
    if value is None or reference is None or reference <= 0 or not math.isfinite(value):
        return None
    return value / reference


def machine_info() -> dict:
    """What the figures were measured on (they only compare within one run)."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    with contextlib.suppress(OSError):  # not on every platform
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info
