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
    """Version 6 with strips and parts small enough for test images (mid-pass chunks)."""
    monkeypatch.setitem(versions.FORMATS, 6, dataclasses.replace(versions.FORMATS[6], part_positions=64,
                                                                  strip_positions=600, halo_rows=4))


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
