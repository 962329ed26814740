import numpy as np
import pytest
import skimage.data
from skimage.metrics import structural_similarity

from hidenet_core.metrics import mse, psnr, ssim


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_ssim_matches_scikit_image(name):
    a = getattr(skimage.data, name)()
    b = np.clip(a + np.random.default_rng(0).normal(0, 8, a.shape), 0, 255).astype(np.uint8)
    ref = structural_similarity(a, b, channel_axis=2 if a.ndim == 3 else None, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255)
    assert ssim(a, b) == pytest.approx(ref, abs=1e-5)
    assert ssim(a, a) == pytest.approx(1.0)


def test_psnr():
    a = np.zeros((4, 4, 3), np.uint8)
    assert psnr(a, a) == float("inf")
    assert psnr(a, a + 1) == pytest.approx(48.1308, abs=1e-3)
    assert 0.5 < ssim(a[:2, :3], a[:2, :3] + 1) < 1.0  # smaller than the window


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(np.zeros((2, 2)), np.zeros((2, 3)))


@pytest.mark.parametrize("size", [1, 5, 1 << 15, (1 << 15) + 7, 300_001])
def test_mse_of_bytes_is_exact_in_integers(size):
    """uint8 images take an integer path (``sse_uint8``): the same value as float64, also at the
    extremes, where an int32 sum of more than 2^15 squares would overflow."""
    rng = np.random.default_rng(size)
    a, b = rng.integers(0, 256, size, dtype=np.uint8), rng.integers(0, 256, size, dtype=np.uint8)
    d = a.astype(np.float64) - b
    assert mse(a, b) == float(np.mean(d * d))
    ones, zeros = np.full(size, 255, np.uint8), np.zeros(size, np.uint8)
    assert mse(ones, zeros) == 255.0**2 and mse(zeros, ones) == 255.0**2
