"""Round trips through encode/decode: lossless, near-lossless, generative, prefixes."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hidenet_core import EncodeSettings, ProgressiveDecoder, decode, encode, read_header
from hidenet_core.codec.container import stream_info
from tests.conftest import smooth_image

SAMPLES = ["astronaut", "camera", "chelsea", "coffee", "rocket", "cat", "hubble_deep_field", "immunohistochemistry"]


@pytest.mark.parametrize("name", SAMPLES)
def test_lossless_is_bit_exact_on_scikit_image_photographs(interp, name):
    image = getattr(skimage.data, name)()
    data = encode(image, interp)
    out = decode(data, interp)[-1]
    expected = image if image.ndim == 3 else image[:, :, None]
    assert out.level == 0 and np.array_equal(out.image, expected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    c=st.sampled_from([1, 3, 4]),
    seed=st.integers(0, 2**32 - 1),
    smooth=st.booleans(),
)
def test_lossless_random_sizes_and_modes(interp, h, w, c, seed, smooth):
    rng = np.random.default_rng(seed)
    image = smooth_image(h, w, c, seed % 1000) if smooth else rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    data = encode(image, interp)
    assert np.array_equal(decode(data, interp)[-1].image, image)


def test_rgba_keeps_alpha(interp):
    image = smooth_image(33, 29, 4)
    image[..., 3] = np.where(np.arange(29)[None, :] < 10, 0, 255)
    out = decode(encode(image, interp), interp)[-1].image
    assert out.shape == (33, 29, 4) and np.array_equal(out[..., 3], image[..., 3])


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 57, 1), (57, 1, 4), (2, 2, 3), (3, 5, 3)])
def test_lossless_degenerate_shapes(interp, shape):
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    levels = decode(encode(image, interp), interp)
    assert np.array_equal(levels[-1].image, image)


@pytest.mark.parametrize("d", [1, 2, 4, 8])
def test_near_lossless_error_is_at_most_d(interp, d):
    image = smooth_image(61, 47, 3, seed=d)
    lossless = len(encode(image, interp))
    data = encode(image, interp, EncodeSettings(max_error=d))
    out = decode(data, interp)[-1].image
    err = np.abs(out.astype(int) - image.astype(int)).max()
    assert err <= d
    assert len(data) < lossless


def test_near_lossless_per_level_mix(interp):
    image = smooth_image(70, 90, 3)
    settings_ = EncodeSettings(max_error=(0, 2, 4, 1), levels=3)
    data = encode(image, interp, settings_)
    levels = decode(data, interp)
    assert read_header(data).max_error == (0, 2, 4, 1)
    err = np.abs(levels[-1].image.astype(int) - image.astype(int))
    # each pixel is within the d of the level that coded it: level 0 codes the odd pixels
    odd_positions = np.ones(image.shape[:2], bool)
    odd_positions[::2, ::2] = False
    assert err[odd_positions].max() == 0
    assert np.abs(levels[-2].image.astype(int) - image[::2, ::2].astype(int)).max() <= 4
    odd1 = np.ones(levels[-2].image.shape[:2], bool)
    odd1[::2, ::2] = False
    assert err[::2, ::2][odd1].max() <= 2


def test_generative_levels_send_no_residual(interp):
    image = smooth_image(80, 64, 3)
    data = encode(image, interp, EncodeSettings(generative_levels=2, version=5))
    info = stream_info(data)
    level_1, level_0 = [lv["payload_bytes"] for lv in info["chunks"]][-2:]
    assert level_0 == 0 and 0 < level_1 <= 120  # level 1 carries only level 0's preview filter (version 5)
    v4 = stream_info(encode(image, interp, EncodeSettings(generative_levels=2, version=4)))
    assert [lv["payload_bytes"] for lv in v4["chunks"]][-2:] == [0, 0]
    out = decode(data, interp)[-1].image
    assert out.shape == image.shape
    assert np.abs(out.astype(int) - image.astype(int)).mean() < 12


def test_all_levels_generative_stores_only_the_base(interp):
    image = smooth_image(128, 96, 3)
    header_levels = 2
    data = encode(image, interp, EncodeSettings(generative_levels=header_levels, levels=header_levels, version=4))
    info = stream_info(data)
    assert info["chunks"][0]["payload_bytes"] > 0
    assert all(lv["payload_bytes"] == 0 for lv in info["chunks"][1:])
    # version 5: a generative chunk holds at most the next level's preview filter (level 0: 64 x 48 positions)
    v5 = stream_info(encode(image, interp, EncodeSettings(generative_levels=header_levels, levels=header_levels,
                                                         version=5)))
    _, level_1, level_0 = [lv["payload_bytes"] for lv in v5["chunks"]]
    assert 0 < level_1 <= 120 and level_0 == 0
    assert decode(data, interp)[-1].image.shape == image.shape


def test_every_chunk_boundary_prefix_decodes(interp):
    image = smooth_image(90, 70, 3)
    data = encode(image, interp, EncodeSettings(levels=3, version=5))
    info = stream_info(data)
    for i, lv in enumerate(info["chunks"]):
        prefix = data[: lv["total_bytes"]]
        levels = decode(prefix, interp)
        assert [x.level for x in levels] == [3, 2, 1, 0][: i + 1]
        assert levels[-1].image.shape[:2] == (lv["height"], lv["width"])
        dec = ProgressiveDecoder(interp)
        dec.feed(prefix)
        assert dec.preview().shape == image.shape


def test_progressive_decoder_byte_by_byte_matches_whole_decode(interp):
    image = smooth_image(20, 30, 3)
    data = encode(image, interp)
    dec = ProgressiveDecoder(interp)
    got = []
    for i in range(len(data)):
        got.extend(dec.feed(data[i : i + 1]))
    dec.finish()
    whole = decode(data, interp)
    assert dec.done and [g.level for g in got] == [w.level for w in whole]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(got, whole))
    assert got[-1].bytes_consumed == len(data)


def test_stop_level(interp):
    """A one-pass stream is read down to the level; a layered one to its end, the finer levels
    skipped, so the level is as the stream's last pass left it (here exact)."""
    image = smooth_image(100, 100, 1)
    data = encode(image, interp, EncodeSettings(levels=3, layers=()))
    levels = decode(data, interp, stop_level=2)
    assert [x.level for x in levels] == [3, 2]
    layered = decode(encode(image, interp, EncodeSettings(levels=3)), interp, stop_level=2)
    assert {x.level for x in layered} == {3, 2, 1, 0} and layered[-1].level == 0 and layered[-1].image.size == 0
    shown = [x.image for x in layered if x.level == 2]
    assert np.array_equal(shown[-1], image[::4, ::4]) and not np.array_equal(shown[0], shown[-1])


def test_encode_rejects_bad_settings(interp):
    image = smooth_image(40, 40, 3)
    with pytest.raises(ValueError, match="levels 9 is outside"):
        encode(image, interp, EncodeSettings(levels=9))
    with pytest.raises(ValueError, match="generative levels 3 is outside"):
        encode(image, interp, EncodeSettings(levels=2, generative_levels=3))
    with pytest.raises(ValueError, match="got 2 max-error values for 3 levels"):
        encode(image, interp, EncodeSettings(levels=2, max_error=(1, 2)))
    with pytest.raises(ValueError, match="8-bit"):
        encode(image.astype(np.uint16), interp)
    with pytest.raises(ValueError, match="C in 1, 3, 4"):
        encode(np.zeros((4, 4, 2), np.uint8), interp)
