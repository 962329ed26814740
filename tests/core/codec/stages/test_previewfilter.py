"""Per-image preview filter (format version 5): features, fit, coding, generative levels, previews, bad streams."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hidenet_core import EncodeSettings, decode, encode
from hidenet_core.codec.container import (
    CHUNK_HEADER_SIZE,
    HdnFormatError,
    pack_chunk,
    parse_chunk_header,
    parse_header,
    scan_stream,
)
from hidenet_core.codec.decoder import ProgressiveDecoder, preview
from hidenet_core.codec.entropy import LevelDecoder, LevelEncoder
from hidenet_core.codec.loop import predict_level
from hidenet_core.codec.pyramid import level_shapes, split, total_levels
from hidenet_core.codec.stages import previewfilter
from hidenet_core.predictors.features import RGB_STEPS
from tests.conftest import smooth_image

SIZE = (150, 140)  # level 0 has 75 x 70 positions: it carries a filter (in chunk 1)
V4 = EncodeSettings(version=4)


def blocky(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """A picture upscaled 2x by pixel repetition: every odd pixel equals the even pixel of its
    2x2 block, which an interpolation blurs and a filter with one weight of 1 gets exactly."""
    small = smooth_image((h + 1) // 2, (w + 1) // 2, c, seed)
    return np.ascontiguousarray(small.repeat(2, 0).repeat(2, 1)[:h, :w])


def test_features_are_the_same_colour_neighbours_previewed_before():
    assert previewfilter.counts(3, RGB_STEPS) == [12] * 9  # phase (1,0) is previewed with (0,1): no (0,1) neighbours
    green_01 = previewfilter.features(3, 1, frozenset({6, 7, 8}))
    assert len(green_01) == 12 and {f.kind for f in green_01} == {"own"} and {f.colour for f in green_01} == {1}
    assert len(previewfilter.features(3, 1, frozenset())) == 6  # the diagonal not previewed yet: even pixels only
    assert len(previewfilter.features(3, 6, frozenset({7}))) == 12  # red: no cross-colour features


def test_weights_round_trip_through_the_range_coder():
    rng = np.random.default_rng(0)
    weights = [tuple(int(a) for a in rng.integers(-300, 300, 12)) if i % 3 else (0,) * 12 for i in range(9)]
    enc = LevelEncoder("laplace")
    previewfilter.write(enc, weights)
    assert previewfilter.read(LevelDecoder(enc.payload(), "laplace"), [12] * 9) == weights


def test_the_fit_finds_a_planted_filter(interp):
    img = blocky(*SIZE, 3)
    even, odd = split(img.transpose(2, 0, 1))
    fitter = previewfilter.Fitter(odd)
    predicted = predict_level(interp, even, SIZE, 0, fitter)
    plain = predict_level(interp, even, SIZE, 0)
    truth = img.transpose(2, 0, 1)
    assert np.abs(predicted.astype(int) - truth).mean() < 0.05 < 1 < np.abs(plain.astype(int) - truth).mean()
    diagonal = fitter.ordered()[6:]  # phase (1,1), previewed first from the even pixels alone
    assert all(abs(w[0] - 256) <= 2 and max(map(abs, w[1:])) <= 2 for w in diagonal), diagonal  # its block's even pixel


def test_weights_that_do_not_help_are_not_sent(interp):
    flat = np.full((*SIZE, 3), 90, np.uint8)
    even, odd = split(flat.transpose(2, 0, 1))
    fitter = previewfilter.Fitter(odd)
    predict_level(interp, even, SIZE, 0, fitter)
    assert all(not any(w) for w in fitter.ordered())


@pytest.mark.parametrize("c", [1, 3, 4])
@pytest.mark.parametrize("size", [SIZE, (151, 141)])
def test_generative_levels_rebuild_bit_for_bit(c, size, interp):
    """The decoder rebuilds filtered generative levels exactly (each chunk's CRC is checked)."""
    img = blocky(*size, c, seed=c)
    settings = EncodeSettings(generative_levels=1, max_error=(0, 2, 2, 2), version=5)
    data, v4 = encode(img, interp, settings), encode(img, interp, replace(settings, version=4))
    assert parse_header(data)[0].version == 5
    chunks, v4_chunks = scan_stream(data).chunks, scan_stream(v4).chunks
    assert chunks[-2].payload_bytes > v4_chunks[-2].payload_bytes  # level 1 also carries level 0's filter
    assert chunks[-1].payload_bytes == 0  # level 0 is generative and carries nothing
    out = decode(data, interp)[-1].image
    plain = decode(v4, interp)[-1].image
    err_v5 = np.abs(out.astype(int) - img).mean()
    assert err_v5 < 0.5 * np.abs(plain.astype(int) - img).mean(), err_v5


def test_two_generative_levels_chain_their_filters(interp):
    img = blocky(300, 280, 3)  # level 1 (75 x 70 positions) and level 0 both carry a filter
    data = encode(img, interp, EncodeSettings(generative_levels=2, version=5))
    sizes = [ch.payload_bytes for ch in scan_stream(data).chunks]
    assert sizes[-1] == 0 and 0 < sizes[-2] < 200  # level 1 is generative: only level 0's filter
    out = decode(data, interp)[-1].image
    plain = decode(encode(img, interp, replace(V4, generative_levels=2)), interp)[-1].image
    assert np.abs(out.astype(int) - img).mean() < np.abs(plain.astype(int) - img).mean()


def test_the_progressive_preview_uses_the_filter_of_the_next_level(interp):
    img = blocky(*SIZE, 3)
    data = encode(img, interp, EncodeSettings(version=5))
    layout = scan_stream(data)
    dec = ProgressiveDecoder(interp)
    dec.feed(data[: layout.chunks[-2].end])  # up to level 1
    assert dec.current_level == 1
    shown = dec.preview()
    # what the encoder's fit gives (the figure ``hidenet eval`` reports)
    shapes = level_shapes(*SIZE, total_levels(*SIZE))
    fitted = preview(interp, dec.levels[-1].image.transpose(2, 0, 1), 1, shapes,
                     previewfilter.Fitter(split(img.transpose(2, 0, 1))[1]))
    assert np.array_equal(shown, fitted)
    v4 = ProgressiveDecoder(interp)
    v4_data = encode(img, interp, V4)
    v4.feed(v4_data[: scan_stream(v4_data).chunks[-2].end])
    assert np.abs(shown.astype(int) - img).mean() < 0.1 < np.abs(v4.preview().astype(int) - img).mean()
    dec.feed(data[layout.chunks[-2].end :])
    assert np.array_equal(dec.levels[-1].image, img)  # and the stream is still lossless


def _replace_last_but_one_chunk(data: bytes, payload: bytes) -> bytes:
    """The stream with level 1's chunk payload replaced (its CRCs recomputed where they can be)."""
    layout = scan_stream(data)
    c1 = layout.chunks[-2]
    recon_crc = parse_chunk_header(data, c1.start).recon_crc
    return data[: c1.start] + pack_chunk(1, payload, recon_crc) + data[c1.end :]


def test_a_generative_chunk_with_a_filter_where_none_is_carried_is_rejected(interp):
    img = smooth_image(60, 50, 3)  # level 0 has 30 x 25 positions: too small to carry a filter
    data = encode(img, interp, EncodeSettings(levels=2, generative_levels=2, version=5))
    assert scan_stream(data).chunks[-2].payload_bytes == 0
    bad = _replace_last_but_one_chunk(data, b"\x00\x00\x00\x01")
    with pytest.raises(HdnFormatError, match="chunk for level 1 declares 4 payload bytes, at most 0 possible"):
        decode(bad, interp)


def test_a_generative_chunk_declaring_more_than_a_filter_is_rejected(interp):
    img = blocky(300, 280, 3)
    data = encode(img, interp, EncodeSettings(generative_levels=2, version=5))
    bad = _replace_last_but_one_chunk(data, bytes(4 * 4096))
    with pytest.raises(HdnFormatError, match=r"chunk for level 1 declares 16384 payload bytes, at most \d+ possible"):
        decode(bad, interp)


def test_a_filter_that_is_not_the_encoders_is_caught_by_the_level_crc(interp):
    img = blocky(300, 280, 3)
    data = encode(img, interp, EncodeSettings(generative_levels=2, version=5))
    c1 = scan_stream(data).chunks[-2]
    payload = bytearray(data[c1.start + CHUNK_HEADER_SIZE : c1.end])
    payload[0] ^= 0x40  # other weights, with a valid payload CRC
    with pytest.raises(HdnFormatError, match="level 0 decoded to an image whose CRC does not match"):
        decode(_replace_last_but_one_chunk(data, bytes(payload)), interp)
