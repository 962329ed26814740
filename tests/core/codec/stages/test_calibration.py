"""Per-image calibration (format versions 2 to 5): fitted, coded, applied identically on both sides."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hidenet_core import EncodeSettings, HdnFormatError, decode, encode
from hidenet_core.codec.container import parse_header
from hidenet_core.codec.stages import calibration
from hidenet_core.codec.stages.calibration import ChannelParams
from hidenet_core.codec.versions import format_version
from tests.conftest import smooth_image

# 150 x 140: level 0 has 75 x 70 = 5250 positions, enough to be calibrated
SIZE = (150, 140)


def chroma_linked(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """An image whose blue repeats red's noise, the link the coupling is for."""
    img = smooth_image(h, w, c, seed).astype(np.int16)
    noise = np.random.default_rng(seed + 1).normal(0, 8, (h, w))
    for colour in (0, 2) if c >= 3 else (0,):
        img[:, :, colour] = img[:, :, colour] + noise
    return np.clip(img, 0, 255).astype(np.uint8)


def test_parents_are_blue_after_red_of_the_same_phase():
    assert calibration.parents(3, (6, 8)) == (-1, 0)
    assert calibration.parents(3, (0, 2, 3, 5)) == (-1, 0, -1, 2)
    assert calibration.parents(3, (7,)) == (-1,)
    assert calibration.parents(4, (8, 10, 11)) == (-1, 0, -1)  # RGBA diagonal: R, B, alpha
    assert calibration.parents(1, (2,)) == (-1,)


def test_only_large_levels_are_calibrated():
    v2 = format_version(2)
    assert v2.calibrated(64, 64) and not v2.calibrated(63, 64)
    assert not format_version(1).calibrated(64, 64)


def test_apply_stays_on_the_grid_and_identity_is_a_no_op():
    rng = np.random.default_rng(0)
    mean = np.round(rng.uniform(0, 255, 500) * 64) / 64
    scale = np.round(rng.uniform(0.1, 30, 500) * 64) / 64
    resid = rng.integers(0, 256, 500) - mean
    m, s = calibration.apply(mean.astype(np.float32), scale.astype(np.float32), ChannelParams(), resid)
    assert np.array_equal(m, mean.astype(np.float32)) and np.array_equal(s, scale.astype(np.float32))
    m, s = calibration.apply(mean.astype(np.float32), scale.astype(np.float32), ChannelParams((-3,) * 4, (7,) * 4),
                             resid)
    assert np.array_equal(m * 64, np.round(m * 64)) and np.array_equal(s * 64, np.round(s * 64))
    assert m.min() >= 0 and m.max() <= 255 and s.min() >= 1 / 16
    assert np.allclose(m, np.clip(mean + 7 / 16 * resid, 0, 255), atol=1 / 128)
    # a different coupling per scale bucket
    m, _ = calibration.apply(mean.astype(np.float32), scale.astype(np.float32), ChannelParams((0,) * 4, (0, 0, 16, 0)),
                             resid)
    b = calibration.bucket(scale)
    assert np.array_equal(m[b != 2], mean[b != 2].astype(np.float32))
    assert np.allclose(m[b == 2], np.clip(mean + resid, 0, 255)[b == 2], atol=1 / 128)


def test_scale_buckets():
    scales = np.array([0.0625, 2.484375, 2.5, 5.984375, 6.0, 14.0, 128.0])
    assert list(calibration.bucket(scales)) == [0, 0, 1, 1, 2, 3, 3]


def _channel(x: np.ndarray, parent_resid: np.ndarray | None) -> calibration.ChannelInput:
    """A version-2 channel predicted with mean 100 and scale 6 everywhere."""
    return calibration.ChannelInput(2, np.arange(x.size), np.full(x.size, 100.0), np.full(x.size, 6.0), parent_resid,
                                    None, None)


def test_fit_finds_the_coupling_and_the_scale():
    rng = np.random.default_rng(1)
    red_resid = rng.laplace(0, 6, 20000)
    x = np.round(100 + 0.5 * red_resid + rng.laplace(0, 1.5, 20000))
    p = calibration.fit(x, _channel(x, red_resid), 1, format_version(2))
    # every predicted scale is 6.0: bucket 2
    assert abs(p.coupling[2] - 8) <= 1  # weight 0.5 = 8 / 16
    assert p.scale_exp[2] < -8 + 3  # the residual is four times smaller than predicted: scale down a lot
    assert p.coupling[:2] == (0, 0) and p.scale_exp[3] == 0  # empty buckets keep the identity
    q = calibration.fit(x, _channel(x, None), 1, format_version(2))
    assert q.coupling == (0,) * 4


@pytest.mark.parametrize("c", [1, 3, 4])
def test_calibrated_streams_are_lossless_and_smaller(c, interp):
    img = chroma_linked(*SIZE, c)
    v5 = encode(img, interp, EncodeSettings(version=5))
    v4, v3, v2, v1 = (encode(img, interp, EncodeSettings(version=v)) for v in (4, 3, 2, 1))
    assert [parse_header(s)[0].version for s in (v5, v4, v3, v2, v1)] == [5, 4, 3, 2, 1]
    for data in (v5, v4, v3, v2, v1):  # the earlier versions still decode
        assert np.array_equal(decode(data, interp)[-1].image, img)
    if c >= 3:
        assert len(v2) < 0.97 * len(v1), (len(v2), len(v1))
        assert len(v3) < len(v2), (len(v3), len(v2))


def test_calibrated_near_lossless_stays_within_d(interp):
    img = chroma_linked(*SIZE, 3, seed=4)
    out = decode(encode(img, interp, EncodeSettings(max_error=3)), interp)[-1].image
    assert np.abs(out.astype(int) - img.astype(int)).max() <= 3


def test_calibrated_stream_with_the_learned_model_and_other_thread_counts():
    from hidenet_core.predictors import load_model

    model = load_model("default")
    img = chroma_linked(*SIZE, 3, seed=2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        data = encode(img, model)
        torch.set_num_threads(1)
        assert np.array_equal(decode(data, model)[-1].image, img)
    finally:
        torch.set_num_threads(threads)


def test_corrupted_parameters_fail_the_level_crc(interp):
    img = chroma_linked(*SIZE, 3)
    data = bytearray(encode(img, interp))
    levels = decode(bytes(data), interp)
    start = levels[-2].bytes_consumed  # the level-0 chunk: header (13 bytes), then the parameters first
    data[start + 13] ^= 0x40
    import zlib

    payload_len = int.from_bytes(data[start + 1 : start + 5], "big")
    data[start + 5 : start + 9] = zlib.crc32(bytes(data[start + 13 : start + 13 + payload_len])).to_bytes(4, "big")
    with pytest.raises(HdnFormatError):
        decode(bytes(data), interp)


@pytest.mark.parametrize("coupled", [False, True])
@pytest.mark.parametrize("refined", [False, True])
@pytest.mark.parametrize("shifted", [False, True])
def test_the_compiled_apply_is_the_numpy_definition_bit_for_bit(coupled, refined, shifted):
    """``apply`` (numba) against ``_apply_numpy`` (numpy and torch's snap) with every stage on and
    off: means and scales on the grid, at the clamps and beyond them, scales on the bucket edges."""
    rng = np.random.default_rng(coupled * 4 + refined * 2 + shifted)
    shape = (37, 53)
    mean = (np.round(rng.uniform(-30, 285, shape) * 64) / 64).astype(np.float32)
    scale = (np.round(rng.uniform(1 / 16, 60, shape) * 64) / 64).astype(np.float32)
    scale.flat[:3] = calibration.SCALE_EDGES
    resid = rng.integers(-255, 256, shape).astype(np.float64) - mean if coupled else None
    refinement = np.round(rng.normal(0, 30, shape) * 16384) / 16384 if refined else None
    shift = rng.integers(-40, 41, shape) if shifted else None
    params = ChannelParams(scale_exp=(-9, 3, 0, 17), coupling=(16, -7, 0, 3) if coupled else (0,) * 4,
                           linear=(5,) if refined else (), context=(2,) if shifted else ())
    got = calibration.apply(mean, scale, params, resid, refinement, shift)
    want = calibration._apply_numpy(mean, scale, params, resid, refinement, shift)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype == np.float32 and np.array_equal(g, w)
    assert (got[0] == 0).any() and (got[0] == 255).any()
