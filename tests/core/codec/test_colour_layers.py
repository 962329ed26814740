"""Version 10: layers whose colours other than the lead (green) have max errors of their own.

A layer may code red and blue (and alpha) coarser than green, or leave them as the layer before
did: their coarse bins are dear before green is known exactly and nearly free after
(docs/format.md, "The colours' own max errors (version 10)"). Round trips, what each prefix
guarantees, the chunks a lead-only layer has, the preview's estimate of the coarse colours, and
every schedule the header or the encoder refuses.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hidenet_core import EncodeSettings, HdnFormatError, ProgressiveDecoder, decode, encode
from hidenet_core.codec.container import Header, pack_header, parse_header, scan_stream, stream_info
from hidenet_core.codec.plan import is_lead_step, passes_of
from hidenet_core.codec.pyramid import default_levels
from hidenet_core.predictors.interp import lead_channel
from tests.conftest import smooth_image
from tests.core.codec.test_layers import _check_every_prefix


def _halved(d: int, levels: int, final: int = 0) -> tuple[int, ...]:
    return tuple(max(d >> k, final) if k < levels else final for k in range(levels + 1))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 48), w=st.integers(1, 48), c=st.sampled_from([3, 4]), seed=st.integers(0, 99),
    final=st.integers(0, 3), first=st.integers(0, 40), colours=st.integers(0, 127), second=st.integers(0, 12),
    lead_only=st.booleans(), effort=st.sampled_from([1, 4, 5]),
)
def test_every_layer_boundary_keeps_the_larger_of_its_max_errors(interp, h, w, c, seed, final, first, colours,
                                                                 second, lead_only, effort):
    """Property: at every chunk whose bound is stated, every pixel is within the larger of the lead's
    and the colours' max errors; a lead-only layer keeps the colours; the last layer is as asked."""
    image = smooth_image(h, w, c, seed=seed)
    L = default_levels(h, w)
    lead = [_halved(first, L, final), _halved(second, L, final)]
    lead[1] = tuple(min(a, b) for a, b in zip(lead[0], lead[1]))
    cols = [_halved(max(colours, first), L, final)]
    cols.append(cols[0] if lead_only else tuple(min(a, b) for a, b in zip(cols[0], lead[1])))
    base = [(a[:L] + (final,), b[:L] + (final,)) for a, b in zip(lead, cols)]
    lead, cols = [a for a, _ in base], [b for _, b in base]
    rows = [i for i in range(2) if (lead[i], cols[i]) != ((final,) * (L + 1),) * 2
            and (i == 0 or (lead[i], cols[i]) != (lead[i - 1], cols[i - 1]))]
    try:
        settings_ = EncodeSettings(max_error=final, layers=tuple(lead[i] for i in rows),
                                   colour_layers=tuple(cols[i] for i in rows), effort=effort)
        data = encode(image, interp, settings_)
    except ValueError as exc:  # a schedule that lowers nothing, or refines a colour before its first layer ends
        assert "lowers no" in str(exc) or "refines no" in str(exc), exc
        return
    out = decode(data, interp)[-1].image
    assert np.abs(out.astype(int) - image.astype(int)).max() <= final
    _check_every_prefix(data, image, interp)


def test_a_lead_only_layer_codes_green_alone_and_keeps_red_and_blue(interp):
    image = smooth_image(150, 140, 3, seed=4)  # level 0's grid 75 x 70 >= 4096: its passes are split by step
    L = default_levels(150, 140)
    layers, colours = (_halved(32, L), _halved(8, L)), (_halved(64, L), _halved(64, L))
    data = encode(image, interp, EncodeSettings(layers=layers, colour_layers=colours))
    header = parse_header(data)[0]
    assert header.version == 10 and header.other_layers == (*colours, (0,) * (L + 1))
    second = [p for p in passes_of(header) if p.layer == 1]
    assert second and all(p.colour_d == p.prev_colour_d == 64 >> p.level for p in second)
    level0 = [p for p in second if p.level == 0][0]
    assert {part.step for part in level0.parts} == {s for s in range(4) if is_lead_step(3, s)} == {0, 2}
    # the colours keep their first-layer values until the last layer, where they are coded exactly
    dec = ProgressiveDecoder(interp)
    chunks = scan_stream(data).chunks
    pos, first_layer = 0, None
    for i, chunk in enumerate(chunks):
        dec.feed(data[pos : chunk.end])
        pos = chunk.end
        if chunk.layer == 0 and chunks[i + 1].layer == 1:
            first_layer = dec.reconstruction.odd[0].copy()
        if chunk.layer == 1 and chunks[i + 1].layer == 2:
            now = dec.reconstruction.odd[0]
            others = [ch for ch in range(9) if ch % 3 != lead_channel(3)]
            assert np.array_equal(now[others], first_layer[others])
            assert not np.array_equal(now[[1, 4, 7]], first_layer[[1, 4, 7]])
            assert chunk.max_error == 64
    assert np.array_equal(decode(data, interp)[-1].image, image)
    info = stream_info(data)
    assert info["colour_layers"] == [list(r) for r in header.other_layers]


def test_coarse_colours_cost_less_than_coding_them_with_green(interp):
    image = smooth_image(160, 150, 3, seed=9)
    L = default_levels(160, 150)
    same = encode(image, interp, EncodeSettings(layers=(_halved(32, L),)))
    coarse = encode(image, interp, EncodeSettings(layers=(_halved(32, L),), colour_layers=(_halved(127, L),)))
    assert len(coarse) < len(same)


def test_the_preview_estimates_the_coarse_colours_at_a_layer_end(interp):
    image = smooth_image(96, 100, 3, seed=2)
    L = default_levels(96, 100)
    data = encode(image, interp, EncodeSettings(layers=(_halved(32, L),), colour_layers=(_halved(96, L),)))
    first_end = [c for c in scan_stream(data).chunks if c.layer == 0][-1].end
    dec = ProgressiveDecoder(interp)
    dec.feed(data[:first_end])
    rec = dec.reconstruction
    assert rec.coarse_colours == set(range(L))
    decoded, shown = rec.image(0).transpose(1, 2, 0), dec.preview()
    assert np.array_equal(shown[..., 1], decoded[..., 1]) and not np.array_equal(shown, decoded)
    err = lambda x: float(np.mean((x.astype(float) - image) ** 2))  # noqa: E731
    assert err(shown) < err(decoded)  # the estimate follows green's detail inside the colours' intervals
    region = dec.region(10, 20, 40, 50)
    assert np.array_equal(region, shown[10:50, 20:70])
    dec.feed(data[first_end:])
    assert not dec.reconstruction.coarse_colours and np.array_equal(dec.preview(), image)


def _v10() -> Header:
    return Header(640, 480, 3, 4, (0,) * 5, 0, "interp", bytes(16), version=10,
                  layers=((32, 16, 8, 4, 0), (8, 4, 2, 1, 0), (0,) * 5), modes=((0,) * 5,) * 3,
                  other_layers=((64, 32, 16, 8, 0), (64, 32, 16, 8, 0), (0,) * 5))


def test_the_colours_schedule_round_trips_in_the_header():
    h = _v10()
    packed = pack_header(h)
    assert parse_header(packed) == (h, len(packed))
    same = dataclasses.replace(h, other_layers=())  # the colours at the lead's: the header says so, parsed as ()
    assert parse_header(pack_header(same))[0] == same


@pytest.mark.parametrize("change, message", [
    ({"version": 9}, "no max errors of the colours of their own"),
    ({"other_layers": ((64, 32, 16, 8, 0), (0,) * 5)}, "one max error per level and layer"),
    ({"other_layers": ((64, 32, 16, 8, 0), (64, 32, 16, 8, 0), (1,) * 4 + (0,))}, "not the stream's"),
    ({"other_layers": ((64, 32, 16, 8, 0), (96, 32, 16, 8, 0), (0,) * 5)}, "raise those of layer"),
    ({"other_layers": ((64, 32, 16, 8, 2), (64, 32, 16, 8, 0), (0,) * 5)}, "the base's colours"),
    ({"other_layers": ((200, 32, 16, 8, 0), (64, 32, 16, 8, 0), (0,) * 5)}, "outside 0..127"),
    ({"layers": ((32, 16, 8, 4, 0), (32, 16, 8, 4, 0), (0,) * 5),
      "other_layers": ((64, 32, 16, 8, 0), (64, 32, 16, 8, 0), (0,) * 5)}, "lowers no level"),
    ({"channels": 1}, "single-channel stream has no colours"),
])
def test_hostile_colour_schedules_are_refused_by_the_header(change, message):
    with pytest.raises(HdnFormatError, match=message):
        pack_header(dataclasses.replace(_v10(), **change))


@pytest.mark.parametrize("settings_, message", [
    (dict(version=9, layers=((32, 16, 0),), colour_layers=((64, 32, 0),)), "need version 10"),
    (dict(layers=((32, 16, 0),), colour_layers=((64, 32, 0), (64, 32, 0))), "2 rows of the colours"),
    (dict(layers=((32, 16, 0),), colour_layers=((64, 32, 4),)), "the base's colours are coded with the lead"),
    (dict(layers=((32, 16, 0), (8, 4, 0)), colour_layers=((64, 32, 0), (96, 32, 0))), "raise those of layer 0"),
    (dict(layers=((32, 16, 0), (32, 16, 0)), colour_layers=((64, 32, 0), (64, 32, 0))), "lowers no level"),
    (dict(layers=((32, 16, 0),), colour_layers=((200, 32, 0),)), "must be in 0..127"),
])
def test_bad_colour_schedules_are_refused_by_the_encoder(settings_, message, interp):
    image = smooth_image(40, 36, 3)
    with pytest.raises(ValueError, match=message):
        encode(image, interp, EncodeSettings(levels=2, **settings_))


@pytest.mark.parametrize("layers, colours", [
    (((32, 16, 0), (8, 4, 0)), ((64, 32, 0), (96, 32, 0))),  # a colour's max error raised
    (((32, 16, 0), (32, 16, 0)), ((64, 32, 0), (64, 32, 0))),  # a layer that lowers nothing
    (((32, 16, 0), (8, 20, 0)), ()),  # the lead's raised
])
def test_the_encoder_and_the_header_refuse_a_schedule_in_the_same_words(layers, colours, interp):
    """One set of rules (``schedule_problem``) for a setting and for a stream: before, each had its own
    copy, worded differently."""
    with pytest.raises(ValueError) as by_encoder:
        encode(smooth_image(40, 36, 3), interp, EncodeSettings(levels=2, layers=layers, colour_layers=colours))
    header = Header(36, 40, 3, 2, (0,) * 3, 0, "interp", bytes(16), version=10, layers=(*layers, (0,) * 3),
                    modes=((0,) * 3,) * (len(layers) + 1), other_layers=(*colours, (0,) * 3) if colours else ())
    with pytest.raises(HdnFormatError) as by_header:
        pack_header(header)
    assert str(by_header.value) == str(by_encoder.value)


def test_a_grey_image_ignores_the_colours_schedule(interp):
    image = smooth_image(40, 36, 1)
    data = encode(image, interp, EncodeSettings(levels=2, layers=((32, 16, 0),), colour_layers=((64, 32, 0),)))
    assert parse_header(data)[0].other_layers == ()
    assert np.array_equal(decode(data, interp)[-1].image, image)
