"""The race's contenders: each format's repaint points checked against the library's own decoder."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from hidenet_core.tools.contenders import (
    CONTENDERS,
    EMPTY_GREY,
    ContenderError,
    Shown,
    build_timeline,
    contenders_json,
    parse_spec,
    score,
)
from hidenet_core.tools.contenders.j2k import decode_layers, layer_ends
from hidenet_core.tools.contenders.jpeg import decode_jpeg_prefix
from hidenet_core.tools.contenders.png import PASSES, encode_adam7
from hidenet_core.tools.contenders.webp import decode_webp_prefix
from hidenet_core.tools.pjpeg import decode_prefix
from tests.conftest import smooth_image


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return smooth_image(72, 96, 3, seed=5)


def pillow(data: bytes) -> np.ndarray:
    """The library's own decoding of a complete file."""
    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(img)
    return arr[:, :, None] if arr.ndim == 2 else arr


@pytest.mark.parametrize("key", list(CONTENDERS))
def test_every_contender_repaints_in_order_and_ends_with_the_whole_file(photo, key):
    spec = parse_spec(key)
    data = spec.contender.encode(photo, spec.quality)
    cuts = spec.contender.cuts(data)
    ends = [c.end for c in cuts]
    assert len(cuts) >= 2 and ends == sorted(set(ends)) and ends[-1] == len(data) and ends[0] > 0
    timeline = build_timeline(spec, photo)
    assert [f.bytes for f in timeline.frames] == ends and timeline.file_bytes == len(data)
    painted = [f.shown.rows for f in timeline.frames]
    assert painted == sorted(painted) and painted[-1] == photo.shape[0]
    assert timeline.frames[-1].psnr > timeline.frames[0].psnr + 3
    assert timeline.exact == spec.contender.lossless
    if spec.contender.lossless:
        assert np.array_equal(timeline.frames[-1].shown.image, photo)


@pytest.mark.parametrize("key", list(CONTENDERS))
@pytest.mark.parametrize("channels", [1, 4])
def test_grey_and_alpha_images_race_on_their_visible_channels(key, channels):
    pixels = smooth_image(30, 41, channels, seed=3)
    timeline = build_timeline(parse_spec(key), pixels)
    final = timeline.frames[-1]
    assert final.shown.image.shape == (30, 41, 1 if channels == 1 else 3)
    assert final.psnr > 30


def test_progressive_jpeg_cuts_are_its_scans_as_libjpeg_decodes_them(photo):
    c = CONTENDERS["pjpeg"]
    data = c.encode(photo, 90)
    cuts = c.cuts(data)
    assert len(cuts) == data.count(b"\xff\xda")  # one repaint per SOS
    for cut in cuts[:-1]:
        assert data[cut.end : cut.end + 2] in (b"\xff\xc4", b"\xff\xda")  # the next scan's tables or header
        assert np.array_equal(c.shown(data, cut.end).image, decode_prefix(data, cut.end))
    assert np.array_equal(c.shown(data, len(data)).image, pillow(data))


def test_baseline_jpeg_paints_only_rows_the_prefix_determines(photo):
    c = CONTENDERS["jpeg"]
    data = c.encode(photo, 90)
    full = pillow(data)
    cuts = c.cuts(data)
    assert len(cuts) >= 3
    for cut in cuts[:-1]:
        shown = c.shown(data, cut.end)
        assert 0 < shown.rows < full.shape[0]
        assert np.array_equal(shown.image[: shown.rows], full[: shown.rows])  # libjpeg's final rows
        # a row below them is not determined yet: libjpeg draws it otherwise from the cut prefix
        below = decode_jpeg_prefix(data[: cut.end] + b"\xff\xd9")[: shown.rows + 16]
        assert not np.array_equal(below, full[: shown.rows + 16])
    assert np.array_equal(c.shown(data, len(data)).image, full)


def test_interlaced_png_cuts_end_each_adam7_pass_exactly(photo):
    c = CONTENDERS["png"]
    data, _ = encode_adam7(photo)
    assert np.array_equal(pillow(data), photo)  # Pillow reads our interlaced PNG back exactly
    assert Image.open(io.BytesIO(data)).info.get("interlace") == 1
    cuts = c.cuts(data)
    assert [cut.label for cut in cuts] == [f"pass {p} of 7" for p in range(1, 8)]
    for p, cut in enumerate(cuts[:-1], 1):
        known = np.zeros(photo.shape[:2], bool)
        for x0, y0, dx, dy in PASSES[:p]:
            known[y0::dy, x0::dx] = True
        shown = c.shown(data, cut.end).image
        assert np.array_equal(shown[known], photo[known])  # every pixel of the passes received is exact
        bw = {1: 8, 2: 4, 3: 4, 4: 2, 5: 2, 6: 1}[p]
        assert np.array_equal(shown[0, :bw], np.repeat(photo[0, :1], bw, axis=0))  # drawn as blocks
        fewer = c.shown(data, cut.end - 1).image  # one byte less: this pass is not complete
        assert not np.array_equal(fewer, shown)
    assert np.array_equal(c.shown(data, len(data)).image, photo)


@pytest.mark.parametrize("key", ["webp", "webp-lossless"])
def test_webp_paints_the_rows_libwebp_decodes_from_the_prefix(photo, key):
    spec = parse_spec(key)
    data = spec.contender.encode(photo, spec.quality)
    full = pillow(data)  # Pillow's (libwebp's) decoding of the whole file
    cuts = spec.contender.cuts(data)
    assert len(cuts) >= 2
    for cut in cuts[:-1]:
        image, rows = decode_webp_prefix(data[: cut.end])
        assert 0 < rows < photo.shape[0]
        assert np.array_equal(image[:rows], full[:rows])
        assert spec.contender.shown(data, cut.end).rows == rows
    assert decode_webp_prefix(data[:20])[1] == 0  # headers only: nothing to paint
    assert np.array_equal(spec.contender.shown(data, len(data)).image, full)
    if key == "webp-lossless":
        assert np.array_equal(full, photo)


def test_jpeg2000_prefixes_decode_as_openjpeg_decodes_the_first_layers(photo):
    c = CONTENDERS["j2k"]
    data = c.encode(photo, None)
    ends = layer_ends(data)
    cuts = c.cuts(data)
    assert [cut.end for cut in cuts[:-1]] == ends[: len(cuts) - 1] and cuts[-1].end == len(data)
    previous = -math.inf
    for cut in cuts:
        k = len(ends) if cut.end == len(data) else ends.index(cut.end) + 1  # the layers received
        shown = c.shown(data, cut.end).image  # from the prefix alone
        assert np.array_equal(shown, decode_layers(data, k))  # OpenJPEG, whole file, first k layers
        quality = -np.abs(shown.astype(int) - photo).mean()
        assert quality >= previous
        previous = quality
    assert np.array_equal(c.shown(data, len(data)).image, photo)


def test_specs_parse_with_default_qualities_and_refuse_nonsense():
    assert parse_spec("pjpeg").key == "pjpeg:90" and parse_spec("pjpeg").label == "Progressive JPEG q90"
    assert parse_spec("webp:75").quality == 75 and parse_spec("png").key == "png"
    for bad, fragment in [("gif", "unknown contender"), ("pjpeg:0", "1..95"), ("pjpeg:x", "integer"),
                          ("pjpeg:\u00b2", "integer"), ("png:50", "takes no quality"), ("", "id string"),
                          (3, "id string")]:
        with pytest.raises(ContenderError, match=fragment):
            parse_spec(bad)
    listed = contenders_json()
    assert [c["id"] for c in listed] == list(CONTENDERS)
    assert all(c["available"] for c in listed)
    assert next(c for c in listed if c["id"] == "pjpeg")["quality"] == {"default": 90, "min": 1, "max": 95}


def test_unpainted_rows_count_as_flat_grey():
    reference = smooth_image(16, 8, 3)
    half = Shown(reference.copy(), 8)
    shown, p, _ = score(half, reference)
    expected = reference.copy()
    expected[8:] = EMPTY_GREY
    assert np.array_equal(shown.scored(), expected) and math.isfinite(p)
    assert shown.rgba()[:8, :, 3].min() == 255 and shown.rgba()[8:, :, 3].max() == 0
    assert math.isinf(score(Shown(reference, 16), reference)[1])


def test_a_timeline_measures_ssim_on_every_pixel_unless_told_the_servers_grid():
    """The bench compares contenders with hideNet's SSIM on every pixel; the server's race uses the
    strided grid of its own frames (``frame_ssim``) above 2^19 pixels."""
    from hidenet_core.metrics import frame_ssim, ssim

    pixels = smooth_image(768, 1024, 3, seed=9)  # 786,432 pixels: SSIM on every 2nd row and column
    spec = parse_spec("jpeg:40")
    plain, strided = build_timeline(spec, pixels), build_timeline(spec, pixels, measure_ssim=frame_ssim)
    last, last_strided = plain.frames[-1], strided.frames[-1]
    picture = last.shown.scored()
    assert last.ssim == ssim(picture, pixels) and last_strided.ssim == frame_ssim(picture, pixels)
    assert last.ssim != last_strided.ssim and last.psnr == last_strided.psnr
