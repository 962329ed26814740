"""Refinement coding of values known to lie in an interval (format version 6)."""

from __future__ import annotations

import hashlib
from dataclasses import fields

import numpy as np
import pytest

from hidenet_core.codec.container import HdnFormatError
from hidenet_core.codec.entropy import LevelDecoder, LevelEncoder
from hidenet_core.codec.intervals import (
    EXP_TABLE,
    FAST,
    SINGLE,
    SLOW,
    SlowValues,
    first_interval,
    plan_refinement,
    refine_decode,
    refine_encode,
    truncated_mean,
)


def _laplace_values(n: int, seed: int = 0, spread: float = 8.0):
    rng = np.random.default_rng(seed)
    mean = rng.uniform(-20, 275, n)
    scale = rng.uniform(0.1, spread, n)
    x = np.clip(np.round(mean + rng.laplace(0, 1, n) * scale), 0, 255).astype(np.uint8)
    snap = lambda v: (np.round(np.clip(v, 0, 255) * 64) / 64).astype(np.float32)  # noqa: E731
    return x, snap(mean), snap(np.maximum(scale, 1 / 16))


def test_exp_table_is_pinned():
    """The table is built by integer arithmetic; its checksum must be the same on every machine."""
    assert EXP_TABLE[0] == 1 << 30 and EXP_TABLE[-1] == 0
    assert hashlib.sha256(EXP_TABLE.astype(">i8").tobytes()).hexdigest()[:16] == "8637c3fcf8b3d306"


@pytest.mark.parametrize("chain", [(32, 8, 0), (64, 16, 4, 1, 0), (8, 0), (2, 1, 0), (127, 0), (5, 4, 3)])
def test_refinement_round_trips_and_keeps_every_value_in_its_interval(chain):
    x, mean, scale = _laplace_values(20000, seed=len(chain))
    rng = np.random.default_rng(1)
    enc = LevelEncoder("laplace")
    interval = first_interval(enc.encode(x, mean, scale, chain[0]), chain[0])
    stages = []
    for d in chain[1:]:
        m2 = (np.round(np.clip(mean + rng.normal(0, 3, x.size), 0, 255) * 64) / 64).astype(np.float32)
        before = interval
        interval = refine_encode(enc, x, before.lo, before.hi, m2, scale, d)
        assert ((x >= interval.lo) & (x <= interval.hi)).all()
        assert ((interval.lo >= before.lo) & (interval.hi <= before.hi)).all()
        assert (np.abs(interval.rec.astype(int) - x) <= d).all()
        assert (interval.hi.astype(int) - interval.lo <= 2 * d).all()
        stages.append((before, m2, d, interval))
    dec = LevelDecoder(enc.payload(), "laplace")
    got = first_interval(dec.decode(mean, scale, chain[0]), chain[0])
    for before, m2, d, want in stages:
        assert np.array_equal(got.rec, before.rec)
        got = refine_decode(dec, got.lo, got.hi, m2, scale, d)
        assert np.array_equal(got.lo, want.lo) and np.array_equal(got.hi, want.hi) and np.array_equal(got.rec, want.rec)
    if chain[-1] == 0:
        assert np.array_equal(got.rec, x)


def test_refinement_pays_only_for_what_the_interval_leaves_open():
    """Coding a value in two passes under the same prediction costs what one lossless pass costs."""
    x, mean, scale = _laplace_values(100000, seed=7, spread=6.0)
    direct = LevelEncoder("laplace")
    direct.encode(x, mean, scale, 0)
    two = LevelEncoder("laplace")
    interval = first_interval(two.encode(x, mean, scale, 8), 8)
    refine_encode(two, x, interval.lo, interval.hi, mean, scale, 0)
    assert len(two.payload()) <= len(direct.payload()) * 1.01


def test_a_value_whose_interval_is_one_bin_costs_nothing():
    x = np.array([10, 11, 12], np.uint8)
    lo, hi = np.array([9, 10, 12], np.uint8), np.array([11, 12, 12], np.uint8)
    mean = np.array([10.0, 11.0, 12.0], np.float32)
    plan = plan_refinement(lo, hi, mean, np.ones(3, np.float32), 1)
    assert plan.n.tolist() == [1, 1, 1]
    enc = LevelEncoder("laplace")
    got = refine_encode(enc, x, lo, hi, mean, np.ones(3, np.float32), 1)
    assert enc.payload() == b"" and (np.abs(got.rec.astype(int) - x) <= 1).all()


def test_values_with_few_and_many_bins_share_a_batch():
    """Intervals of 3 and of 65 values, refined to lossless together: one- and two-stage codings interleave."""
    rng = np.random.default_rng(3)
    n = 4000
    x = rng.integers(40, 200, n).astype(np.uint8)
    wide = rng.random(n) < 0.5
    lo = np.where(wide, np.maximum(x.astype(int) - rng.integers(0, 65, n), 0), x.astype(int) - 1).astype(np.uint8)
    hi = np.where(wide, np.minimum(lo.astype(int) + 64, 255), x.astype(int) + 1).astype(np.uint8)
    mean = (np.round(rng.uniform(0, 255, n) * 64) / 64).astype(np.float32)  # far off: truncation matters
    scale = np.full(n, 40.0, np.float32)
    enc = LevelEncoder("laplace")
    want = refine_encode(enc, x, lo, hi, mean, scale, 0)
    assert np.array_equal(want.rec, x)
    got = refine_decode(LevelDecoder(enc.payload(), "laplace"), lo, hi, mean, scale, 0)
    assert np.array_equal(got.rec, x)


def test_a_first_pass_keeps_no_interval_planes_its_values_give_them():
    """Between the layers a level's intervals after its first pass are not stored (two bytes a
    value): they are ``first_interval`` of the values shown, which the state holds anyway;
    a refinement that a later pass refines again keeps them as planes."""
    from hidenet_core import EncodeSettings, load_model
    from hidenet_core.codec.encoder import encode_chunks
    from hidenet_core.codec.intervals import FirstPassBounds, StoredBounds, first_interval
    from tests.conftest import smooth_image

    model = load_model("interp")
    image = smooth_image(120, 100, 3, seed=2)  # levels 0 and 1 above the base (level 2)
    kinds = set()
    for piece in encode_chunks(image, model, EncodeSettings(layers=((16, 8, 0), (4, 2, 0)))):
        if piece.state is None:
            continue
        for k, bounds in piece.state.intervals.items():
            kinds.add(type(bounds))
            if isinstance(bounds, FirstPassBounds):
                odd = piece.state.odd[k]
                want = first_interval(odd, bounds.d)
                lo, hi = bounds.strip(list(range(odd.shape[0])), 0, odd.shape[1])
                assert bounds.shown is odd and np.array_equal(lo, want.lo) and np.array_equal(hi, want.hi)
    assert kinds == {FirstPassBounds, StoredBounds}


def test_truncated_mean_is_the_mean_of_the_laplace_inside_the_interval():
    """Against a numerical integral, for means inside, beside and far outside the interval and
    scales from sharp to flat; the result lies in [lo - 1/2, hi + 1/2]."""
    rng = np.random.default_rng(3)
    n = 400
    lo = rng.integers(0, 256, n)
    hi = np.minimum(255, lo + rng.integers(0, 70, n))
    mean = rng.uniform(-40, 300, n)
    scale = np.exp(rng.uniform(np.log(0.06), np.log(80), n))
    got = truncated_mean(mean, scale, lo, hi)
    assert np.all(got >= lo - 0.5) and np.all(got <= hi + 0.5)
    for i in range(n):
        t = np.linspace(lo[i] - 0.5, hi[i] + 0.5, 40001)
        log_w = -np.abs(t - mean[i]) / scale[i]
        w = np.exp(log_w - log_w.max())  # scaled: the far tails underflow otherwise
        assert got[i] == pytest.approx((t * w).sum() / w.sum(), abs=1e-3 * (hi[i] - lo[i] + 1)), i


def test_truncated_mean_of_a_sure_prediction_is_the_prediction_and_of_an_unsure_one_the_middle():
    assert truncated_mean(np.array([100.3]), np.array([0.1]), np.array([90]), np.array([120]))[0] == \
        pytest.approx(100.3, abs=0.01)
    assert truncated_mean(np.array([100.0]), np.array([1e4]), np.array([90]), np.array([120]))[0] == \
        pytest.approx(105.0, abs=0.01)
    # a prediction outside the interval, sure of itself: the nearer edge
    assert truncated_mean(np.array([10.0]), np.array([0.2]), np.array([40]), np.array([80]))[0] == \
        pytest.approx(39.7, abs=0.01)


@pytest.mark.parametrize("d", [0, 1, 3])
def test_the_compiled_rows_are_the_numpy_definitions_bit_for_bit(d):
    """``_rows_at`` (numba) against ``_rows(_cdf_at(...))`` (numpy, the definition), for every way
    ``_stages`` builds the bin edges: shared bins, shared group starts, each value's own edges."""
    from hidenet_core.codec.intervals import _GROUP, SlowValues, _cdf_at, _rows, _rows_at

    x, mean, scale = _laplace_values(5000, seed=d, spread=40.0)
    rng = np.random.default_rng(d)
    lo = np.clip(x.astype(int) - rng.integers(0, 120, x.size), 0, 255).astype(np.uint8)
    hi = np.clip(x.astype(int) + rng.integers(0, 120, x.size), 0, 255).astype(np.uint8)
    plan = plan_refinement(lo, hi, mean, scale, d)
    sel = np.flatnonzero(plan.n > 1)  # every value with something to code, as if it were SLOW
    m64 = np.round(mean.astype(np.float64) * 64).astype(np.int64)
    s64 = np.maximum(np.round(scale.astype(np.float64) * 64).astype(np.int64), 4)
    values = SlowValues(sel, *(a[sel].astype(np.int64) for a in (lo, hi, plan.rm, plan.qmin, plan.n, m64, s64)))
    n = values.n
    bins = np.arange(int(n.max()) + 1)[None, :]
    starts = np.arange(int(-(-n.max() // _GROUP)) + 1)[None, :] * _GROUP
    groups = rng.integers(0, -(-n // _GROUP))  # a group each value has (as its decoded group is)
    edges = groups[:, None] * _GROUP + np.arange(_GROUP + 1)[None, :]
    for j in (bins, starts, edges):
        want = _rows(_cdf_at(values, d, j), j[:, :-1] < n[:, None])
        assert np.array_equal(_rows_at(values, d, j), want)


@pytest.mark.parametrize("d", [0, 1, 2, 7])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_compiled_plan_is_the_numpy_definition(d, dtype):
    """``plan_refinement`` (numba) against ``_plan_numpy`` (the definition): every field equal,
    for means on the 1/64 grid with halves to round (ties), scales at and below the floor,
    intervals from one value to all 256."""
    from hidenet_core.codec.intervals import _plan_numpy

    rng = np.random.default_rng(100 + d)
    size = 20000
    a = rng.integers(0, 256, size)
    b = rng.integers(0, 256, size)
    lo, hi = np.minimum(a, b).astype(np.uint8), np.maximum(a, b).astype(np.uint8)
    lo[:50], hi[:50] = 0, 255
    lo[50:100] = hi[50:100]
    mean = (rng.integers(-64 * 20, 64 * 276, size) / 64.0).astype(dtype)
    mean[100:200] = (rng.integers(-100, 500, 100) + 0.5 / 64).astype(dtype)  # ties of the 1/64 rounding
    scale = (rng.integers(0, 64 * 60, size) / 64.0).astype(dtype)
    scale[200:300] = 0.0
    mean[300:310], scale[310:320] = 1e11, 1e13  # past the compiled loop's float64 division (exact below 2^52)
    got, want = plan_refinement(lo, hi, mean, scale, d), _plan_numpy(lo, hi, mean, scale, d)
    for field in ("rm", "qmin", "n", "kind", "centre", "fast_scale"):
        assert getattr(got, field).dtype == getattr(want, field).dtype, field
        assert np.array_equal(getattr(got, field), getattr(want, field)), field
    for field in fields(SlowValues):
        assert np.array_equal(getattr(got.slow, field.name), getattr(want.slow, field.name)), field.name
    assert {int(k) for k in np.unique(got.kind)} == {SINGLE, FAST, SLOW}


@pytest.mark.parametrize("d", [0, 1, 3])
def test_the_compiled_bins_are_the_numpy_definition(d):
    """``RefinePlan.bins`` (numba) against ``_bins_numpy`` (the definition) for every bin of values
    at the edges of 0..255 and of their intervals, SINGLE, FAST and SLOW; a bin index outside them,
    or one too few or too many, is a format error."""
    from hidenet_core.codec.intervals import _bins_numpy

    rng = np.random.default_rng(20 + d)
    size = 5000
    a, b = rng.integers(0, 256, size), rng.integers(0, 256, size)
    lo, hi = np.minimum(a, b).astype(np.uint8), np.maximum(a, b).astype(np.uint8)
    lo[:20], hi[:20] = 0, 255
    mean = rng.uniform(-10, 265, size).astype(np.float32)
    plan = plan_refinement(lo, hi, mean, rng.uniform(0.5, 40, size).astype(np.float32), d)
    assert {int(k) for k in np.unique(plan.kind)} == {SINGLE, FAST, SLOW}
    qmin, n = plan.qmin.astype(np.int64), plan.n.astype(np.int64)
    fast, slow = plan.kind == FAST, plan.kind == SLOW
    for k in (0, 1, 2):  # the first, second and last bin of each value
        q = qmin + np.minimum(k, n - 1) if k < 2 else qmin + n - 1
        got, want = plan.bins(lo, hi, q[fast], q[slow]), _bins_numpy(plan, lo, hi, q)
        for g, w in zip(got, want):
            assert np.array_equal(g, w)
        new_lo, new_hi, rec = (x.astype(int) for x in got)
        assert (new_lo >= lo).all() and (new_hi <= hi).all() and (new_lo <= new_hi).all()
        assert (np.abs(rec - new_lo) <= d).all() and (np.abs(rec - new_hi) <= d).all()
    for which in (fast, slow):
        i = int(np.flatnonzero(which)[0])
        for outside in (qmin[i] - 1, qmin[i] + n[i]):
            q = qmin.copy()
            q[i] = outside
            with pytest.raises(HdnFormatError, match="outside the interval"):
                plan.bins(lo, hi, q[fast], q[slow])
    for fast_q, slow_q in ((qmin[fast][:-1], qmin[slow]), (qmin[fast], np.append(qmin[slow], 0))):
        with pytest.raises(HdnFormatError, match="outside the interval"):
            plan.bins(lo, hi, fast_q, slow_q)
