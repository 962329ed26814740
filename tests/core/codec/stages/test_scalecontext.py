"""Per-image scale context (format version 4): surprise, features, exact shift, fit, coding, round trips."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from hidenet_core import EncodeSettings, decode, encode
from hidenet_core.codec.container import parse_header
from hidenet_core.codec.entropy import LevelDecoder, LevelEncoder
from hidenet_core.codec.stages import calibration, scalecontext
from hidenet_core.codec.stages.scalecontext import ScaleContext, SurprisePlanes
from hidenet_core.predictors.base import CONTEXT_GRID, Prediction, snap
from hidenet_core.predictors.features import RGB_STEPS

SIZE = (150, 140)  # level 0 has 75 x 70 positions: calibrated

V4 = EncodeSettings(version=4)  # version 4: these tests are about its scale context


def patchy_noise(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """A smooth ramp with faint noise, and strong noise on half of the 2x2 cells' odd rows (two
    pixels wide, the same pixels in every colour): the even pixels do not show where, but a
    surprising value says that its neighbour and its other colours are surprising too."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = (60 + 0.5 * xx + 0.3 * yy)[:, :, None] + 15 * np.arange(c)[None, None, :]
    specks = np.kron(rng.random((h // 2 + 1, w // 2 + 1)) < 0.5, np.ones((2, 2)))[:h, :w] * (yy % 2 == 1)
    noise = rng.laplace(0, 0.7, (h, w, c)) + specks[:, :, None] * rng.laplace(0, 25, (h, w, c))
    return np.clip(np.round(base + noise), 0, 255).astype(np.uint8)


def test_feature_sets_follow_what_is_decoded():
    f = scalecontext.features
    kinds = lambda feats: [ft.kind for ft in feats]  # noqa: E731
    assert kinds(f(3, 7, frozenset())) == ["bias"]  # green, diagonal phase: nothing decoded at this level
    assert kinds(f(3, 6, frozenset({7}))) == ["bias", "cross"]  # red sees green's surprise here
    assert kinds(f(3, 8, frozenset({7, 6}))) == ["bias", "cross", "cross"]
    assert kinds(f(3, 1, frozenset({6, 7, 8}))) == ["bias", "near"]  # green (0,1): the diagonal phase
    assert kinds(f(3, 4, frozenset({6, 7, 8, 0, 1, 2}))) == ["bias", "near", "near"]  # (1,0): diagonal and (0,1)
    expected = ["bias", "cross", "cross", "near", "near"] + ["trunk"] * 16
    assert kinds(f(3, 5, frozenset(range(9)) - {5}, trunk=16)) == expected
    assert len(f(1, 1, frozenset({2, 0}))) == 3  # grey: no other colours
    assert kinds(f(4, 11, frozenset({8, 9, 10}))) == ["bias"]  # alpha: no colours, nothing earlier
    assert len(f(3, 0, frozenset(), trunk=99)) == 1 + scalecontext.MAX_TRUNK  # a wider model is capped
    most = max(len(f(c, ch, frozenset(range(3 * c)) - {ch}, trunk=99)) for c in (1, 3, 4) for ch in range(3 * c))
    assert most <= scalecontext.max_features(3)


def test_features_read_only_decoded_channels():
    """In coding order, every feature of every channel reads a channel whose surprise is recorded."""
    rng = np.random.default_rng(0)
    planes = SurprisePlanes(9, 11)
    known: set[int] = set()
    order = [[step[j] for j in rnd] for step in RGB_STEPS for rnd in calibration.rounds(3, step, by_phase=True)]
    for rnd in order:
        for ch in rnd:
            feats = scalecontext.features(3, ch, frozenset(known))
            ctx = ScaleContext(planes.view(), feats, 3, ch // 3, np.arange(99))
            assert ctx.sample(np.arange(99)).shape == (len(feats), 99)  # a KeyError if it read an unknown channel
        for ch in rnd:
            planes.add(ch, rng.integers(0, 12, (9, 11)))
            known.add(ch)


def test_surprise_counts_thresholds_exactly():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 256, 5000).astype(np.uint8)
    mean = np.round(rng.uniform(0, 255, 5000) * 64).astype(np.float32) / 64
    scale = np.round(rng.uniform(1 / 16, 20, 5000) * 64).astype(np.float32) / 64
    # values that sit exactly on a threshold must count it
    values[:50] = np.round(mean[:50] + 2.0 * scale[:50]).astype(np.uint8)
    mean[:50] = values[:50].astype(np.float32) - 2.0 * scale[:50]
    q = scalecontext.surprise(values, mean, scale)
    for v, m, s, got in zip(values[:400], mean[:400], scale[:400], q[:400]):
        d = abs(Fraction(int(v)) - Fraction(float(m)))
        assert got == sum(d >= Fraction(t) * Fraction(float(s)) for t in scalecontext.THRESHOLDS)
    assert (q[:50] >= 7).all()  # |x - mean| == 2 scale reaches the threshold 2.0


@pytest.mark.parametrize("ch, known", [(0, {6, 7, 1}), (5, {0, 1, 2, 3, 4, 6, 7, 8})])
def test_shift_is_exact(ch, known):
    """floor(sum a_k f_k / 64 + 1/2) computed with Fractions equals the codec's float sums, for every
    kind of feature: bias, cross, near of the diagonal and of phase (0,1), trunk."""
    rng = np.random.default_rng(5 + ch)
    h, w = 7, 9
    planes = SurprisePlanes(h, w)
    for c in known:
        planes.add(c, rng.integers(0, 12, (h, w)))
    trunk = np.round(rng.uniform(-8, 8, (4, h, w)) * CONTEXT_GRID).astype(np.float32)  # units of 1/16
    feats = scalecontext.features(3, ch, frozenset(known), trunk=4)
    assert {f.kind for f in feats} == {"bias", "cross", "near", "trunk"}
    ctx = ScaleContext(planes.view(), feats, 3, ch // 3, np.arange(h * w), trunk)
    for _ in range(5):
        weights = tuple(int(a) for a in rng.integers(-scalecontext.WEIGHT_BOUND, scalecontext.WEIGHT_BOUND + 1,
                                                     len(feats)))
        got = ctx.shift(weights)
        values = [ctx._feature(f) for f in feats]
        for i in range(h):
            for j in range(w):
                total = sum(Fraction(a) * Fraction(float(v[i, j])) for a, v in zip(weights, values))
                assert got[i, j] == (total / 64 + Fraction(1, 2)).__floor__()
        sample = scalecontext.shift_of(ctx.sample(np.arange(h * w)), np.array(weights))
        assert np.array_equal(sample, got.reshape(-1))


def test_fit_finds_a_planted_scale_relation():
    rng = np.random.default_rng(2)
    n = 20000
    q = rng.integers(0, 10, n).astype(np.float64)
    scale = np.full(n, 2.0)
    true = scale * 2.0 ** (0.25 * (q - 5))  # a quarter octave per unit of q: weight 2 eighths = 128 / 64
    x = np.round(100 + rng.laplace(0, true))
    weights = scalecontext.fit(np.stack([np.ones(n), q]), x, np.full(n, 100.0), scale)
    assert abs(weights[1] - 128) <= 16, weights
    assert abs(weights[0] - (-5 * 128)) <= 100, weights


def test_weights_round_trip_through_the_range_coder():
    weights = [(0,) * 5, tuple(range(-10, 11)), (scalecontext.WEIGHT_BOUND, -scalecontext.WEIGHT_BOUND, 0)]
    enc = LevelEncoder("laplace")
    scalecontext.write(enc, weights)
    assert scalecontext.read(LevelDecoder(enc.payload(), "laplace"), [5, 21, 3]) == weights


def test_snap_puts_the_context_on_its_grid():
    ctx = torch.tensor([[[[[0.03, -9.0], [8.5, 1.0 / 32 + 1e-4]]]]])  # (1, 1, 1, 2, 2)
    pred = snap(Prediction(torch.full((1, 1, 2, 2), 100.0), torch.ones(1, 1, 2, 2), ctx))
    assert pred.context.flatten().tolist() == [0.0, -128.0, 128.0, 1.0]  # units of 1/16, within +-8
    shared = ctx.expand(1, 3, 1, 2, 2)  # one tensor for several channels stays one
    assert snap(Prediction(torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2), shared)).context.stride(1) == 0


@pytest.mark.parametrize("c", [1, 3, 4])
def test_version_4_is_lossless_and_smaller_where_surprise_clusters(c, interp):
    img = patchy_noise(*SIZE, c)
    v4, v3 = encode(img, interp, V4), encode(img, interp, EncodeSettings(version=3))
    assert parse_header(v4)[0].version == 4
    assert np.array_equal(decode(v4, interp)[-1].image, img)
    assert len(v4) < 0.985 * len(v3), (len(v4), len(v3))


def test_version_4_with_odd_sizes_is_lossless(interp):
    for h, w in ((151, 141), (149, 160)):
        img = patchy_noise(h, w, 3, seed=h)
        assert np.array_equal(decode(encode(img, interp, V4), interp)[-1].image, img)


@pytest.mark.parametrize("d", [1, 3])
def test_version_4_near_lossless_stays_within_d(d, interp):
    img = patchy_noise(*SIZE, 3, seed=3)
    out = decode(encode(img, interp, EncodeSettings(max_error=d, version=4)), interp)[-1].image
    assert np.abs(out.astype(int) - img.astype(int)).max() <= d


def test_version_4_with_the_learned_model_uses_its_trunk(monkeypatch):
    """The default model's trunk features are weighed; the stream decodes bit for bit."""
    from hidenet_core.predictors import load_model

    model = load_model("default")
    img = patchy_noise(*SIZE, 3, seed=6)
    seen: list[int] = []
    fit = calibration.fit

    def spy(*args, **kwargs):
        params = fit(*args, **kwargs)
        context = args[1].context
        if context is not None:
            seen.append(sum(f.kind == "trunk" for f in context.feats))
        return params

    monkeypatch.setattr(calibration, "fit", spy)
    data = encode(img, model, V4)
    assert seen and set(seen) == {16}
    assert np.array_equal(decode(data, model)[-1].image, img)

