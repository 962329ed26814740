"""The codec's compiled loops, loaded at once: what a server calls at start-up so that its first
viewer does not wait for numba (about 0.3 s from numba's cache, a few seconds where it compiles)."""

from __future__ import annotations

from ..predictors import interp
from . import entropy, intervals, tablecoder
from .stages import calibration, linear

__all__ = ["warm_up"]


def warm_up() -> None:
    """Compile (or load from numba's cache) every compiled loop of the codec, and of the
    interpolation every predictor starts from."""
    tablecoder.warm_up()
    entropy.warm_up()
    intervals.warm_up()
    linear.warm_up()
    calibration.warm_up()
    interp.warm_up()
