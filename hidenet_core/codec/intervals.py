"""Refinement coding: a value known to lie in an interval, coded down to a smaller max error.

A quality-layered stream (format version 6, docs/format.md) codes each level several
times. The first pass codes a value ``x`` as every version does (``entropy.py``:
JPEG-LS bins of width ``2d + 1`` around the rounded mean). From then on the decoder knows
the value's *interval* ``[lo, hi]`` (the bin, clipped to 0..255) and its reconstruction
``rec``, within ``d`` of every value of the interval. A later pass with a smaller max error
``d'`` refines the interval, given a new (better) prediction ``mean``, ``scale``:

* ``rm = clip(round(mean), lo, hi)``; the bins are ``[rm + q s - d', rm + q s + d']``
  (``s = 2d' + 1``) clipped to ``[lo, hi]``, for ``q = qmin .. qmax``, the bins that meet it;
* the bin holding ``x`` is coded under the Laplace(``mean``, ``scale``) *truncated to the
  interval*: what the decoder already knows is never paid for twice;
* the new interval is that bin and the new reconstruction ``clip(rm + q s, hi' - d', lo' + d')``
  (the point of the bin's nominal centre that lies within ``d'`` of all of it).

The bin masses come from an integer table of ``exp`` (``EXP_TABLE``, built by integer
arithmetic alone), so both sides compute the same probabilities on every machine. Where the
interval holds nearly all of the Laplace's mass (``Z >= FAST_MASS``) the truncation changes
nothing worth its cost and the bin index ``q - qmin`` is coded exactly as a first pass codes
its symbols (constriction's quantized Laplace; from version 7 the value tables); elsewhere
under a categorical with the truncated masses, whose rows a compiled loop computes
(``_rows_kernel``: the numpy definitions ``_cdf_at`` and ``_rows`` bit for bit, a test checks
it). A value whose interval is already a single bin costs nothing. From version 9 a pass's
mode may say ``UNTRUNCATED`` (the fastest effort's): then every value is coded the first way,
paying ``-log2`` of its interval's mass more where the prediction is unsure (the truncated
coding took ten times the time of the other, about 200 ns a value).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .compiled import jit
from .container import HdnFormatError
from .entropy import SCALE_FLOOR, LevelDecoder, LevelEncoder, symbol_bound
from .fixedpoint import _ARG, _IMAX, _ONE, EXP_TABLE

__all__ = ["EXP_TABLE", "FAST_MASS", "Interval", "first_interval", "StoredBounds", "FirstPassBounds", "Bounds",
           "RefinePlan", "SlowValues", "SINGLE", "FAST", "SLOW", "plan_refinement", "refine_encode", "refine_decode",
           "truncated_mean", "warm_up"]

#: an interval holding at least this share of the Laplace's mass is coded without truncation
FAST_MASS = 0.98
_FAST_NUM, _FAST_DEN = 49, 50  # FAST_MASS as an exact fraction
#: values whose categorical rows are built at once (bounds memory: rows of up to 256 bins)
_BATCH = 1 << 15


@dataclass
class Interval:
    """What the decoder knows of some values: each lies in ``[lo, hi]``; ``rec`` is shown."""

    lo: np.ndarray  # uint8
    hi: np.ndarray  # uint8
    rec: np.ndarray  # uint8, within the max error of every value of [lo, hi]


def first_interval(rec: np.ndarray, d: int) -> Interval:
    """The intervals after a first pass with max error ``d`` reconstructed ``rec``."""
    r = rec.astype(np.int32)
    return Interval(np.clip(r - d, 0, 255).astype(np.uint8), np.clip(r + d, 0, 255).astype(np.uint8),
                    rec.astype(np.uint8))


class StoredBounds:
    """The intervals of a level's odd values (3C, h, w) as two planes, lo and hi: what a
    refinement pass leaves for a later one."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.lo, self.hi = np.zeros(shape, dtype=np.uint8), np.zeros(shape, dtype=np.uint8)

    @property
    def shape(self) -> tuple[int, ...]:
        """The (3C, h, w) grid of values."""
        return self.lo.shape

    def strip(self, channels: list[int], r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) of ``channels`` on grid rows r0 .. r1 - 1."""
        return self.lo[channels, r0:r1], self.hi[channels, r0:r1]

    def store(self, channels: list[int], r0: int, r1: int, valid: np.ndarray, interval: Interval) -> None:
        """Record the intervals of the ``valid`` values of ``channels`` on rows r0 .. r1 - 1."""
        for plane, values in ((self.lo, interval.lo), (self.hi, interval.hi)):
            block = np.zeros(valid.shape, dtype=np.uint8)
            block[valid] = values
            plane[channels, r0:r1] = block


class FirstPassBounds:
    """The intervals a first pass with max error ``d`` leaves (``first_interval``): each value
    shown, ``d`` either side, clipped to 0..255. They follow from the values shown, so they
    are computed strip by strip when a later pass reads them instead of kept as planes (two
    bytes a value less to hold between the layers: 180 MB at level 0 of a 40 MP photo)."""

    def __init__(self, shown: np.ndarray, d: int | np.ndarray) -> None:
        self.shown, self.d = shown, d  # d: one for every channel, or one per channel (3C,) (version 10)

    @property
    def shape(self) -> tuple[int, ...]:
        """The (3C, h, w) grid of values."""
        return self.shown.shape

    def strip(self, channels: list[int], r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) of ``channels`` on grid rows r0 .. r1 - 1."""
        r = self.shown[channels, r0:r1].astype(np.int16)
        d = self.d if np.isscalar(self.d) else self.d[channels][:, None, None]
        return np.clip(r - d, 0, 255).astype(np.uint8), np.clip(r + d, 0, 255).astype(np.uint8)


#: what a level's odd values are known to lie in, between its passes
Bounds = StoredBounds | FirstPassBounds


def _twice_cdf(a64: np.ndarray, s64: np.ndarray, half_s64: np.ndarray | None = None) -> np.ndarray:
    """2 F(t) in units of 2^-30 for the Laplace CDF F at t = a64 / s64 (both integers, 1/64 units);
    ``half_s64``: ``s64 >> 1``, where the caller has it. Computed in place on one temporary (the
    same integers as ``min((|a| * 1024 + s // 2) // s, _IMAX)``, then the table)."""
    i = np.abs(a64)
    i *= _ARG
    i += (s64 >> 1) if half_s64 is None else half_s64
    i //= s64
    np.minimum(i, _IMAX, out=i)
    e = EXP_TABLE[i]
    negative = a64 < 0
    np.subtract(2 * _ONE, e, out=e, where=~negative)
    return e


#: how a value of a refinement is coded (``RefinePlan.kind``)
SINGLE, FAST, SLOW = 0, 1, 2


@dataclass
class RefinePlan:
    """The bins of each value's refinement and how each is coded (``kind``): not at all (a
    single bin), as a first pass codes its symbols (``FAST``: the untruncated bin index, with
    the ``centre`` and ``fast_scale`` of each such value in order), or under the truncated masses
    (``SLOW``: ``slow`` holds what their categorical rows are computed from, in order).

    Only what a decoder reads is kept: 5 bytes a value, two float64s a FAST value and the SLOW
    values' integers, where six planes held 65 bytes a value (hundreds of MB over the finest
    level of a 40 MP photograph, and fresh pages to fill for every part).
    """

    d: int
    rm: np.ndarray  # int16, rounded mean clamped into the interval
    qmin: np.ndarray  # int16, the first bin's index
    n: np.ndarray  # int16, the number of bins (1: nothing to code)
    kind: np.ndarray  # uint8, SINGLE, FAST or SLOW
    centre: np.ndarray  # float64 (one per FAST value), the symbol's centre: (m64 - 64 rm) / (64 step)
    fast_scale: np.ndarray  # float64 (one per FAST value), its scale: max(s64 / (64 step), SCALE_FLOOR)
    slow: SlowValues  # the SLOW values

    def bins(self, lo: np.ndarray, hi: np.ndarray, fast_q: np.ndarray, slow_q: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The new (lo, hi, rec) (uint8 each, 1-D) given the bin index of each FAST value (in order)
        and of each SLOW one (a SINGLE value's is ``qmin``), each inside its interval [lo, hi], by a
        compiled loop (``_bins_kernel``: ``_bins_numpy``'s integers); HdnFormatError where a bin
        index lies outside its interval's bins, or the indices are not one per FAST and SLOW value
        (a decoder's corrupted stream)."""
        size = int(np.size(self.kind))
        out = [np.empty(size, dtype=np.uint8) for _ in range(3)]
        one_each = np.size(fast_q) == self.centre.size and np.size(slow_q) == self.slow.size
        if not one_each or _bins_kernel(
                np.ascontiguousarray(lo).reshape(-1), np.ascontiguousarray(hi).reshape(-1), self.rm.reshape(-1),
                self.qmin.reshape(-1), self.n.reshape(-1), self.kind.reshape(-1),
                np.ascontiguousarray(fast_q, dtype=np.int64), np.ascontiguousarray(slow_q, dtype=np.int64), self.d,
                *out):
            raise HdnFormatError("a refinement symbol lies outside the interval the decoder knows: the stream is "
                                 "corrupted")
        return out[0], out[1], out[2]


@dataclass
class SlowValues:
    """What the categorical rows of a refinement's SLOW values are computed from, one entry per
    value (int64 each): its flat index, its interval, the plan's integers and the prediction on
    the 1/64 grid. ``batch`` takes some of them."""

    index: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    rm: np.ndarray
    qmin: np.ndarray
    n: np.ndarray
    m64: np.ndarray
    s64: np.ndarray

    @property
    def size(self) -> int:
        return int(self.index.size)

    def batch(self, which: slice | np.ndarray) -> SlowValues:
        return SlowValues(*(getattr(self, f.name)[which] for f in fields(self)))


def _bins_numpy(plan: RefinePlan, lo: np.ndarray, hi: np.ndarray, q: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``RefinePlan.bins`` in numpy, given every value's bin index ``q`` (inside its interval): its definition."""
    rm = plan.rm.astype(np.int64)
    if plan.d == 0:  # lossless: the bin is the value itself (q is inside the interval)
        x = (rm + q).astype(np.uint8)
        return x, x.copy(), x.copy()
    lo, hi = lo.astype(np.int64), hi.astype(np.int64)
    step = 2 * plan.d + 1
    centre = rm + q * step
    a = np.maximum(centre - plan.d, lo)
    b = np.minimum(centre + plan.d, hi)
    rec = np.clip(centre, np.maximum(b - plan.d, 0), np.minimum(a + plan.d, 255))
    return a.astype(np.uint8), b.astype(np.uint8), rec.astype(np.uint8)


@jit
def _bins_kernel(lo, hi, rm, qmin, n, kind, fast_q, slow_q, d, out_lo, out_hi, out_rec):  # pragma: no cover - compiled
    """``_bins_numpy`` value by value, each value's bin index taken from ``fast_q`` or ``slow_q`` in
    turn by its kind (``qmin`` for a single bin: ``fast_q`` and ``slow_q`` hold one per FAST and
    SLOW value, which the caller checks); returns how many lie outside ``qmin .. qmin + n - 1``
    (their outputs are then meaningless)."""
    step = 2 * d + 1
    bad = 0
    f = 0
    s = 0
    for i in range(kind.size):
        k = kind[i]
        q0 = np.int64(qmin[i])
        if k == FAST:
            qi = fast_q[f]
            f += 1
        elif k == SLOW:
            qi = slow_q[s]
            s += 1
        else:
            qi = q0
        if qi < q0 or qi >= q0 + n[i]:
            bad += 1
            continue
        centre = np.int64(rm[i]) + qi * step
        if d == 0:
            a = b = rec = centre
        else:
            a = max(centre - d, np.int64(lo[i]))
            b = min(centre + d, np.int64(hi[i]))
            rec = min(max(centre, max(b - d, 0)), min(a + d, 255))
        out_lo[i] = a
        out_hi[i] = b
        out_rec[i] = rec
    return bad


def plan_refinement(lo: np.ndarray, hi: np.ndarray, mean: np.ndarray, scale: np.ndarray, d: int,
                    untruncated: bool = False) -> RefinePlan:
    """How values with intervals ``[lo, hi]`` (uint8, any shape, taken flat) and a prediction (on
    the 1/64 grid) are refined to ``d``; ``untruncated`` (a version-9 pass's mode): every value of
    more than one bin is FAST.

    Computed by a compiled loop (``_plan_kernel``) over the values, which sorts them by how they
    are coded as it goes: the integers and divisions of ``_plan_numpy``, the definition, which a
    test compares it with."""
    lo, hi = np.ascontiguousarray(lo).reshape(-1), np.ascontiguousarray(hi).reshape(-1)
    size = lo.size
    rm, qmin, n = (np.empty(size, dtype=np.int16) for _ in range(3))
    kind = np.empty(size, dtype=np.uint8)
    # as long as every value could be FAST, or SLOW (pages never written cost nothing)
    centre, fast_scale = np.empty(size, dtype=np.float64), np.empty(size, dtype=np.float64)
    slow = [np.empty(size, dtype=np.int64) for _ in range(3)]  # index, m64, s64
    nf, ns = _plan_kernel(lo, hi, np.ascontiguousarray(mean).reshape(-1), np.ascontiguousarray(scale).reshape(-1),
                          d, round(64 * SCALE_FLOOR) + 1, EXP_TABLE, SCALE_FLOOR, untruncated, rm, qmin, n, kind,
                          centre, fast_scale, *slow)
    index, m64, s64 = (a[:ns] for a in slow)
    slow_values = SlowValues(index, lo[index].astype(np.int64), hi[index].astype(np.int64), rm[index].astype(np.int64),
                             qmin[index].astype(np.int64), n[index].astype(np.int64), m64, s64)
    return RefinePlan(d, rm, qmin, n, kind, centre[:nf], fast_scale[:nf], slow_values)


#: below this, integers are exact in float64, and so is the floor of the quotient of two of them
_EXACT = 1 << 52


@jit
def _twice_cdf_at(a64, s64, table):  # pragma: no cover - compiled
    """``_twice_cdf`` of one value (its integers), for the compiled loops. The floor division is
    done in float64 where the numbers allow (exact: a quotient's distance to the next integer, at
    least 1 / s64, is far above float64's rounding of numerator and divisor below 2^52): it
    takes a third of the time of an int64 division, which was most of the refinement's plan."""
    num = abs(a64) * _ARG + (s64 >> 1)
    k = np.int64(np.float64(num) / np.float64(s64)) if num < _EXACT and s64 < _EXACT else num // s64
    e = table[min(k, table.size - 1)]
    return e if a64 < 0 else 2 * _ONE - e


@jit
def _plan_kernel(lo, hi, mean, scale, d, s_min, table, floor, untruncated, rm, qmin, n, kind, centre, fast_scale,
                 slow_index, slow_m64, slow_s64):  # pragma: no cover - compiled
    """``_plan_numpy`` value by value (the same integers; the float64 products by 64 are exact and
    ``np.rint`` rounds as ``np.round`` does, half to even); returns the counts of the FAST and
    the SLOW values."""
    step = 2 * d + 1
    unit = np.float64(64 * step)
    nf = 0
    ns = 0
    for i in range(lo.size):
        lo_i = np.int64(lo[i])
        hi_i = np.int64(hi[i])
        m = np.int64(np.rint(np.float64(mean[i]) * 64.0))
        sc = max(np.int64(np.rint(np.float64(scale[i]) * 64.0)), s_min)
        r = min(max((m + 32) // 64, lo_i), hi_i)
        if d == 0:
            q0 = lo_i - r
            count = hi_i - lo_i + 1
        else:
            q0 = -((r - lo_i + d) // step)
            count = (hi_i - r + d) // step - q0 + 1
        rm[i] = r
        qmin[i] = q0
        n[i] = count
        if count <= 1:
            kind[i] = SINGLE
            continue
        is_fast = untruncated
        if not is_fast:
            upper = _twice_cdf_at(64 * hi_i + 32 - m, sc, table)
            lower = _twice_cdf_at(64 * lo_i - 32 - m, sc, table)
            is_fast = (upper - lower) * _FAST_DEN >= _FAST_NUM * 2 * _ONE
        if is_fast:
            kind[i] = FAST
            centre[nf] = np.float64(m - 64 * r) / unit
            fast_scale[nf] = max(np.float64(sc) / unit, floor)
            nf += 1
        else:
            kind[i] = SLOW
            slow_index[ns] = i
            slow_m64[ns] = m
            slow_s64[ns] = sc
            ns += 1
    return nf, ns


def _plan_numpy(lo: np.ndarray, hi: np.ndarray, mean: np.ndarray, scale: np.ndarray, d: int,
                untruncated: bool = False) -> RefinePlan:
    """``plan_refinement`` in numpy: its definition."""
    lo, hi = np.asarray(lo).reshape(-1), np.asarray(hi).reshape(-1)
    lo64, hi64 = lo.astype(np.int64), hi.astype(np.int64)
    m64 = np.round(np.asarray(mean).reshape(-1).astype(np.float64) * 64).astype(np.int64)
    s64 = np.maximum(np.round(np.asarray(scale).reshape(-1).astype(np.float64) * 64).astype(np.int64),
                     round(64 * SCALE_FLOOR) + 1)
    step = 2 * d + 1
    rm = np.clip((m64 + 32) // 64, lo64, hi64)
    if d == 0:  # the same as below, without the divisions by 1
        qmin = lo64 - rm
        n = hi64 - lo64 + 1
    else:
        qmin = -((rm - lo64 + d) // step)
        n = (hi64 - rm + d) // step - qmin + 1
    # the Laplace's mass inside the interval, 2 F(hi + 1/2) - 2 F(lo - 1/2), in units of 2^-30
    half = s64 >> 1
    z = _twice_cdf(64 * hi64 + 32 - m64, s64, half)
    z -= _twice_cdf(64 * lo64 - 32 - m64, s64, half)
    z *= _FAST_DEN
    fast = (z >= _FAST_NUM * 2 * _ONE) | untruncated
    kind = np.where(n <= 1, SINGLE, np.where(fast, FAST, SLOW)).astype(np.uint8)
    f, s = np.flatnonzero(kind == FAST), np.flatnonzero(kind == SLOW)
    unit = 64 * step  # the untruncated bin-index coding's centre and scale, in float64
    centre = (m64[f] - 64 * rm[f]).astype(np.float64) / unit
    fast_scale = np.maximum(s64[f].astype(np.float64) / unit, SCALE_FLOOR)
    slow = SlowValues(s, lo64[s], hi64[s], rm[s], qmin[s], n[s], m64[s], s64[s])
    return RefinePlan(d, rm.astype(np.int16), qmin.astype(np.int16), n.astype(np.int16), kind, centre, fast_scale,
                      slow)


def _cdf_at(values: SlowValues, d: int, j: np.ndarray) -> np.ndarray:
    """2 F at the lower edge of bin ``j`` (per value, any shape (N, K); a bin index at or past the
    last bin is the interval's upper edge) in units of 2^-30, for values refined to ``d``."""
    n = values.n[:, None]
    j = np.minimum(j, n)
    inner = values.rm[:, None] + (values.qmin[:, None] + j) * (2 * d + 1) - d
    edge = np.where(j == 0, values.lo[:, None], np.where(j >= n, values.hi[:, None] + 1, inner))  # [edge_j, edge_j+1)
    return _twice_cdf(64 * edge - 32 - values.m64[:, None], values.s64[:, None])


@jit
def _rows_kernel(j, n, lo, hi, rm, qmin, m64, s64, d, table, out):  # pragma: no cover - compiled
    """``_rows(_cdf_at(...), j[:, :-1] < n)`` value by value: the same integers, the same sums of
    integer-valued floats (exact in any order) and divisions, so the same rows bit for bit."""
    step = 2 * d + 1
    for r in range(out.shape[0]):
        jr = r if j.shape[0] > 1 else 0
        prev = 0
        total = 0.0
        for k in range(out.shape[1] + 1):
            jk = min(j[jr, k], n[r])
            if jk == 0:
                edge = lo[r]
            elif jk >= n[r]:
                edge = hi[r] + 1
            else:
                edge = rm[r] + (qmin[r] + jk) * step - d
            c = _twice_cdf_at(64 * edge - 32 - m64[r], s64[r], table)
            if k > 0:
                mass = 0.0
                if j[jr, k - 1] < n[r]:
                    mass = float(max(c - prev, 1))
                out[r, k - 1] = mass
                total += mass
            prev = c
        for k in range(out.shape[1]):
            out[r, k] = out[r, k] / total


def _rows_at(values: SlowValues, d: int, j: np.ndarray) -> np.ndarray:
    """``_rows(_cdf_at(values, d, j), j[:, :-1] < n)``, compiled (``_rows_kernel``): the categorical
    rows of ``values`` at the bin edges ``j`` ((1 or N, K + 1))."""
    j = np.ascontiguousarray(j, dtype=np.int64)
    out = np.empty((values.size, j.shape[1] - 1), dtype=np.float64)
    _rows_kernel(j, values.n, values.lo, values.hi, values.rm, values.qmin, values.m64, values.s64, d, EXP_TABLE, out)
    return out


def _rows(c: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Categorical rows from cumulative masses at K + 1 edges: each valid bin's mass (at least the
    smallest unit), the others 0, normalised (float64)."""
    mass = np.where(valid, np.maximum(np.diff(c, axis=1), 1), 0).astype(np.float64)
    return mass / mass.sum(axis=1, keepdims=True)


#: a value with more bins than this is coded in two stages under the same distribution: its group
#: of up to this many bins, then its bin in the group (fewer masses to compute, the same code length)
_GROUP = 16


def _stages(values: SlowValues, d: int):
    """The categorical codings of SLOW ``values``, in stream order, as (kind, which, rows): "bin"
    codes the bin of the values ``which`` (positions in ``values``) with few bins; "group" the
    group of those with many, "within" then their bin in the group. ``rows(groups)`` gives the
    rows (the groups only matter to "within")."""
    n = values.n
    one, two = np.flatnonzero(n <= _GROUP), np.flatnonzero(n > _GROUP)
    out = []
    if one.size:
        few = values.batch(one)
        bins = np.arange(int(few.n.max()) + 1)[None, :]

        def by_bin(_: np.ndarray) -> np.ndarray:
            return _rows_at(few, d, bins)

        out.append(("bin", one, by_bin))
    if two.size:
        many = values.batch(two)
        groups = -(-many.n // _GROUP)
        starts = np.arange(int(groups.max()) + 1)[None, :] * _GROUP

        def by_group(_: np.ndarray) -> np.ndarray:
            return _rows_at(many, d, starts)

        offsets = np.arange(_GROUP + 1)[None, :]

        def within(group: np.ndarray) -> np.ndarray:
            return _rows_at(many, d, group[:, None] * _GROUP + offsets)

        out.extend([("group", two, by_group), ("within", two, within)])
    return out


def refine_encode(enc: LevelEncoder, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, mean: np.ndarray,
                  scale: np.ndarray, d: int, untruncated: bool = False) -> Interval:
    """Code values ``x`` (1-D uint8, each within its ``[lo, hi]``) down to max error ``d``;
    ``untruncated``: every bin index as a first pass codes its symbols (a version-9 pass's mode)."""
    if x.size == 0:
        return Interval(lo.copy(), hi.copy(), lo.copy())
    plan = plan_refinement(lo, hi, mean, scale, d, untruncated)
    step = 2 * d + 1
    r = x.astype(np.int64) - plan.rm
    q = np.where(r >= 0, (r + d) // step, -((d - r) // step))
    fast_q = q[plan.kind == FAST]
    if fast_q.size:
        enc.encode_symbols(fast_q.astype(np.int32), symbol_bound(d), plan.centre, plan.fast_scale)
    slow_q = q[plan.slow.index]
    for start in range(0, plan.slow.size, _BATCH):
        batch = slice(start, start + _BATCH)
        b = slow_q[batch] - plan.slow.qmin[batch]  # the bin's index in the interval
        for kind, which, rows in _stages(plan.slow.batch(batch), d):
            symbols = {"bin": b[which], "group": b[which] // _GROUP, "within": b[which] % _GROUP}[kind]
            enc.encode_categorical(symbols.astype(np.int32), rows(b[which] // _GROUP))
    return Interval(*plan.bins(lo, hi, fast_q, slow_q))


def refine_decode(dec: LevelDecoder, lo: np.ndarray, hi: np.ndarray, mean: np.ndarray, scale: np.ndarray,
                  d: int, untruncated: bool = False) -> Interval:
    """Read what ``refine_encode`` coded for values with intervals ``[lo, hi]``."""
    if lo.size == 0:
        return Interval(lo.copy(), hi.copy(), lo.copy())
    plan = plan_refinement(lo, hi, mean, scale, d, untruncated)
    fast_q = dec.decode_symbols(symbol_bound(d), plan.centre, plan.fast_scale)
    slow_q = np.empty(plan.slow.size, dtype=np.int64)
    for start in range(0, plan.slow.size, _BATCH):
        batch = slice(start, start + _BATCH)
        values = plan.slow.batch(batch)
        b = np.zeros(values.size, dtype=np.int64)
        for kind, which, rows in _stages(values, d):
            got = dec.decode_categorical(rows(b[which] // _GROUP))
            b[which] = got * _GROUP if kind == "group" else b[which] + got
            if kind == "group" and (b[which] >= values.n[which]).any():  # its rows would have no mass
                raise HdnFormatError("a refinement symbol lies outside the interval the decoder knows: the stream "
                                     "is corrupted")
        slow_q[batch] = b + values.qmin
    return Interval(*plan.bins(lo, hi, fast_q, slow_q))  # every value's bin checked inside its interval


def _tail(length: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the density ``exp(-t / scale)`` on ``0 <= t <= length``: its mass and its first moment
    (the mass times the mean distance from 0), without dividing (both 0 for a length of 0)."""
    ratio = -length / scale
    mass = -scale * np.expm1(ratio)
    return mass, scale * mass - scale * length * np.exp(ratio)


def truncated_mean(mean: np.ndarray, scale: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The mean of the Laplace(``mean``, ``scale``) restricted to ``[lo - 1/2, hi + 1/2]`` (float32,
    inside it): the least-squares estimate of a value known to lie in ``[lo, hi]`` under that
    prediction. What a viewer is shown of a value a later pass will refine, once a better
    prediction than the one it was coded with exists (``loop.estimate_level``): the middle of
    the interval where the prediction is unsure, near the prediction where it is sure. For
    display only (float32: a tenth of a pixel is far below what is shown)."""
    f = np.float32
    m = np.asarray(mean, dtype=f)
    b = np.maximum(np.asarray(scale, dtype=f), f(1e-3))
    a, c = np.asarray(lo, dtype=f) - f(0.5), np.asarray(hi, dtype=f) + f(0.5)
    tiny = f(1e-30)
    below, above = _tail(np.maximum(m - a, f(0)), b), _tail(np.maximum(c - m, f(0)), b)
    inside = m + (above[1] - below[1]) / np.maximum(below[0] + above[0], tiny)
    # a mean outside the interval: the density decays away from the nearer edge
    mass, moment = _tail(np.maximum(c - a, f(0)), b)
    offset = moment / np.maximum(mass, tiny)
    return np.clip(np.where(m <= a, a + offset, np.where(m >= c, c - offset, inside)), a, c)


def warm_up() -> None:
    """Compile (or load from numba's cache) the refinement's loops (``_plan_kernel``, ``_bins_kernel``,
    ``_rows_kernel``), so that a server pays it at start-up, not its first viewer."""
    lo, hi = np.array([0, 10], dtype=np.uint8), np.array([40, 200], dtype=np.uint8)
    for dtype in (np.float32, np.float64):  # the codec's predictions, a caller's float64
        # the first value's mean lies far outside its interval (SLOW), the second's inside (FAST)
        plan = plan_refinement(lo, hi, np.array([90.0, 100.0], dtype), np.array([1.0, 10.0], dtype), 0)
        plan_refinement(lo, hi, np.array([90.0, 100.0], dtype), np.array([1.0, 10.0], dtype), 0, True)
    assert plan.slow.size == 1 and plan.centre.size == 1
    plan.bins(lo, hi, plan.qmin[plan.kind == FAST].astype(np.int64), plan.slow.qmin)
    _rows_at(plan.slow, plan.d, np.arange(_GROUP + 1)[None, :])
