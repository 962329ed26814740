"""Version 7's value tables: fixed Laplace tables and one rANS state per chunk (``tablecoder.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from hidenet_core.codec.container import HdnFormatError
from hidenet_core.codec.entropy import LevelDecoder, LevelEncoder, symbol_bound
from hidenet_core.codec.intervals import first_interval, refine_decode, refine_encode
from hidenet_core.codec.tablecoder import PRECISION, TableDecoder, TableEncoder, checksum, table_ids, tables


def test_the_tables_floor_is_the_entropy_coders():
    from hidenet_core.codec import tablecoder
    from hidenet_core.codec.entropy import SCALE_FLOOR

    assert tablecoder._SCALE_FLOOR == SCALE_FLOOR


def test_the_tables_are_pinned():
    """Built by integer arithmetic from exactly representable class edges: the same everywhere."""
    assert {b: checksum(b) for b in (255, 85, 4, 1)} == {
        255: 3418771126, 85: 520964820, 4: 3045884542, 1: 2720848958}


@pytest.mark.parametrize("bound", [255, 28, 4, 1])
def test_every_table_sums_to_the_precision_and_gives_every_symbol_a_slot(bound):
    ts = tables(bound)
    assert (ts.freq.sum(axis=1) == 1 << PRECISION).all()
    for i in range(0, ts.freq.shape[0], 37):
        n = ts.count[i]
        assert (ts.freq[i, :n] >= 1).all() and (ts.freq[i, n:] == 0).all()
        assert n == 2 * ts.span[i] + 1 + (ts.span[i] < bound)


def _values(n: int, seed: int, bound: int):
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-0.5, 0.5, n)
    scale = np.exp(rng.uniform(np.log(0.04), np.log(400), n))
    q = np.clip(np.round(centre + rng.laplace(0, 1, n) * scale * rng.choice([1, 30], n, p=[0.98, 0.02])),
                -bound, bound).astype(np.int64)
    return q, centre, scale


@pytest.mark.parametrize("bound", [255, 51, 4])
def test_symbols_round_trip_call_by_call_escapes_included(bound):
    calls = [_values(n, seed, bound) for seed, n in enumerate([1, 0, 5000, 37, 20000])]
    enc = TableEncoder()
    escaped = [enc.add(q, bound, c, s) for q, c, s in calls]
    assert bound == 4 or any(e.any() for e in escaped)  # the heavy tails reach the escape
    dec = TableDecoder(enc.finish())
    for (q, c, s), esc in zip(calls, escaped):
        got, got_esc = dec.take(bound, c, s)
        assert np.array_equal(got_esc, esc)
        assert np.array_equal(got[~esc], q[~esc])


def test_table_ids_follow_the_float_bits_and_mirror_negative_centres():
    ids, mirrored = table_ids(np.array([0.0, -0.25, 0.5, 0.03, 1e9]), np.array([0.04, 1.0, 1.0, 0.01, 1e9]))
    assert mirrored.tolist() == [False, True, False, False, False]
    ts = tables(255)
    assert ids.min() >= 0 and ids.max() < ts.freq.shape[0]
    assert ids[3] == ids[0] - ids[0] % 9  # a scale below the floor is in the first class, phase 0 (centre 0.03)
    assert ids[1] % 9 == 4 and ids[2] % 9 == 8  # |centre| 1/4 and 1/2: phases 4 and 8 of 1/16


def test_a_chunk_mixes_table_coded_values_with_range_coded_side_information_and_refinements():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, 30000).astype(np.uint8)
    mean = (np.round(np.clip(x + rng.laplace(0, 4, x.size), 0, 255) * 64) / 64).astype(np.float32)
    scale = np.full(x.size, 4.0, dtype=np.float32)
    enc = LevelEncoder("laplace", tables=True)
    enc.encode_params(np.array([3, -2, 0]), 8, 2.0)
    first = first_interval(enc.encode(x, mean, scale, 8), 8)
    enc.encode_params(np.array([1]), 8, 2.0)
    rec = refine_encode(enc, x, first.lo, first.hi, mean, scale, 0)
    payload = enc.payload()
    dec = LevelDecoder(payload, "laplace", tables=True)
    assert dec.decode_params(3, 8, 2.0).tolist() == [3, -2, 0]
    got = first_interval(dec.decode(mean, scale, 8), 8)
    assert np.array_equal(got.rec, first.rec)
    assert dec.decode_params(1, 8, 2.0).tolist() == [1]
    assert np.array_equal(refine_decode(dec, got.lo, got.hi, mean, scale, 0).rec, rec.rec)
    assert np.array_equal(rec.rec, x)
    # the same values through the range coder alone: the tables cost at most a few tenths of a percent
    plain = LevelEncoder("laplace")
    plain.encode_params(np.array([3, -2, 0]), 8, 2.0)
    first_plain = first_interval(plain.encode(x, mean, scale, 8), 8)
    plain.encode_params(np.array([1]), 8, 2.0)
    refine_encode(plain, x, first_plain.lo, first_plain.hi, mean, scale, 0)
    assert len(payload) < 1.01 * len(plain.payload())


def _payload() -> tuple[bytes, np.ndarray, np.ndarray]:
    x = np.arange(4000, dtype=np.int64) % 256
    mean = np.full(x.size, 128.0, dtype=np.float32)
    scale = np.full(x.size, 60.0, dtype=np.float32)
    enc = LevelEncoder("laplace", tables=True)
    enc.encode(x.astype(np.uint8), mean, scale, 0)
    return enc.payload(), mean, scale


def test_a_table_part_cut_short_is_a_format_error():
    payload, mean, scale = _payload()
    n = int(np.frombuffer(payload[:4], dtype=">u4")[0])
    cut = payload[: 4 + 4 * n + 4 + 8]  # the state and a few words only
    with pytest.raises(HdnFormatError, match="ends before its symbols"):
        LevelDecoder(cut, "laplace", tables=True).decode(mean, scale, 0)


def test_a_payload_without_its_table_part_is_a_format_error():
    payload, mean, scale = _payload()
    n = int(np.frombuffer(payload[:4], dtype=">u4")[0])
    with pytest.raises(HdnFormatError, match="no table-coded part"):
        LevelDecoder(payload[: 4 + 4 * n], "laplace", tables=True).decode(mean, scale, 0)


def test_a_range_part_longer_than_the_payload_is_a_format_error():
    payload, _, _ = _payload()
    bad = np.array([len(payload)], dtype=">u4").tobytes() + payload[4:]
    with pytest.raises(HdnFormatError, match="range-coded words"):
        LevelDecoder(bad, "laplace", tables=True)


def test_garbage_words_decode_to_symbols_within_the_bound_never_outside_the_tables():
    """A corrupted table part must not read outside its arrays: every symbol stays in the bound
    (the chunk's CRC of its values then rejects it)."""
    rng = np.random.default_rng(5)
    for bound in (255, 4):
        part = rng.integers(0, 256, 4 + 2 * 5000, dtype=np.uint8).tobytes()
        c, s = rng.uniform(-0.5, 0.5, 4000), np.exp(rng.uniform(-3, 6, 4000))
        try:
            got, _ = TableDecoder(part).take(bound, c, s)
        except ValueError:
            continue
        assert np.abs(got).max() <= bound


def test_values_of_every_max_error_round_trip_through_the_level_coder():
    rng = np.random.default_rng(11)
    x = rng.integers(0, 256, 6000).astype(np.uint8)
    mean = (np.round(rng.uniform(0, 255, x.size) * 64) / 64).astype(np.float32)
    scale = np.exp(rng.uniform(-2, 5, x.size)).astype(np.float32)
    for d in (0, 1, 2, 7, 32):
        enc = LevelEncoder("laplace", tables=True)
        rec = enc.encode(x, mean, scale, d)
        assert (np.abs(rec.astype(int) - x) <= d).all()
        assert np.array_equal(LevelDecoder(enc.payload(), "laplace", tables=True).decode(mean, scale, d), rec)
        assert symbol_bound(d) >= 1


@pytest.mark.parametrize("d", [0, 1, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_compiled_symbol_params_are_the_numpy_definition(d, dtype):
    """``entropy._params`` (numba) against ``_params_numpy``: means with halves to round (ties to
    even), outside 0..255, scales below the floor."""
    from hidenet_core.codec.entropy import _params, _params_numpy

    rng = np.random.default_rng(20 + d)
    mean = (np.round(rng.uniform(-40, 300, 5000) * 64) / 64).astype(dtype)
    mean[:8] = [0.5, 1.5, 2.5, -0.5, 254.5, 255.5, 0.0, -1.5]
    scale = (np.round(rng.uniform(0, 40, 5000) * 64) / 64).astype(dtype)
    scale[:4] = 0.0
    for got, want in zip(_params(mean, scale, d), _params_numpy(mean, scale, d)):
        assert got.dtype == want.dtype == np.float64 and np.array_equal(got, want)
