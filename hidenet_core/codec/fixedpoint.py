"""The Laplace's exp in fixed point, built by integer arithmetic alone: the same table on every machine.

The refinement coding (``intervals.py``) computes its bin masses from it, and version 7's value
tables (``tablecoder.py``) their frequencies: wherever both ends of the closed loop must compute
the same probabilities bit for bit, whatever the machine's libm.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["EXP_TABLE"]

#: fixed-point unit of the table and of the cumulative masses (2 F(t) in units of 2^-30)
_ONE = 1 << 30
#: the table's argument unit: exp(-i / 1024)
_ARG = 1024
#: beyond this argument the table is 0 (exp(-22) * 2^30 < 1/2)
_IMAX = 22 * _ARG


def _exp_table() -> np.ndarray:
    """``round(2^30 exp(-i/1024))`` for i = 0 .. _IMAX, by integer products of per-bit
    constants only: no floating-point exp, so every machine builds the same table."""
    constants = [round(_ONE * math.exp(-(1 << b) / _ARG)) for b in range(16)]
    # the constants are fixed integers; they are computed here instead of listed, and a
    # test pins the table's checksum, so a machine whose libm rounds one differently fails loudly
    i = np.arange(_IMAX + 1, dtype=np.int64)
    acc = np.full(i.shape, _ONE, dtype=np.int64)
    for b, k in enumerate(constants):
        acc = np.where((i >> b) & 1 == 1, (acc * k + (_ONE >> 1)) >> 30, acc)
    acc[-1] = 0
    return acc


EXP_TABLE = _exp_table()
