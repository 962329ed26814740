"""Quality-layered streams (format version 6): layers, parts, strips and what each prefix guarantees."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hidenet_core import EncodeSettings, HdnFormatError, ProgressiveDecoder, decode, encode
from hidenet_core.codec import encoder as encoder_module
from hidenet_core.codec import versions
from hidenet_core.codec.container import (
    MAX_LAYERS,
    Header,
    pack_chunk,
    pack_header,
    parse_chunk_header,
    parse_header,
    scan_stream,
    stream_info,
)
from hidenet_core.codec.encoder import (
    DEFAULT_LAYERS,
    EFFORTS,
    EncodeCancelled,
    default_layers,
    default_schedule,
    encode_chunks,
    pass_modes,
)
from hidenet_core.codec.plan import stream_plan
from hidenet_core.codec.pyramid import default_levels, level_shapes
from hidenet_core.predictors.interp import lead_channel
from tests.conftest import smooth_image


def _check_every_prefix(data: bytes, image: np.ndarray, model) -> list:
    """Decode chunk by chunk: wherever a bound is stated, every pixel of the decoded image is
    within it; so is every pixel of the preview at each layer's end, and within twice it between
    (the levels below a refinement under way are estimated inside their intervals). At a layer's
    end the preview is the decoded image, but for the colours a layer left coarser than the lead
    (version 10), estimated inside their intervals: the lead is the decoded one."""
    layout = scan_stream(data)
    dec = ProgressiveDecoder(model)
    pos = 0
    bounds = []
    for i, chunk in enumerate(layout.chunks):
        got = dec.feed(data[pos : chunk.end])
        pos = chunk.end
        assert len(got) == 1 and got[0].max_error == chunk.max_error and got[0].layer == chunk.layer
        shown = dec.preview()
        assert shown.shape == image.shape
        if chunk.max_error is not None:
            decoded = dec.reconstruction.image(0).transpose(1, 2, 0)
            err = int(np.abs(decoded.astype(int) - image.astype(int)).max())
            assert err <= chunk.max_error, (chunk, err)
            layer_end = i == len(layout.chunks) - 1 or layout.chunks[i + 1].layer != chunk.layer
            shown_err = int(np.abs(shown.astype(int) - image.astype(int)).max())
            colours = bool(dec.reconstruction.coarse_colours)
            assert shown_err <= (1 if layer_end and not colours else 2) * chunk.max_error, (chunk, shown_err)
            if layer_end and not colours:
                assert np.array_equal(shown, decoded)
            elif layer_end:
                lead = lead_channel(image.shape[2])
                assert np.array_equal(shown[..., lead], decoded[..., lead])
            bounds.append((chunk.layer, chunk.max_error, err))
    assert dec.done
    return bounds


@pytest.mark.parametrize("c", [1, 3, 4])
@pytest.mark.parametrize("size", [(70, 90), (63, 45)])
def test_default_stream_is_three_layers_and_ends_lossless(c, size, interp):
    """Version 10's default: green within 16 (the other colours within 64), then 8 (32), each halved
    at every coarser level, then lossless; a grey image has the lead's schedule alone."""
    image = smooth_image(*size, c, seed=c)
    data = encode(image, interp)
    header = parse_header(data)[0]
    levels = default_levels(*size)

    def halved(d: int) -> tuple[int, ...]:
        return tuple(d >> k if k < levels else 0 for k in range(levels + 1))

    assert header.version == versions.VERSION and len(header.layers) == 3
    assert header.layers[:2] == tuple(halved(lead) for lead, _ in DEFAULT_LAYERS)
    assert header.colours[:2] == tuple(halved(other if c > 1 else lead) for lead, other in DEFAULT_LAYERS)
    assert header.layers[2] == header.colours[2] == (0,) * (levels + 1) == header.max_error
    assert np.array_equal(decode(data, interp)[-1].image, image)
    bounds = _check_every_prefix(data, image, interp)
    assert bounds[-1] == (2, 0, 0)  # exact at the end
    first = DEFAULT_LAYERS[0][1 if c > 1 else 0]
    assert [b for layer, b, _ in bounds if layer == 0] == [first]  # the first layer ends within 64 (grey: 16)


def test_versions_6_to_9_keep_their_default_of_one_layer_of_32(interp):
    image = smooth_image(70, 90, 3)
    header = parse_header(encode(image, interp, EncodeSettings(version=9)))[0]
    assert header.layers == ((32, 16, 0), (0, 0, 0)) and header.other_layers == ()


def test_no_layers_is_one_pass_and_smaller(interp):
    image = smooth_image(90, 70, 3)
    one = encode(image, interp, EncodeSettings(layers=()))
    two = encode(image, interp)
    assert len(parse_header(one)[0].layers) == 1 and len(one) < len(two) * 1.0  # the layers cost a little
    assert np.array_equal(decode(one, interp)[-1].image, image)


@pytest.mark.parametrize("effort", sorted(EFFORTS))
@pytest.mark.parametrize("layers", [None, ()], ids=["layered", "one pass"])
def test_every_effort_writes_its_modes_and_round_trips(effort, layers, interp):
    """An effort chooses each pass's mode, in a one-pass stream too (a single layer): effort 1
    there is the fastest stream there is."""
    image = smooth_image(90, 70, 3, seed=effort)
    data = encode(image, interp, EncodeSettings(layers=layers, effort=effort))
    header = parse_header(data)[0]
    assert header.modes == pass_modes(effort, header.levels, len(header.layers))
    assert np.array_equal(decode(data, interp)[-1].image, image)


def test_effort_1_drops_the_per_image_stages_in_one_pass(interp):
    image = smooth_image(160, 128, 3, seed=9)  # level 0's grid is large enough to carry them
    plain, staged = (encode(image, interp, EncodeSettings(layers=(), effort=e)) for e in (1, 2))
    assert parse_header(plain)[0].modes != parse_header(staged)[0].modes and len(plain) != len(staged)


def test_near_lossless_ends_at_its_max_error(interp):
    image = smooth_image(96, 80, 3, seed=4)
    data = encode(image, interp, EncodeSettings(max_error=3))
    header = parse_header(data)[0]
    assert header.layers[-1] == header.max_error == (3,) * (header.levels + 1)
    out = decode(data, interp)[-1].image
    assert np.abs(out.astype(int) - image.astype(int)).max() <= 3
    assert _check_every_prefix(data, image, interp)[-1][1] == 3


def test_three_layers_and_per_level_schedules(interp):
    image = smooth_image(100, 84, 3, seed=2)
    L = default_levels(100, 84)
    layers = ((40, 20, 10, 4, 0)[: L + 1], (9, 3, 1, 0, 0)[: L + 1])
    data = encode(image, interp, EncodeSettings(layers=layers))
    assert parse_header(data)[0].layers == (*layers, (0,) * (L + 1))
    bounds = _check_every_prefix(data, image, interp)
    assert sorted({b for _, b, _ in bounds}, reverse=True) == [40, 9, 0]


def test_generative_levels_come_after_the_layers(interp):
    image = smooth_image(120, 100, 3, seed=6)
    data = encode(image, interp, EncodeSettings(generative_levels=1, max_error=1))
    info = stream_info(data)
    last = info["chunks"][-1]
    assert (last["layer"], last["level"], last["max_error"]) == (3, 0, None)  # no bound: level 0 is predicted
    assert all(c["level"] > 0 for c in info["chunks"][:-1])
    dec = ProgressiveDecoder(interp)
    dec.feed(data)
    assert dec.done and dec.preview().shape == image.shape


@pytest.mark.parametrize("bad, message", [
    (((1, 1, 0),), "lowers no level"),
    (((0, 9, 0),), "raises a max error"),
    (tuple((9, 9, 0) for _ in range(MAX_LAYERS)), "at most 8"),
])
def test_bad_schedules_are_refused_with_a_reason(bad, message, interp):
    image = smooth_image(40, 36, 3)
    settings = EncodeSettings(levels=2, max_error=(1, 1, 0), layers=bad)
    with pytest.raises(ValueError, match=message):
        encode(image, interp, settings)


def test_layers_need_a_layered_version():
    with pytest.raises(ValueError, match="layers need version 6"):
        EncodeSettings(version=5, layers=((8,),))


def test_layered_header_round_trip_and_hostile_schedules():
    h = Header(640, 480, 3, 4, (0,) * 5, 1, "interp", bytes(16), version=6,
               layers=((32, 16, 8, 4, 0), (0,) * 5), modes=((0, 0, 1, 2, 3), (0,) * 5))
    packed = pack_header(h)
    assert parse_header(packed) == (h, len(packed))
    for field, value, message in (
        ("layers", ((0,) * 5, (8,) * 5), "last layer's max errors"),
        ("layers", ((0,) * 5, (0,) * 5), "lowers no level"),
        ("modes", ((0,) * 5,), "hold one max error and one mode"),
        ("modes", ((4, 0, 0, 0, 0), (0,) * 5), "bits undefined in format version 6"),  # UNTRUNCATED: version 9
    ):
        with pytest.raises(HdnFormatError, match=message):
            pack_header(dataclasses.replace(h, **{field: value}))
    with pytest.raises(HdnFormatError, match="has no layers"):
        pack_header(dataclasses.replace(h, version=5))
    v9 = dataclasses.replace(h, version=9, modes=((7, 4, 1, 2, 3), (0,) * 5))
    assert parse_header(pack_header(v9))[0] == v9
    with pytest.raises(HdnFormatError, match="bits undefined in format version 9"):
        pack_header(dataclasses.replace(v9, modes=((8, 0, 0, 0, 0), (0,) * 5)))


def test_the_fastest_effort_codes_its_refinements_untruncated_from_version_9(interp, monkeypatch):
    """Effort 1 sets ``PassMode.UNTRUNCATED`` from version 9 (not before): every refinement value is
    coded as a first pass codes its symbols, none under the truncated masses (``intervals._stages``
    never runs), and the stream still decodes exactly; a noisy image pays a few more bytes."""
    from hidenet_core.codec import intervals
    from hidenet_core.codec.plan import PassMode

    rng = np.random.default_rng(9)
    image = np.clip(smooth_image(64, 60, 3).astype(int) + rng.integers(-40, 41, (64, 60, 3)), 0, 255).astype(np.uint8)
    sizes = {}
    real = intervals._stages
    calls: list[int] = []

    def stages(values, d):
        calls.append(values.size)
        return real(values, d)

    monkeypatch.setattr(intervals, "_stages", stages)
    for version in (8, 9):
        calls.clear()
        data = encode(image, interp, EncodeSettings(effort=1, version=version))
        header = parse_header(data)[0]
        assert header.version == version and len(header.layers) > 1
        assert all(bool(m & PassMode.UNTRUNCATED) == (version == 9) for row in header.modes for m in row)
        assert (sum(calls) == 0) == (version == 9), calls  # version 8 codes this noise's refinements truncated
        assert np.array_equal(decode(data, interp)[-1].image, image)
        sizes[version] = len(data)
    assert sizes[8] < sizes[9] < 1.1 * sizes[8]


def test_a_chunk_out_of_place_names_what_was_expected(interp):
    data = encode(smooth_image(40, 36, 3), interp, EncodeSettings(levels=2))
    layout = scan_stream(data)
    first, second = layout.chunks[0], layout.chunks[1]
    swapped = data[: first.start] + data[second.start : second.end] + data[first.start : first.end] + data[second.end :]
    with pytest.raises(HdnFormatError, match="layer 0, level 1, part 0 where layer 0, level 2, part 0 was expected"):
        decode(swapped, interp)


def test_refinement_payload_behind_valid_crcs_is_caught_by_the_values_crc(interp):
    data = encode(smooth_image(64, 60, 3, seed=9), interp, EncodeSettings(levels=2))
    layout = scan_stream(data)
    last = layout.chunks[-1]
    size = parse_header(data)[0].chunk_header_size
    ch = parse_chunk_header(data, last.start, layered=True)
    payload = bytearray(data[last.start + size : last.end])
    payload[len(payload) // 2] ^= 0x10
    bad = data[: last.start] + pack_chunk(ch.level, bytes(payload), ch.recon_crc, True, ch.layer, ch.part)
    caught = r"layer 1, level 0, part 0 decoded to values whose CRC|cannot be decoded|outside the interval"
    with pytest.raises(HdnFormatError, match=caught):
        decode(bad, interp)


@pytest.fixture
def small_strips(monkeypatch):
    """The default version with strips and parts small enough for test images (the decoder reads the same table)."""
    small = dataclasses.replace(versions.FORMATS[versions.VERSION], part_positions=64, strip_positions=600,
                                halo_rows=4)
    monkeypatch.setitem(versions.FORMATS, versions.VERSION, small)
    return small


@pytest.mark.parametrize("model_name", ["interp", "default"])
def test_strips_and_parts_round_trip(small_strips, model_name):
    from hidenet_core import load_model

    model = load_model(model_name)
    image = smooth_image(150, 64, 3, seed=11)
    data = encode(image, model, EncodeSettings(layers=((12, 6, 2, 0, 0, 0)[: default_levels(150, 64) + 1],)))
    plan = stream_plan(parse_header(data)[0])
    level0 = [c for c in plan if c.level == 0 and c.layer == 0]
    strips = {c.pass_.parts[c.part].strips for c in level0}
    assert len(strips) > 1 and len(level0) == 4 * len(strips)  # one part per coding step and strip
    assert np.array_equal(decode(data, model)[-1].image, image)
    _check_every_prefix(data, image, model)


@pytest.mark.parametrize("layers", [None, ()], ids=["layered", "one pass"])
@pytest.mark.parametrize("effort", [1, 2, 4])
def test_a_base_with_levels_of_its_own_codes_each_in_its_own_strips(small_strips, layers, effort, interp):
    """With few levels (``--levels 0``: the whole image is the base), the base's pass also
    codes the base's own coarser levels, each in the strips of its own grid: the base's strips
    on a smaller grid failed (a strip past its last row), as did calibrated levels inside the
    base (the stages' features in the base's strip shape)."""
    image = smooth_image(150, 64, 3, seed=12)
    for levels in (0, 1):
        data = encode(image, interp, EncodeSettings(levels=levels, layers=layers, effort=effort))
        assert np.array_equal(decode(data, interp)[-1].image, image)


def test_levels_0_codes_a_calibrated_base(interp):
    image = smooth_image(256, 256, 3, seed=13)  # the base's grid and its next level's carry the stages
    data = encode(image, interp, EncodeSettings(levels=0, effort=2))
    assert np.array_equal(decode(data, interp)[-1].image, image)


def test_the_encoder_yields_the_header_then_each_chunk(interp):
    image = smooth_image(70, 60, 1)
    pieces = list(encode_chunks(image, interp))
    assert pieces[0].spec is None and all(p.spec is not None for p in pieces[1:])
    assert len(pieces) - 1 == pieces[0].chunks == len(scan_stream(b"".join(p.data for p in pieces)).chunks)
    assert [p.spec.index for p in pieces[1:]] == list(range(len(pieces) - 1))


def test_cancelling_stops_the_encoder_mid_chunk(interp):
    calls = []
    image = smooth_image(70, 60, 3)
    pieces = []
    with pytest.raises(EncodeCancelled):
        for piece in encode_chunks(image, interp, cancelled=lambda: calls.append(1) or len(calls) > 5):
            pieces.append(piece)
    assert 1 <= len(pieces) < 4 and len(calls) == 6  # asked between chunks and before every channel coded


def test_layered_encoding_is_the_same_on_one_and_two_threads():
    from hidenet_core import load_model

    model = load_model("default")
    image = smooth_image(90, 70, 3, seed=3)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = encode(image, model)
        torch.set_num_threads(2)
        two = encode(image, model)
    finally:
        torch.set_num_threads(before)
    assert one == two
    assert np.array_equal(decode(one, model)[-1].image, image)


def test_default_layers_follow_the_final_max_error():
    v9 = versions.format_version(9)
    assert default_schedule((0, 0, 0, 0), fmt=v9) == (((32, 16, 8, 0),), ())
    assert default_schedule((4, 4, 4, 4), fmt=v9) == (((32, 16, 8, 4),), ())
    assert default_schedule((40, 20, 10, 0), fmt=v9) == ((), ())  # already no finer than the default first layer
    assert default_schedule((0, 0, 0, 0), generative_levels=1, fmt=v9) == (((0, 16, 8, 0),), ())
    assert default_layers((0, 0, 0, 0)) == ((16, 8, 4, 0), (8, 4, 2, 0))
    assert default_schedule((0, 0, 0, 0)) == (((16, 8, 4, 0), (8, 4, 2, 0)), ((64, 32, 16, 0), (32, 16, 8, 0)))
    assert default_schedule((0, 0, 0, 0), channels=1) == (((16, 8, 4, 0), (8, 4, 2, 0)), ())
    # near-lossless: no level below its final d; a layer no coarser than the next is left out
    assert default_schedule((12, 12, 12, 12)) == (((16, 12, 12, 12), (12, 12, 12, 12)),
                                                  ((64, 32, 16, 12), (32, 16, 12, 12)))
    assert default_schedule((12, 12, 12, 12), channels=1) == (((16, 12, 12, 12),), ())
    assert default_schedule((40, 20, 10, 0)) == (((40, 20, 10, 0),), ((64, 32, 16, 0),))
    assert default_schedule((0, 0, 0, 0), generative_levels=1)[1] == ((0, 32, 16, 0), (0, 16, 8, 0))


def test_a_level_seen_shrunk_by_more_than_half_skips_the_middle_layer():
    """A level whose next coarser level covers a Full-HD display (a photograph of about 8 MP and more)
    is refined by the first layer and the last only; smaller images keep the whole schedule."""
    twelve = level_shapes(2828, 4243, 8)  # level 1: 2122x1414, more than 1920x1080
    assert default_schedule((0,) * 9, shapes=twelve) == (
        ((16, 8, 4, 2, 1, 0, 0, 0, 0), (16, 4, 2, 1, 0, 0, 0, 0, 0)),
        ((64, 32, 16, 8, 4, 2, 1, 0, 0), (64, 16, 8, 4, 2, 1, 0, 0, 0)))
    forty = level_shapes(4744, 8432, 9)  # levels 1 and 2 cover the display: levels 0 and 1 skip it
    assert default_schedule((0,) * 10, shapes=forty)[0][1] == (16, 8, 2, 1, 0, 0, 0, 0, 0, 0)
    crop = level_shapes(512, 768, 5)
    assert default_schedule((0,) * 6, shapes=crop) == default_schedule((0,) * 6)
    three = level_shapes(1425, 2106, 7)  # level 1 is 0.75 MP: seen about 1:1 at fit, every layer
    assert default_schedule((0,) * 8, shapes=three) == default_schedule((0,) * 8)
    assert default_schedule((0,) * 9, fmt=versions.format_version(9), shapes=twelve) == (
        ((32, 16, 8, 4, 2, 1, 0, 0, 0),), ())  # one layer before the last: nothing to skip
    # near-lossless at 12: the middle layer only refines the colours, and not at level 0
    assert default_schedule((12,) * 9, shapes=twelve) == (
        ((16, 12, 12, 12, 12, 12, 12, 12, 12), (16, 12, 12, 12, 12, 12, 12, 12, 12)),
        ((64, 32, 16, 12, 12, 12, 12, 12, 12), (64, 16, 12, 12, 12, 12, 12, 12, 12)))


def test_the_encoder_gives_the_schedule_the_image_s_size(interp, monkeypatch):
    """Encoded with the display made tiny (so that a 128x96 image's level 0 counts as large): the
    header's middle layer leaves level 0 where the first left it, and the stream decodes exactly,
    each layer within its bound."""
    monkeypatch.setattr(encoder_module, "DISPLAY_PIXELS", 64 * 48)
    image = smooth_image(96, 128, 3, seed=4)
    data = encode(image, interp)
    header, _ = parse_header(data)
    assert header.layers[1][0] == header.layers[0][0] and header.layers[1][1] < header.layers[0][1]
    assert header.colours[1][0] == header.colours[0][0]
    assert not any(c.pass_ is not None and c.layer == 1 and c.level == 0 for c in stream_plan(header))
    _check_every_prefix(data, image, interp)
    assert np.array_equal(decode(data, interp)[-1].image, image)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 48), w=st.integers(1, 48), c=st.sampled_from([1, 3, 4]), seed=st.integers(0, 99),
    final=st.integers(0, 5), first=st.integers(0, 40), second=st.integers(0, 12), three=st.booleans(),
)
def test_every_layer_boundary_keeps_its_max_error(interp, h, w, c, seed, final, first, second, three):
    """Property: at every chunk whose bound is stated, every pixel is within it; the last layer is as asked."""
    image = smooth_image(h, w, c, seed=seed)
    L = default_levels(h, w)
    layers = [tuple(max(first >> k, final) if k < L else final for k in range(L + 1))]
    if three:
        layers.append(tuple(min(max(second >> k, final), layers[0][k]) for k in range(L + 1)))
    layers = [r for i, r in enumerate(layers) if r != (final,) * (L + 1) and (i == 0 or r != layers[i - 1])]
    data = encode(image, interp, EncodeSettings(max_error=final, layers=tuple(layers)))
    out = decode(data, interp)[-1].image
    assert np.abs(out.astype(int) - image.astype(int)).max() <= final
    _check_every_prefix(data, image, interp)


def test_small_previews_and_regions_of_any_prefix(interp):
    image = smooth_image(100, 84, 3, seed=8)
    data = encode(image, interp)
    layout = scan_stream(data)
    dec = ProgressiveDecoder(interp)
    pos = 0
    for chunk in layout.chunks:
        dec.feed(data[pos : chunk.end])
        pos = chunk.end
        full = dec.preview()
        for level in (1, 2):
            small = dec.preview(level)
            assert small.shape[:2] == ((100 + 2**level - 1) >> level, (84 + 2**level - 1) >> level)
        region = dec.region(30, 20, 40, 50)
        assert region.shape == (40, 50, 3)
        if dec.current_level == 0:  # every level decoded: the region is exact
            assert np.array_equal(region, full[30:70, 20:70])
        else:  # predicted: the same but at the margin
            assert np.abs(region.astype(int) - full[30:70, 20:70]).mean() < 3
    assert np.array_equal(dec.region(90, 70, 50, 50), image[90:, 70:])  # clipped to the image


def test_a_preview_with_a_model_budget_interpolates_the_levels_beyond_it():
    """preview(level, model_pixels): the model predicts levels while their pixels fit the budget,
    the finer ones are bilinear; no budget is the model throughout; decoded levels are kept."""
    from hidenet_core.codec.reconstruction import upsample_bilinear
    from hidenet_core.predictors import load_model

    model = load_model("default")
    image = smooth_image(96, 80, 3, seed=9)  # levels 1 (48x40) and 0 above a base at level 2 (24x20)
    data = encode(image, model, EncodeSettings(version=5))
    base_end = scan_stream(data).chunks[0].end
    dec = ProgressiveDecoder(model)
    dec.feed(data[:base_end])
    assert dec.current_level == 2
    unbounded = dec.preview(0)
    assert np.array_equal(dec.preview(0, model_pixels=10**9), unbounded)
    bilinear = upsample_bilinear(upsample_bilinear(dec.reconstruction.image(2), (48, 40)), (96, 80)).transpose(1, 2, 0)
    assert np.array_equal(dec.preview(0, model_pixels=0), bilinear)  # every level interpolated
    mixed = dec.preview(0, model_pixels=48 * 40)  # level 1 by the model, level 0 bilinear
    assert not np.array_equal(mixed, unbounded) and not np.array_equal(mixed, bilinear)
    assert np.abs(mixed.astype(int) - image).mean() < np.abs(bilinear.astype(int) - image).mean() + 1
    dec.feed(data[base_end:])
    assert np.array_equal(dec.preview(0, model_pixels=0), image)  # decoded levels are never predicted


def test_bilinear_upsampling_keeps_the_even_pixels_and_averages_the_odd_ones():
    from hidenet_core.codec.reconstruction import upsample_bilinear

    x = np.array([[[0, 10], [20, 30]]], dtype=np.uint8)
    up = upsample_bilinear(x, (3, 4))
    assert up.dtype == np.uint8 and np.array_equal(up[0], [[0, 5, 10, 10], [10, 15, 20, 20], [20, 25, 30, 30]])


@pytest.mark.parametrize("model_name", ["interp", "default"])
def test_a_generative_level_predicted_in_strips_decodes(small_strips, model_name):
    """The generative level's preview filter is fitted strip by strip while the stream carries one
    fit: the encoder rebuilds the level with the fit it sends, as the decoder does (the CRC of a
    generative chunk of a level in several strips failed before)."""
    from hidenet_core import load_model

    model = load_model(model_name)
    image = smooth_image(150, 64, 3, seed=12)  # level 0's grid (75x32) is several strips of 600 positions
    data = encode(image, model, EncodeSettings(generative_levels=1))
    decoded = decode(data, model)[-1]
    assert decoded.level == 0 and decoded.image.shape == image.shape


@pytest.mark.parametrize("generative", [0, 1])
def test_a_decoder_down_to_a_level_skips_finer_chunks_and_shows_the_same(generative):
    """``finest_level``: the chunks of finer levels are read, not decoded, and the picture at that
    level's size is at every chunk what a decoder of every level shows."""
    from hidenet_core import load_model

    model = load_model("default")
    image = smooth_image(70, 90, 3, seed=21)
    data = encode(image, model, EncodeSettings(generative_levels=generative))
    layout = scan_stream(data)
    full, coarse = ProgressiveDecoder(model, images=False), ProgressiveDecoder(model, images=False, finest_level=1)
    pos = 0
    for chunk in layout.chunks:
        before = coarse.decoded_chunks
        full.feed(data[pos : chunk.end])
        got = coarse.feed(data[pos : chunk.end])
        pos = chunk.end
        assert len(got) == 1 and got[0].index == full.levels[-1].index and got[0].max_error == chunk.max_error
        assert coarse.decoded_chunks == before + (chunk.level >= 1)
        assert np.array_equal(coarse.preview(1), full.preview(1))
    assert coarse.done and 0 < coarse.decoded_chunks < len(layout.chunks)
    if not generative:
        assert np.array_equal(coarse.preview(1), image[::2, ::2])


def test_a_skipped_chunk_is_still_checked(interp):
    model = interp
    image = smooth_image(70, 90, 3, seed=22)
    data = bytearray(encode(image, model))
    chunk = next(c for c in scan_stream(bytes(data)).chunks if c.level == 0)
    data[chunk.end - 1] ^= 0x40  # a payload byte of a level-0 chunk
    with pytest.raises(HdnFormatError, match="payload CRC mismatch"):
        ProgressiveDecoder(model, finest_level=1).feed(bytes(data))


def test_a_refinement_group_beyond_its_interval_is_a_format_error(interp, monkeypatch):
    """constriction's categorical coder gives a zero-mass symbol a little probability, so a
    crafted stream can code a refinement's group past the value's interval: it is refused at
    once, as a corrupted stream, not after rows of no mass made NaNs (a numpy warning, then
    the error)."""
    import warnings

    from hidenet_core.codec import intervals

    real_stages, real_encode = intervals._stages, intervals.LevelEncoder.encode_categorical
    crafted = []

    def stages(values, d):
        out = real_stages(values, d)
        for kind, which, _ in out:
            groups = -(-values.n[which] // intervals._GROUP)
            small = np.flatnonzero(groups < groups.max())
            if kind == "group" and small.size and not crafted:
                crafted.append((int(small[0]), int(groups.max()) - 1))  # value, a group beyond its interval
        return out

    def encode_categorical(self, symbols, probabilities):
        if crafted and len(crafted[-1]) == 2:
            j, group = crafted[-1]
            symbols = symbols.copy()
            symbols[j] = group
            crafted.append(("coded",))
        return real_encode(self, symbols, probabilities)

    monkeypatch.setattr(intervals, "_stages", stages)
    monkeypatch.setattr(intervals.LevelEncoder, "encode_categorical", encode_categorical)
    rng = np.random.default_rng(1)
    image = (np.where(rng.random((32, 32, 1)) < 0.5, 2, 250) + rng.integers(0, 3, (32, 32, 1))).astype(np.uint8)
    # version 8: from version 9 the fastest effort codes no value truncated
    data = encode(image, interp, EncodeSettings(levels=1, layers=((40, 40),), effort=1, version=8))
    monkeypatch.undo()
    assert crafted and crafted[-1] == ("coded",)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning before the error
        with pytest.raises(HdnFormatError, match="outside the interval"):
            decode(data, interp)
