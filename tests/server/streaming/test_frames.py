"""Rendered frames: what the server sends for a decoded level."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hidenet_core import EncodeSettings, ProgressiveDecoder, encode, load_model, psnr
from hidenet_core.codec.container import stream_info
from hidenet_core.display import display_filter
from server.streaming.frames import FrameSpec, render_frame
from tests.conftest import smooth_image
from tests.server.conftest import frame_pixels


@pytest.mark.parametrize("preview", [True, False])
def test_frames_with_predicted_levels_are_sent_with_the_display_filter(preview):
    model = load_model("interp")
    original = smooth_image(70, 90, 3)  # levels 0 to 2
    data = encode(original, model, EncodeSettings(generative_levels=2, version=5))
    decoder = ProgressiveDecoder(model)
    last = decoder.feed(data)[-1]
    frame = render_frame(decoder.reconstruction, last.level, original, FrameSpec(preview))
    # level 0, decoded: the exact pixels of level 2 among two predicted levels, as the viewer shows them
    shown = frame_pixels(frame.data)
    assert np.array_equal(shown, display_filter(last.image, 2)) and not np.array_equal(shown, last.image)
    assert frame.psnr == pytest.approx(psnr(shown, original), abs=1e-3)


def test_a_preview_from_level_2_is_sent_with_its_finest_level_interpolated():
    model = load_model("interp")
    original = smooth_image(70, 90, 3)  # levels 0 to 2
    data = encode(original, model, EncodeSettings(version=5))
    decoder = ProgressiveDecoder(model)
    [first] = decoder.feed(data[: stream_info(data)["chunks"][0]["total_bytes"]])  # the base, level 2
    assert first.level == 2
    shown = frame_pixels(render_frame(decoder.reconstruction, first.level, original, FrameSpec(preview=True)).data)
    assert np.array_equal(shown, display_filter(decoder.preview(), 2, interpolate_finest=True))


def test_a_lossless_frame_stays_exact():
    model = load_model("interp")
    original = smooth_image(70, 90, 3)
    decoder = ProgressiveDecoder(model)
    levels = decoder.feed(encode(original, model, EncodeSettings(version=5)))
    frame = render_frame(decoder.reconstruction, levels[-1].level, original, FrameSpec(preview=True))
    assert np.array_equal(frame_pixels(frame.data), original) and frame.psnr is None


def test_a_layered_stream_refining_a_coarse_level_has_nothing_predicted_to_filter():
    """Once a layered stream's first layer has reached level 0, a later chunk refining level 2
    leaves no level predicted: its preview frame is the decoder's, unfiltered."""
    model = load_model("interp")
    original = smooth_image(140, 180, 3)  # levels 0 to 3
    data = encode(original, model, EncodeSettings(version=6))
    chunks = stream_info(data)["chunks"]
    refining = next(i for i, c in enumerate(chunks) if c["layer"] == 1 and c["level"] >= 2)
    decoder = ProgressiveDecoder(model)
    last = decoder.feed(data[: chunks[refining]["total_bytes"]])[-1]
    assert last.level > 0 and decoder.current_level == 0
    shown = frame_pixels(render_frame(decoder.reconstruction, last.level, original, FrameSpec(preview=True)).data)
    assert np.array_equal(shown, decoder.preview())


def test_a_frame_for_a_smaller_display_is_predicted_only_to_its_level_and_shrunk_to_fit():
    """A viewer showing 40x30 pixels of a 180x140 image gets a preview predicted down to the
    coarsest level at least that large (level 2, 45x35), shrunk to fit, measured on that grid."""
    model = load_model("interp")
    original = smooth_image(140, 180, 3)  # levels 0 to 3
    decoder = ProgressiveDecoder(model)
    last = decoder.feed(encode(original, model))[-1]
    frame = render_frame(decoder.reconstruction, last.level, original, FrameSpec(preview=True, size=(40, 30)))
    assert (frame.width, frame.height, frame.level) == (39, 30, 2) and frame_pixels(frame.data).shape == (30, 39, 3)
    assert frame.psnr is None  # lossless: level 2's grid is exact
    full = render_frame(decoder.reconstruction, last.level, original, FrameSpec(preview=True, size=(500, 500)))
    assert (full.width, full.height, full.level) == (180, 140, 0)  # never enlarged


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_a_shrunk_frame_is_a_jpeg_close_to_the_shrunk_picture_and_an_exact_one_a_png(channels):
    model = load_model("interp")
    original = smooth_image(140, 180, channels)
    decoder = ProgressiveDecoder(model)
    last = decoder.feed(encode(original, model))[-1]
    shrunk = render_frame(decoder.reconstruction, last.level, original,
                          FrameSpec(preview=True, size=(80, 60)))  # level 1 (90x70), shrunk
    exact = render_frame(decoder.reconstruction, last.level, original, FrameSpec(preview=True, size=(500, 500)))
    assert exact.format == "png" and np.array_equal(frame_pixels(exact.data), original)
    if channels == 4:  # JPEG has no alpha: a PNG still
        assert shrunk.format == "png" and shrunk.data.startswith(b"\x89PNG")
        return
    assert shrunk.format == "jpeg" and shrunk.data.startswith(b"\xff\xd8") and (shrunk.width, shrunk.height) == (77, 60)
    # a lossless stream's level 1 is the original's grid: the frame is that, shrunk, within JPEG q95's error
    grid = original[::2, ::2]
    grid = Image.fromarray(grid[:, :, 0] if channels == 1 else grid)
    picture = np.asarray(grid.resize((77, 60), Image.Resampling.LANCZOS)).reshape(60, 77, channels)
    assert psnr(frame_pixels(shrunk.data), picture) > 35  # this small noisy image: 37 dB


@pytest.mark.parametrize(("height", "width", "size", "level"), [
    (2848, 4272, (1280, 800), 1),  # a landscape photo shown 1200x800 comes from level 1 (2136x1424)
    (3088, 2056, (1280, 800), 1),  # a portrait one is shown 533x800: level 1 (1544x1028), not level 0
    (3088, 2056, (400, 1300), 2),  # shown 400x601 (width-bound): level 2 (772x514), level 3 is 386x257
    (768, 512, (1280, 800), 0),  # smaller than the stage: full size
    (768, 512, None, 0),
    (8000, 8000, (500, 500), 4),  # level 4 is 500x500, exactly the shown size
    (1, 1, (1280, 800), 0),  # a one-pixel image (this looped for ever, on the event loop)
    (1, 1, (1, 1), 0),
    (512, 512, (1, 1), 9),  # shown as one pixel: the 1x1 level
    (3, 1, (1, 1), 2),
])
def test_the_frame_level_is_the_coarsest_at_least_as_large_as_the_image_shown(height, width, size, level):
    from server.streaming.frames import frame_level

    assert frame_level(height, width, size) == level


@pytest.mark.parametrize(("height", "width", "step"),
                         [(512, 768, 1), (1028, 1544, 2), (1424, 2136, 4), (2848, 4272, 8)])
def test_a_large_frame_has_its_ssim_measured_on_a_coarser_grid_of_at_most_2_19_pixels(height, width, step):
    from hidenet_core.metrics import SSIM_PIXELS, ssim_step

    def pixels(s: int) -> int:
        return -(-height // s) * -(-width // s)

    assert ssim_step(height, width) == step
    assert pixels(step) <= SSIM_PIXELS and (step == 1 or pixels(step // 2) > SSIM_PIXELS)



@pytest.mark.parametrize("model_name", ["interp", "default"])
def test_the_start_up_warm_up_encodes_and_renders_a_tiny_frame(model_name):
    from hidenet_core import load_model
    from server.streaming.frames import warm_up

    assert 0 < warm_up(load_model(model_name)) < 30


@pytest.mark.parametrize(("size", "most"), [((160, 120), 5000), (None, None)])
def test_a_displayed_frame_predicts_a_bounded_number_of_pixels_with_the_model(monkeypatch, size, most):
    """A frame for a display predicts with the model at most ``MODEL_FRAME_BUDGET`` pixels (the
    coarser levels), bilinear beyond: a 1.4 MP photograph's frames took 1.8 s each with the model
    on every level. A "full" frame (fetch, the bench) uses the model for every level."""
    import hidenet_core.codec.reconstruction as reconstruction
    from server.streaming import frames

    monkeypatch.setattr(frames, "MODEL_FRAME_BUDGET", 5000)
    predicted = []
    real = reconstruction.predict_level

    def counting(predictor, even, size_, *args, **kwargs):
        predicted.append(size_[0] * size_[1])
        return real(predictor, even, size_, *args, **kwargs)

    monkeypatch.setattr(reconstruction, "predict_level", counting)
    model = load_model("interp")
    original = smooth_image(120, 160, 3)  # 19,200 pixels, levels 0 to 3
    data = encode(original, model, EncodeSettings(version=5))
    decoder = ProgressiveDecoder(model)
    [first] = decoder.feed(data[: stream_info(data)["chunks"][0]["total_bytes"]])  # the base: every finer level missing
    predicted.clear()
    render_frame(decoder.reconstruction, first.level, original, FrameSpec(preview=True, size=size))
    if most is None:
        assert sum(predicted) >= 120 * 160  # every level, level 0 included
    else:
        assert 0 < sum(predicted) <= most


@pytest.mark.parametrize(("budget", "interpolated"), [(5000, True), (10**6, False)])
def test_a_frame_level_over_the_model_budget_skips_the_step_toward_bilinear(monkeypatch, budget, interpolated):
    """The display filter's step toward bilinear is skipped where the frame level is bilinear
    already (its pixels alone over the model's budget), as for a large image."""
    from server.streaming import frames

    monkeypatch.setattr(frames, "MODEL_FRAME_BUDGET", budget)
    seen = []
    real = frames.display_frame
    monkeypatch.setattr(frames, "display_frame", lambda *a, **k: seen.append(k["interpolated"]) or real(*a, **k))
    model = load_model("interp")
    original = smooth_image(120, 160, 3)  # 19,200 pixels
    data = encode(original, model, EncodeSettings(version=5))
    decoder = ProgressiveDecoder(model)
    [first] = decoder.feed(data[: stream_info(data)["chunks"][0]["total_bytes"]])
    render_frame(decoder.reconstruction, first.level, original, FrameSpec(preview=True, size=(160, 120)))
    assert seen == [interpolated]


def test_a_race_frame_for_a_display_is_measured_at_full_size_and_sent_shrunk(monkeypatch):
    """In a race hideNet's quality is of its full-size picture, like the contenders': the frame
    sent to a 40x30 display is that picture shrunk, with the PSNR and SSIM a full-size frame has
    (the model predicts every missing level of a small image, as for a full-size frame)."""
    from hidenet_core.display import display_frame
    from server.streaming import frames

    model = load_model("default")
    original = smooth_image(140, 180, 3)  # levels 0 to 3
    data = encode(original, model, EncodeSettings(version=6))
    chunks = stream_info(data)["chunks"]
    decoder = ProgressiveDecoder(model)
    last = decoder.feed(data[: chunks[1]["total_bytes"]])[-1]  # levels 0 and 1 still predicted
    assert last.level >= 2
    race = FrameSpec(preview=True, size=(40, 30), full_quality=True)
    full = render_frame(decoder.reconstruction, last.level, original, FrameSpec(preview=True))
    shown = render_frame(decoder.reconstruction, last.level, original, race)
    assert (shown.psnr, shown.ssim, shown.level) == (full.psnr, full.ssim, 0)
    assert shown.format == "jpeg" and (shown.width, shown.height) == (39, 30)
    picture = Image.fromarray(frame_pixels(full.data)).resize((39, 30), Image.Resampling.LANCZOS)
    assert psnr(frame_pixels(shown.data), np.asarray(picture)) > 35
    displayed = render_frame(decoder.reconstruction, last.level, original, FrameSpec(preview=True, size=(40, 30)))
    assert displayed.level == 2  # outside a race: measured on the grid of the level it is shrunk from

    # an image above MODEL_FRAME_PIXELS: its missing levels bilinear, as a displayed frame's, still at full size
    monkeypatch.setattr(frames, "MODEL_FRAME_PIXELS", 1000)
    large = render_frame(decoder.reconstruction, last.level, original, race)
    view = decoder.reconstruction
    bilinear = display_frame(view.preview(0, 0, 0), view.current_level, 0, True, interpolated=True)
    assert large.level == 0 and large.psnr == pytest.approx(psnr(bilinear, original), abs=1e-3)
    assert large.psnr != full.psnr
    # a race at 1:1 (full-size frames) measures the same picture: the figures do not depend on the view
    at_1to1 = render_frame(view, last.level, original, FrameSpec(preview=True, full_quality=True))
    assert (at_1to1.psnr, at_1to1.ssim) == (large.psnr, large.ssim) and at_1to1.width == 180
