"""The codec's compiled loops, loaded at once: what a server calls at start-up so that its first
viewer does not wait for numba (about 0.3 s from numba's cache, a few seconds where it compiles)."""

from __future__ import annotations

import numpy as np

from . import entropy, intervals, tablecoder
from .stages import calibration, linear

__all__ = ["warm_up"]


def warm_up() -> None:
    """Compile (or load from numba's cache) every compiled loop of the codec."""
    tablecoder.warm_up()
    for dtype in (np.float32, np.float64):  # the codec's predictions, a caller's float64
        entropy._params(np.array([1.5, 2.0], dtype), np.array([1.0, 3.0], dtype), 1)
    intervals.warm_up()
    linear.warm_up()
    calibration.warm_up()
