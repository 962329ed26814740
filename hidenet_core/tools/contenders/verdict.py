"""Who won the race: figures and one plain sentence, from the events the chart draws.

Each racer (hideNet or a contender) is a list of events: at time ``t_ms`` its picture
changed to one of ``psnr`` dB (``None``: exact, identical to the original) after
``bytes`` had arrived. Between events the picture holds, as on the chart's step lines.

* first paint: the first event; time to 30, 35, 40 dB: the first event at or above it;
* final: the last event, its PSNR, and whether it is exact; bytes: the racer's total;
* best share: over the race, from the first paint of anyone to the last event of all,
  the fraction of the time during which the racer showed the best picture (the highest
  PSNR at that moment; a tie counts for each). ``None`` when the race took no time
  (everything arrived at once, as on the unlimited link).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Event", "Racer", "THRESHOLDS_DB", "verdict", "sentence"]

#: the quality levels whose arrival times the verdict reports, in dB
THRESHOLDS_DB = (30, 35, 40)


@dataclass(frozen=True)
class Event:
    t_ms: float  # when the picture changed (the chart's x on its time axis)
    bytes: int  # bytes of this racer received by then
    psnr: float | None  # dB of the picture from then on; None: exact


@dataclass(frozen=True)
class Racer:
    key: str  # "hidenet", "pjpeg:90", ...
    label: str  # "hideNet", "Progressive JPEG q90"
    total_bytes: int  # the racer's whole stream or file
    events: tuple[Event, ...]  # in time order


def _value(psnr: float | None) -> float:
    return math.inf if psnr is None else psnr


def _best_shares(racers: list[Racer]) -> list[float | None]:
    timed = [r for r in racers if r.events]
    if not timed:
        return [None] * len(racers)
    start = min(r.events[0].t_ms for r in timed)
    end = max(r.events[-1].t_ms for r in timed)
    if end <= start:
        return [None] * len(racers)
    times = sorted({e.t_ms for r in timed for e in r.events})
    credit = [0.0] * len(racers)
    for a, b in zip(times, times[1:]):
        shown = []
        for r in racers:  # the picture each racer shows during [a, b): its last event at or before a
            past = [e for e in r.events if e.t_ms <= a]
            shown.append(_value(past[-1].psnr) if past else -math.inf)
        best = max(shown)
        if best == -math.inf:
            continue
        for i, value in enumerate(shown):
            if value == best:
                credit[i] += b - a
    return [c / (end - start) if r.events else None for c, r in zip(credit, racers)]


def verdict(racers: list[Racer]) -> dict:
    """The figures of each racer (in the order given) and the sentence."""
    shares = _best_shares(racers)
    rows = []
    for r, share in zip(racers, shares):
        ev = r.events
        reach = {str(db): next((e.t_ms for e in ev if _value(e.psnr) >= db), None) for db in THRESHOLDS_DB}
        rows.append({
            "key": r.key, "label": r.label,
            "first_ms": ev[0].t_ms if ev else None,
            "to_db_ms": reach,
            "final_ms": ev[-1].t_ms if ev else None,
            "final_psnr": ev[-1].psnr if ev else None,
            "exact": bool(ev) and ev[-1].psnr is None,
            "bytes": r.total_bytes,
            "best_share": None if share is None else round(share, 4),
        })
    return {"thresholds_db": list(THRESHOLDS_DB), "racers": rows, "sentence": sentence(rows)}


def _s(ms: float) -> str:
    return f"{ms / 1000:.2f} s"


def _end(row: dict) -> str:
    if row["final_ms"] is None:
        return "showed nothing"
    if row["exact"]:
        return f"was exact at {_s(row['final_ms'])}"
    return f"finished at {_s(row['final_ms'])} at {row['final_psnr']:.1f} dB"


def sentence(rows: list[dict]) -> str:
    """One plain sentence: who showed the best picture for longest, and how each one ended."""
    if not rows:
        return ""
    shares = [r["best_share"] for r in rows]
    if all(s is None for s in shares):
        clauses = [f"{r['label']} {_end(r)}" for r in rows]
        head = "Everything arrived at once: " if len(rows) > 1 else ""
        return head + "; ".join(clauses) + "."
    leader = max(range(len(rows)), key=lambda i: (shares[i] or 0.0, -i))
    lead = rows[leader]
    better = "better" if len(rows) == 2 else "best"
    first = f"{lead['label']} showed the {better} picture for {round(100 * (shares[leader] or 0))}% of the time"
    if len(rows) == 1:
        return f"{lead['label']} {_end(lead)}."
    clauses = [f"{first} and {_end(lead)}"] + [f"{r['label']} {_end(r)}" for i, r in enumerate(rows) if i != leader]
    return "; ".join(clauses) + "."
