"""The encoder's reconstruction after each chunk is the decoder's: what either shows is the same.

The server renders a first view's frames from the encoder's state (``EncodedChunk.state``)
instead of decoding each chunk again, so every view of it (a preview at any level, with a
model budget or none, a region, the level under way) must equal the decoder's after the
same chunk, mid-pass, in refinement layers and at generative levels included.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hidenet_core import EncodeSettings, ProgressiveDecoder, load_model
from hidenet_core.codec import versions
from hidenet_core.codec.encoder import encode_chunks
from tests.conftest import smooth_image


@pytest.fixture
def small_strips(monkeypatch):
    """The default version with strips and parts small enough for test images (mid-pass chunks)."""
    monkeypatch.setitem(versions.FORMATS, versions.VERSION, dataclasses.replace(
        versions.FORMATS[versions.VERSION], part_positions=64, strip_positions=600, halo_rows=4))


def _views(rec) -> list[np.ndarray]:
    """Everything the server shows of a state: previews at each level with and without a model
    budget, a region across the image and the level of the latest chunk as it stands."""
    out = []
    for level in range(rec.header.levels + 1):
        out += [rec.preview(level), rec.preview(level, model_pixels=0), rec.preview(level, model_pixels=600)]
    out.append(rec.region(5, 7, 40, 30))
    return out


@pytest.mark.parametrize(("model_name", "settings", "channels"), [
    ("default", EncodeSettings(), 3),  # layered, lossless: a first layer, then the refinement
    ("interp", EncodeSettings(max_error=2, generative_levels=1), 3),  # ends at d = 2, level 0 predicted
    ("default", EncodeSettings(layers=(), max_error=1), 1),  # one layer, grey
    ("interp", EncodeSettings(version=5), 4),  # resolution only (no parts), RGBA
])
def test_the_encoders_state_after_each_chunk_shows_what_the_decoder_shows(small_strips, model_name, settings,
                                                                         channels):
    model = load_model(model_name)
    image = smooth_image(70, 58, channels, seed=4)
    decoder = ProgressiveDecoder(model)
    mid_pass = 0
    for piece in encode_chunks(image, model, settings):
        got = decoder.feed(piece.data)
        if piece.spec is None:
            assert piece.state is None and not got
            continue
        assert len(got) == 1 and piece.state is not None
        enc, dec = piece.state, decoder.reconstruction
        assert enc.current_level == dec.current_level and enc.finest_level() == dec.finest_level()
        mid_pass += enc.pass_ is not None and not enc.pass_.done
        for mine, theirs in zip(_views(enc), _views(dec), strict=True):
            assert np.array_equal(mine, theirs)
        k = piece.spec.level
        assert np.array_equal(enc.level_now(k), dec.level_now(k))
    assert decoder.done
    if settings.version == versions.VERSION:
        assert mid_pass  # the parts of a split pass were shown mid-pass


def _mid_first_pass(model, image, refinement: bool = False):
    """A decoder stopped after the first part of a first pass (or a refinement) over a level
    split in strips."""
    decoder = ProgressiveDecoder(model)
    for piece in encode_chunks(image, model, EncodeSettings()):
        decoder.feed(piece.data)
        rec = decoder.reconstruction if decoder.header is not None else None
        if (rec is not None and rec.pass_ is not None and not rec.pass_.done
                and (rec.pass_.prior is not None) == refinement):
            coded = rec.pass_.coded()
            if coded.any() and not coded.all(axis=(1, 2)).any():  # a step coded on some strips only
                return decoder
    raise AssertionError("no pass was cut between the strips of a step")


def test_a_first_pass_cut_between_strips_shows_each_value_coded_or_predicted(small_strips):
    """A part codes one step on one strip: the preview shows the values coded so far and
    predicts every other one (the strips a step has not reached yet are not shown as 0)."""
    from hidenet_core.codec.loop import predict_level
    from hidenet_core.codec.pyramid import split

    model = load_model("interp")
    image = smooth_image(120, 100, 3, seed=6)
    rec = _mid_first_pass(model, image).reconstruction
    p, coded = rec.pass_, rec.pass_.coded()
    k = p.level
    shown = split(rec.preview(k).transpose(2, 0, 1))[1]
    predicted = split(predict_level(model, p.even, p.size, k, rec.filter(k), rec.format))[1]
    valid = p.valid(0, p.even.shape[1])
    assert np.array_equal(shown[coded & valid], p.odd[coded & valid])
    assert np.array_equal(shown[~coded & valid], predicted[~coded & valid])


def test_a_region_mid_pass_is_predicted_in_the_rectangle_alone(small_strips):
    """Mid first pass, a region is the preview's pixels there (bilinear beyond the coded values
    with no model budget), computed on the rectangle and its margin only."""
    model = load_model("interp")
    image = smooth_image(120, 100, 3, seed=6)
    rec = _mid_first_pass(model, image).reconstruction
    whole = rec.preview(0, model_pixels=0)
    region = rec.region(30, 20, 50, 40, model_pixels=0)
    assert np.array_equal(region, whole[30:80, 20:60])


def test_a_region_mid_refinement_is_the_previews_pixels_there(small_strips):
    """Mid refinement every level is coded: the region is exactly the preview's pixels, the
    values the refinement has not reached yet as the layer before showed them."""
    model = load_model("interp")
    image = smooth_image(120, 100, 3, seed=6)
    rec = _mid_first_pass(model, image, refinement=True).reconstruction
    assert np.array_equal(rec.region(30, 20, 50, 40), rec.preview(0)[30:80, 20:60])
    assert np.array_equal(rec.region(0, 0, 120, 100), rec.preview(0))


def test_mid_refinement_the_levels_below_are_estimated_inside_their_intervals(small_strips):
    """While a refinement pass is under way, each level below it (and the values the pass has not
    refined yet) is shown as the truncated mean of the interpolation from the sharper level
    above: every value inside the interval the layer before left, the refined ones as coded,
    and the picture closer to the original than the layer before's values there."""
    from hidenet_core.codec.loop import estimate_level
    from hidenet_core.codec.pyramid import split
    from hidenet_core.codec.reconstruction import _INTERP

    model = load_model("default")
    image = smooth_image(120, 100, 3, seed=6)
    rec = _mid_first_pass(model, image, refinement=True).reconstruction
    p = rec.pass_
    k = rec.estimated_below()
    assert k == p.level > 0
    shown = rec.preview(0)
    # the level under way: refined values as coded, the others estimated inside their intervals
    level_k = rec.preview(k).transpose(2, 0, 1)
    odd_k = split(level_k)[1]
    coded, valid = p.coded(), p.valid(0, p.even.shape[1])
    lo, hi = p.prior.strip(list(range(odd_k.shape[0])), 0, odd_k.shape[1])
    assert np.array_equal(odd_k[coded & valid], p.odd[coded & valid])
    # (a refined value shown may lie a little outside the interval before, within the new max error of its bin)
    assert np.all((odd_k >= lo) & (odd_k <= hi) | ~valid | coded)
    assert np.array_equal(level_k, estimate_level(_INTERP, p.even, p.size, k, lo, hi, known=p.odd, coded=coded))
    # every level below: inside its intervals
    x = level_k
    for j in range(k - 1, -1, -1):
        x = rec.preview(j).transpose(2, 0, 1)
        lo, hi = rec.intervals[j].strip(list(range(3 * 3)), 0, rec.odd[j].shape[1])
        mask = rec.odd[j] == rec.odd[j]  # all positions; padding holds values inside too
        odd_j = split(x)[1]
        assert np.all((odd_j >= lo) & (odd_j <= hi) & mask)
    stale = rec.image(0).transpose(1, 2, 0)  # the layer before's values below the pass

    def mse(a):
        return float(np.mean((a.astype(float) - image.astype(float)) ** 2))

    assert mse(shown) < mse(stale)


def test_at_a_layers_end_nothing_is_estimated(small_strips):
    """The last chunk of a layer leaves the picture whose max error the layer states."""
    model = load_model("interp")
    image = smooth_image(90, 70, 3, seed=2)
    decoder = ProgressiveDecoder(model)
    chunks = list(encode_chunks(image, model, EncodeSettings(layers=((16, 8, 0), (4, 2, 0)))))
    ends = 0
    for piece, following in zip(chunks, chunks[1:] + [None], strict=True):
        decoder.feed(piece.data)
        if not decoder.levels or decoder.levels[-1].layer == 0:
            continue
        end = following is None or decoder.levels[-1].pass_done and decoder.reconstruction.pass_.level == min(
            decoder.reconstruction.odd)
        if end:
            ends += 1
            assert decoder.reconstruction.estimated_below() is None
            assert np.array_equal(decoder.preview(), decoder.reconstruction.image(0).transpose(1, 2, 0))
        else:
            assert decoder.reconstruction.estimated_below() is not None
    assert ends == 2


def test_an_estimate_budget_bounds_the_estimated_pixels(small_strips):
    """A server's frame of a large image (``estimate_pixels=0``) shows the levels below a refinement
    as they stand, at no cost; a budget that holds the level under way estimates it alone."""
    model = load_model("interp")
    image = smooth_image(120, 100, 3, seed=6)
    rec = _mid_first_pass(model, image, refinement=True).reconstruction
    k = rec.estimated_below()
    assert k is not None and k >= 1
    stale = rec.level_now(k)
    for j in range(k - 1, -1, -1):
        stale = rec._next_level(stale, j)
    assert np.array_equal(rec.preview(0, estimate_pixels=0), stale.transpose(1, 2, 0))
    assert np.array_equal(rec.region(30, 20, 50, 40, estimate_pixels=0), stale.transpose(1, 2, 0)[30:80, 20:60])
    assert not np.array_equal(rec.preview(0), stale.transpose(1, 2, 0))
    assert np.array_equal(rec.preview(0, model_pixels=0), rec.preview(0))  # the model's budget is another
    h, w = rec.shapes[k]
    assert np.array_equal(rec.preview(k, estimate_pixels=h * w), rec.preview(k))
    assert not np.array_equal(rec.preview(k, estimate_pixels=h * w - 1), rec.preview(k))


def test_mid_refinement_a_generative_level_keeps_the_model_budget(small_strips, monkeypatch):
    """Between a layer's boundaries, a level never coded (generative) is predicted as a preview
    predicts it: by the model only within ``model_pixels`` (a server's frame of a large image
    asks none), bilinear beyond."""
    import hidenet_core.codec.reconstruction as reconstruction

    calls = []
    real = reconstruction.predict_level
    monkeypatch.setattr(reconstruction, "predict_level", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    model = load_model("interp")
    image = smooth_image(120, 100, 3, seed=6)
    decoder = ProgressiveDecoder(model)
    rec = None
    for piece in encode_chunks(image, model, EncodeSettings(generative_levels=1)):
        decoder.feed(piece.data)
        rec = decoder.reconstruction if decoder.header is not None else None
        if rec is not None and rec.estimated_below() is not None:
            break
    assert rec is not None and rec.estimated_below() is not None and 0 not in rec.odd
    calls.clear()
    cheap = rec.preview(0, model_pixels=0)
    assert calls == []  # the generative level 0 bilinear
    full = rec.preview(0)
    assert calls == [rec.shapes[0]] and cheap.shape == full.shape


@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 1, 1), (3, 1, 9), (4, 8, 1), (3, 33, 20)])
def test_bilinear_upsampling_is_the_rounded_mean_of_the_even_neighbours(shape):
    """The integer upsampling gives the pixels of its definition, computed in floats: each odd pixel
    the mean of its two or four even neighbours (edges replicated), rounded half to even."""
    from hidenet_core.codec.reconstruction import upsample_bilinear

    rng = np.random.default_rng(sum(shape))
    for _ in range(40):
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        f = np.pad(x.astype(np.float64), ((0, 0), (0, 1), (0, 1)), mode="edge")
        c, h, w = shape
        want = np.empty((c, 2 * h, 2 * w), dtype=np.uint8)
        want[:, 0::2, 0::2] = x
        want[:, 0::2, 1::2] = np.rint((f[:, :h, :w] + f[:, :h, 1:]) / 2)
        want[:, 1::2, 0::2] = np.rint((f[:, :h, :w] + f[:, 1:, :w]) / 2)
        want[:, 1::2, 1::2] = np.rint((f[:, :h, :w] + f[:, :h, 1:] + f[:, 1:, :w] + f[:, 1:, 1:]) / 4)
        for size in ((2 * h, 2 * w), (2 * h - 1, 2 * w - 1) if h > 1 and w > 1 else (2 * h, 2 * w)):
            assert np.array_equal(upsample_bilinear(x, size), want[:, : size[0], : size[1]])
