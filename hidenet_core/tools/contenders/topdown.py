"""Repaints of a format that a browser draws top-down as it arrives (baseline JPEG, WebP).

A browser decodes such a file as its bytes come in and repaints the rows decoded so far;
below them the page shows through. It repaints whenever data arrives (Chromium: at most
about once a second, measured), so there is no natural cut: we take one every
``STEPS``-th of the file, keeping only those where more rows are painted than before,
and the complete file.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Cut

__all__ = ["STEPS", "topdown_cuts"]

#: repaints per file: one every 1/STEPS of its bytes
STEPS = 16


def topdown_cuts(size: int, height: int, painted_rows: Callable[[int], int], steps: int = STEPS) -> list[Cut]:
    """The cuts of a ``size``-byte file of ``height`` rows; ``painted_rows(end)`` counts the rows a
    browser paints once ``end`` bytes have arrived."""
    cuts: list[Cut] = []
    last = 0
    for k in range(1, steps):
        end = size * k // steps
        rows = painted_rows(end)
        if rows > last:
            cuts.append(Cut(end, f"rows 1-{rows} of {height}"))
            last = rows
    cuts.append(Cut(size, "the whole file"))
    return cuts
