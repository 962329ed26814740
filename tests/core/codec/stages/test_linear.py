"""Per-image linear prediction (format version 3): features, fit, coding and round trips."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from hidenet_core import EncodeSettings, decode, encode
from hidenet_core.codec.container import parse_header
from hidenet_core.codec.entropy import LevelDecoder, LevelEncoder
from hidenet_core.codec.stages import calibration, linear
from hidenet_core.predictors.features import RGB_STEPS

SIZE = (150, 140)  # level 0 has 75 x 70 positions: calibrated
V3 = EncodeSettings(version=3)  # version 3: these tests are about its linear prediction


def shared_detail(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """Smooth colours plus the same fine detail in every colour, scaled differently per colour:
    what a chroma-subsampled JPEG source looks like, and what the cross-colour features are for."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = (100 + 50 * np.sin(xx / 9.0 + seed) * np.cos(yy / 13.0))[:, :, None] + 20 * np.arange(c)[None, None, :]
    detail = rng.laplace(0, 6, (h, w))
    gains = [1.3, 1.0, 0.7, 0.0][:c] if c >= 3 else [1.0]
    img = base + detail[:, :, None] * np.array(gains)[None, None, :]
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def test_feature_sets_follow_what_is_decoded():
    f = linear.features
    assert len(f(3, 7, frozenset())) == 12  # green, diagonal phase: the 12 nearest even pixels
    assert len(f(3, 6, frozenset({7}))) == 12 + 13  # red: + green's detail and residual
    assert len(f(3, 8, frozenset({7, 6}))) == 12 + 13 + 13  # blue: + green's and red's
    assert len(f(3, 8, frozenset({7}))) == 25  # red not decoded yet: no red features
    assert len(f(3, 1, frozenset({6, 7, 8}))) == 12  # green (0,1): 6 even + 6 diagonal neighbours
    assert len(f(3, 1, frozenset())) == 6  # the diagonal phase unknown: even neighbours only
    assert len(f(3, 0, frozenset({6, 7, 8, 1, 4}))) == 25
    # phase (1,0) after phase (0,1) (version 3's rounds): 4 more neighbours per colour
    assert len(f(3, 4, frozenset({6, 7, 8, 1}))) == 16
    assert len(f(3, 5, frozenset({6, 7, 8, 0, 1, 2, 3, 4}))) == 16 + 17 + 17 == linear.max_features(3)
    assert len(f(1, 2, frozenset())) == 12 and len(f(1, 0, frozenset({2}))) == 12  # grey: own colour only
    assert len(f(4, 11, frozenset({8, 9, 10}))) == 12  # alpha: own colour only
    most = max(len(f(c, ch, frozenset(range(3 * c)) - {ch})) for c in (1, 3, 4) for ch in range(3 * c))
    assert most <= linear.max_features(3)
    assert {ft.kind for ft in f(3, 8, frozenset({6, 7}))} == {"own", "detail", "resid"}


def test_features_read_nothing_that_is_not_decoded_yet():
    """The decoder computes the same features as the encoder only if they use decoded values alone."""
    rng = np.random.default_rng(0)
    even = rng.integers(0, 256, (3, 9, 11), dtype=np.uint8)
    odd = rng.integers(0, 256, (9, 9, 11), dtype=np.uint8)
    net = np.round(rng.uniform(0, 255, (9, 9, 11)) * 64).astype(np.float32) / 64
    known: set[int] = set()
    order = [[step[j] for j in rnd] for step in RGB_STEPS for rnd in calibration.rounds(3, step, by_phase=True)]
    assert order == [[7], [6], [8], [1], [4], [0], [2], [3], [5]]
    for rnd in order:
        for ch in rnd:
            feats = linear.features(3, ch, frozenset(known))
            mean = net[ch]
            before = [linear.Planes(even, odd, net).feature(ft, ch // 3, mean) for ft in feats]
            scrambled, scrambled_net = odd.copy(), net.copy()
            unknown = [k for k in range(9) if k not in known]
            scrambled[unknown] = rng.integers(0, 256, (len(unknown), 9, 11), dtype=np.uint8)
            scrambled_net[unknown] = 0
            after = [linear.Planes(even, scrambled, scrambled_net).feature(ft, ch // 3, mean) for ft in feats]
            assert all(np.array_equal(a, b) for a, b in zip(before, after)), ch
        known.update(rnd)


def test_features_at_sampled_positions_and_means_in_64ths_are_the_same_values():
    """The encoder samples features at some positions only (``feature_at``) and the loop keeps the
    network means as uint16 64ths: both give exactly the values of the whole planes."""
    rng = np.random.default_rng(2)
    even = rng.integers(0, 256, (3, 12, 10), dtype=np.uint8)
    odd = rng.integers(0, 256, (9, 12, 10), dtype=np.uint8)
    net = np.round(rng.uniform(0, 255, (9, 12, 10)) * 64).astype(np.float32) / 64
    net64 = np.rint(net * linear.MEAN_UNITS).astype(np.uint16)
    rows = (3, 9)
    flat = np.sort(rng.choice(6 * 10, 25, replace=False))
    for ch in range(9):
        known = frozenset(k for k in range(9) if k != ch)
        mean = net[ch, 3:9]
        plain, in_64ths = linear.Planes(even, odd, net, rows), linear.Planes(even, odd, net64, rows)
        for ft in linear.features(3, ch, known):
            whole = plain.feature(ft, ch // 3, mean)
            assert np.array_equal(whole, in_64ths.feature(ft, ch // 3, mean)), (ch, ft)
            assert np.array_equal(whole.reshape(-1)[flat], in_64ths.feature_at(ft, ch // 3, mean, flat)), (ch, ft)


def test_weighted_sum_is_exact():
    rng = np.random.default_rng(1)
    even = rng.integers(0, 256, (3, 6, 7), dtype=np.uint8)
    odd = rng.integers(0, 256, (9, 6, 7), dtype=np.uint8)
    net = np.round(rng.uniform(0, 255, (9, 6, 7)) * 64).astype(np.float32) / 64
    planes = linear.Planes(even, odd, net)
    feats = linear.features(3, 8, frozenset({6, 7}))
    weights = tuple(int(v) for v in rng.integers(-linear.WEIGHT_BOUND, linear.WEIGHT_BOUND + 1, len(feats)))
    got = linear.weighted_sum(planes, feats, 2, net[8], weights)
    exact = sum(Fraction(a, linear.WEIGHT_DENOM) * np.vectorize(Fraction)(planes.feature(ft, 2, net[8]))
                for ft, a in zip(feats, weights))
    assert np.array_equal(got, exact.astype(np.float64))


def test_fit_recovers_a_linear_relation():
    rng = np.random.default_rng(2)
    feats = rng.normal(0, 10, (4, 30000))
    mean = np.full(30000, 120.0)
    x = np.round(mean + 0.5 * feats[0] - 0.25 * feats[2] + rng.laplace(0, 1.0, 30000))
    w = linear.fit(feats, x, mean, np.full(30000, 3.0))
    assert abs(w[0] - 128) <= 3 and abs(w[2] + 64) <= 3 and abs(w[1]) <= 3 and abs(w[3]) <= 3
    assert not linear.fit(feats[:, :10], x[:10], mean[:10], np.ones(10)).any()  # too few values: no weights


def test_weights_round_trip_through_the_range_coder():
    weights = [(0,) * 12, tuple(range(-12, 13)), (linear.WEIGHT_BOUND, -linear.WEIGHT_BOUND) + (0,) * 36]
    enc = LevelEncoder("laplace")
    linear.write(enc, weights)
    assert linear.read(LevelDecoder(enc.payload(), "laplace"), [12, 25, 38]) == weights


@pytest.mark.parametrize("c", [1, 3, 4])
def test_version_3_is_lossless_and_uses_shared_detail(c, interp):
    img = shared_detail(*SIZE, c)
    v3, v2 = encode(img, interp, V3), encode(img, interp, EncodeSettings(version=2))
    assert parse_header(v3)[0].version == 3
    assert np.array_equal(decode(v3, interp)[-1].image, img)
    if c >= 3:  # green's detail predicts red's and blue's
        assert len(v3) < 0.95 * len(v2), (len(v3), len(v2))


def test_version_3_with_odd_sizes_is_lossless(interp):
    """Odd sizes put padding in the grid: features read it the same way on both sides."""
    for h, w in ((151, 141), (149, 160)):
        img = shared_detail(h, w, 3, seed=h)
        assert np.array_equal(decode(encode(img, interp, V3), interp)[-1].image, img)


@pytest.mark.parametrize("d", [1, 3])
def test_version_3_near_lossless_stays_within_d(d, interp):
    img = shared_detail(*SIZE, 3, seed=3)
    data = encode(img, interp, EncodeSettings(max_error=d, version=3))
    out = decode(data, interp)[-1].image
    assert np.abs(out.astype(int) - img.astype(int)).max() <= d
    assert len(data) < len(encode(img, interp, EncodeSettings(max_error=d, version=2)))


@pytest.mark.parametrize("grid", [True, False])
def test_the_compiled_weighted_sum_is_the_numpy_definition_bit_for_bit(grid):
    """``weighted_sum`` (numba) against ``_weighted_sum_numpy`` (feature by feature), every kind of
    feature (own, detail, two residuals: blue of phase (1,0)), on means on the codec's 1/64 grid
    and on arbitrary floats (where only the same order of operations gives the same bits)."""
    rng = np.random.default_rng(7)
    even = rng.integers(0, 256, (3, 40, 53), dtype=np.uint8)
    odd = rng.integers(0, 256, (9, 40, 53), dtype=np.uint8)
    net = rng.uniform(0, 255, (9, 40, 53))
    net = np.round(net * 64) / 64 if grid else net
    planes = linear.Planes(even, odd, net.astype(np.float32) if grid else net, rows=(5, 31), live=frozenset({5}))
    for ch, known in ((5, frozenset({0, 1, 2, 3, 4, 6, 7, 8})), (8, frozenset({6, 7})), (1, frozenset({6, 7, 8}))):
        feats = linear.features(3, ch, known)
        assert ch != 5 or sum(f.kind == "resid" for f in feats) == 2
        weights = tuple(int(v) for v in rng.integers(-linear.WEIGHT_BOUND, linear.WEIGHT_BOUND + 1, len(feats)))
        weights = tuple(0 if k % 5 == 0 else a for k, a in enumerate(weights))  # some unused
        mean = net[ch, 5:31].astype(np.float64)
        want = linear._weighted_sum_numpy(planes, feats, ch // 3, mean, weights)
        assert np.array_equal(linear.weighted_sum(planes, feats, ch // 3, mean, weights), want), ch


def test_the_compiled_sample_is_each_feature_at_its_positions():
    """``sample`` (numba) against ``Planes.feature_at`` feature by feature, every kind of feature,
    positions on the strip's edges included."""
    rng = np.random.default_rng(8)
    even = rng.integers(0, 256, (3, 40, 53), dtype=np.uint8)
    odd = rng.integers(0, 256, (9, 40, 53), dtype=np.uint8)
    net = (np.round(rng.uniform(0, 255, (9, 40, 53)) * 64) / 64).astype(np.float32)
    planes = linear.Planes(even, odd, net, rows=(5, 31), live=frozenset({5}))
    flat = np.concatenate([[0, 52, 26 * 53 - 1], rng.choice(26 * 53, 300, replace=False)])
    for ch, known in ((5, frozenset({0, 1, 2, 3, 4, 6, 7, 8})), (8, frozenset({6, 7})), (1, frozenset({6, 7, 8}))):
        feats = linear.features(3, ch, known)
        mean = net[ch, 5:31].astype(np.float64)
        want = np.stack([planes.feature_at(f, ch // 3, mean, flat) for f in feats])
        assert np.array_equal(linear.sample(planes, feats, ch // 3, mean, flat), want), ch
