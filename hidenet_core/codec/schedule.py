"""The rules every layer schedule keeps: an encoder's settings (a ``ValueError``) and a stream's
header (an ``HdnFormatError``) are held to this one set, in the same words.

A schedule is each layer's max errors, level 0 first, the last layer's the stream's: the lead
colour's and, in version 10, the other colours' (docs/format.md, "Quality layers").
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MAX_LAYERS", "schedule_problem"]

#: the most passes (layers) a layered stream may have
MAX_LAYERS = 8

Rows = Sequence[Sequence[int]]


def schedule_problem(lead: Rows, others: Rows, generative_levels: int) -> str | None:
    """The first rule the schedule breaks, in words, or None if it keeps them all.

    ``lead``: the lead colour's max errors, one row per layer; ``others``: the other colours',
    one row per layer, or () where they are the lead's. Every row has one max error per level
    (the caller checks the shapes). The rules: 1 to ``MAX_LAYERS`` layers; the base's colours
    are coded with the lead, at its max error; no layer raises a coded level's max error (the
    generative levels are not coded) of the lead or of the colours; every layer after the first
    lowers some level's max error."""
    n = len(lead)
    if not 1 <= n <= MAX_LAYERS:
        return f"{n} layers: at least 1, at most {MAX_LAYERS}"
    base = len(lead[0]) - 1
    coded = range(generative_levels, base + 1)
    for i in range(n):
        now = lead[i]
        if others and others[i][base] != now[base]:
            return (f"layer {i}: the base's colours are coded with the lead, at its max error {now[base]}, "
                    f"not {others[i][base]}")
        if not i:
            continue
        before = lead[i - 1]
        if any(now[k] > before[k] for k in coded):
            return (f"layer {i} ({list(now)}) raises a max error of layer {i - 1} ({list(before)}); each layer "
                    "must lower or keep every level's")
        if others and any(others[i][k] > others[i - 1][k] for k in coded):
            return (f"layer {i}: the colours' max errors ({list(others[i])}) raise those of layer {i - 1} "
                    f"({list(others[i - 1])}); each layer must lower or keep every level's")
        if all(now[k] == before[k] and (not others or others[i][k] == others[i - 1][k]) for k in coded):
            colours = f", colours {list(others[i])}" if others else ""
            return f"layer {i} ({list(now)}{colours}) lowers no level's max error"
    return None
