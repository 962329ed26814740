"""The display filter: what a viewer is shown of a frame with predicted levels."""

from __future__ import annotations

import numpy as np
import pytest

from hidenet_core.display import FINEST_BLEND, display_filter, display_frame, lattice_contrast, predicted_levels
from tests.conftest import smooth_image


def test_predicted_levels_of_previews_and_of_level_frames():
    # a preview from level 3 of a lossless stream: levels 2, 1, 0 predicted
    assert predicted_levels(3, 0, full_size=True) == 3
    # a stream with 2 generative levels, decoded to the end: shown full size or as level 0
    assert predicted_levels(0, 2, full_size=True) == predicted_levels(0, 2, full_size=False) == 2
    # its level 1 at its own size has one predicted level above the exact grid of level 2
    assert predicted_levels(1, 2, full_size=False) == 1
    # coded levels shown at their own size have none
    assert predicted_levels(3, 2, full_size=False) == predicted_levels(0, 0, full_size=False) == 0


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_only_the_exact_grid_moves_toward_its_neighbours(channels):
    image = smooth_image(45, 38, channels)
    for n in (0, 1):
        assert display_filter(image, n) is image
    shown = display_filter(image, 2)
    assert shown.shape == image.shape and shown.dtype == np.uint8
    grid = np.zeros(image.shape[:2], bool)
    grid[::4, ::4] = True
    assert np.array_equal(shown[~grid], image[~grid])
    # half way (n = 2) to the mean of the 8 neighbours, at an inner pixel and at a corner (edges replicated)
    x = image.astype(np.float64)
    inner = (x[3:6, 3:6].sum(axis=(0, 1)) - x[4, 4]) / 8
    assert np.array_equal(shown[4, 4], np.rint(x[4, 4] + 0.5 * (inner - x[4, 4])))
    corner = (3 * x[0, 0] + 2 * x[0, 1] + 2 * x[1, 0] + x[1, 1]) / 8
    assert np.array_equal(shown[0, 0], np.rint(x[0, 0] + 0.5 * (corner - x[0, 0])))
    # three quarters for n = 3, on every 8th pixel
    shown3 = display_filter(image, 3)
    assert np.array_equal(shown3[8, 8], np.rint(x[8, 8] + 0.75 * ((x[7:10, 7:10].sum(axis=(0, 1)) - x[8, 8]) / 8
                                                                    - x[8, 8])))


def test_the_dotted_grid_of_a_frame_with_predicted_levels_fades():
    """A frame as generative levels leave it: predictions with little texture, and exact
    pixels with much more on every 4th row and column. The filter lowers the grid's contrast
    toward a photograph's."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:96].astype(np.float64)
    smooth = 128 + 40 * np.sin(xx / 9) * np.cos(yy / 13)
    frame = np.repeat(smooth[:, :, None], 3, axis=2) + rng.normal(0, 3, (64, 96, 3))
    frame[::4, ::4] += rng.normal(0, 12, frame[::4, ::4].shape)  # the exact pixels' texture
    frame = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    before, after = lattice_contrast(frame, 2), lattice_contrast(display_filter(frame, 2), 2)
    assert before > 5 and after < before / 2
    photo = smooth_image(64, 96, 3)
    assert 0.5 < lattice_contrast(photo, 2) < 2


def test_a_preview_from_level_2_or_above_has_its_finest_level_moved_toward_bilinear():
    image = smooth_image(40, 52, 3)
    shown = display_filter(image, 2, interpolate_finest=True)
    x = image.astype(np.float64)
    for (i, j), ends in (((6, 5), [(6, 4), (6, 6)]), ((5, 6), [(4, 6), (6, 6)]),
                         ((5, 5), [(4, 4), (4, 6), (6, 4), (6, 6)])):
        target = sum(x[e] for e in ends) / len(ends)
        assert np.array_equal(shown[i, j], np.rint(x[i, j] + FINEST_BLEND * (target - x[i, j])))
    assert np.array_equal(shown[2::4, 2::4], image[2::4, 2::4])  # even pixels off the grid stay
    assert np.array_equal(display_frame(image, 2, 0, full_size=True), shown)
    assert np.array_equal(display_frame(image, 3, 0, full_size=True), display_filter(image, 3, interpolate_finest=True))
    # a decoded (generative) level 0 and a preview from level 1 carry the stream's preview filter: no interpolation
    assert np.array_equal(display_frame(image, 0, 2, full_size=True), display_filter(image, 2))
    assert display_frame(image, 1, 0, full_size=True) is image
    assert display_frame(image, 2, 0, full_size=False) is image
