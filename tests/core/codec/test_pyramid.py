import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hidenet_core.codec.pyramid import (
    default_levels,
    level_images,
    level_shapes,
    merge,
    odd_valid_mask,
    split,
    total_levels,
)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 19), w=st.integers(1, 19), c=st.sampled_from([1, 3, 4]), seed=st.integers(0, 2**31))
def test_merge_inverts_split_numpy_and_torch(h, w, c, seed):
    x = np.random.default_rng(seed).integers(0, 256, (c, h, w), dtype=np.uint8)
    even, odd = split(x)
    assert even.shape == (c, (h + 1) // 2, (w + 1) // 2)
    assert odd.shape == (3 * c, (h + 1) // 2, (w + 1) // 2)
    assert np.array_equal(merge(even, odd, (h, w)), x)
    t = torch.from_numpy(x).float()
    te, to = split(t)
    assert torch.equal(merge(te, to, (h, w)), t)


def test_phase_order_is_01_10_11():
    x = np.arange(16).reshape(1, 4, 4)
    even, odd = split(x)
    assert even[0].tolist() == [[0, 2], [8, 10]]
    assert odd[0].tolist() == [[1, 3], [9, 11]]  # phase (0, 1)
    assert odd[1].tolist() == [[4, 6], [12, 14]]  # phase (1, 0)
    assert odd[2].tolist() == [[5, 7], [13, 15]]  # phase (1, 1)


def test_valid_mask_counts_real_pixels():
    for h, w in [(1, 1), (1, 7), (5, 3), (8, 8)]:
        even_pixels = ((h + 1) // 2) * ((w + 1) // 2)
        assert odd_valid_mask(h, w, 2).sum() == 2 * (h * w - even_pixels)


def test_level_counts():
    assert default_levels(512, 768) == 5 and level_shapes(512, 768, 5)[-1] == (16, 24)
    assert default_levels(32, 32) == 0 and default_levels(33, 1) == 1
    assert total_levels(1, 1) == 0 and total_levels(1, 2) == 1 and total_levels(5, 3) == 3


def test_merge_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="odd has shape"):
        merge(np.zeros((3, 2, 2)), np.zeros((3, 2, 2)))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 70), st.integers(1, 70), st.integers(0, 2**32 - 1))
def test_each_level_is_the_image_subsampled_by_a_power_of_two_as_repeated_splits_give(c, h, w, seed):
    x = np.random.default_rng(seed).integers(0, 256, (c, h, w), dtype=np.uint8)
    levels = total_levels(h, w)
    lazy = level_images(x, levels)
    expected = x
    assert len(lazy) == levels + 1 and lazy[0] is x  # level 0 is not copied
    for k in range(1, levels + 1):
        expected = split(expected)[0]
        assert lazy[k].shape == expected.shape and np.array_equal(lazy[k], expected)
        assert lazy[k].flags.c_contiguous and lazy[k] is lazy[k]  # made once
    assert np.array_equal(lazy[-1], lazy[levels])
