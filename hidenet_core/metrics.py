"""Image quality metrics shared by the server, evaluation and the benchmark.

Both take (H, W, C) uint8 arrays (or float arrays in 0..255). SSIM is the standard
Wang et al. (2004) index with an 11x11 Gaussian window (sigma 1.5), computed per channel
and averaged; images smaller than the window use a window of their own size.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["psnr", "psnr_from_sse", "ssim", "frame_ssim", "ssim_step", "SSIM_PIXELS", "mse"]


def mse(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.dtype == np.uint8 and b.dtype == np.uint8 and a.size:
        return sse_uint8(a, b) / a.size
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


_ROW = 1 << 15  # values per int32 dot product: 2^15 * 255^2 < 2^31


def sse_uint8(a: np.ndarray, b: np.ndarray) -> int:
    """The exact sum of squared differences of two uint8 arrays of one shape, in integers: a
    twentieth of the time of float64 (a frame of a 12-megapixel photo is measured in 20 ms)."""
    d = np.subtract(a, b, dtype=np.int16).ravel()
    n = d.size - d.size % _ROW
    rows = d[:n].reshape(-1, _ROW).astype(np.int32)
    tail = d[n:].astype(np.int64)
    return int(np.einsum("ij,ij->i", rows, rows).sum(dtype=np.int64)) + int(tail @ tail)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for 8-bit data; ``inf`` for identical images."""
    m = mse(a, b)
    return math.inf if m == 0 else 10.0 * math.log10(255.0**2 / m)


def psnr_from_sse(sse: float, count: int, cap: float = math.inf) -> float:
    """PSNR in dB of ``count`` 8-bit values whose squared errors sum to ``sse`` (errors pooled
    over images or levels), at most ``cap`` (``inf`` for no error at all)."""
    return cap if sse == 0 else min(cap, 10.0 * math.log10(255.0**2 * count / sse))


def _gaussian(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity of two (H, W, C) images (or (H, W))."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    # centred float32: the moments below stay accurate and the filtering is fast
    x = torch.from_numpy(np.asarray(a, dtype=np.float32) - 128.0)
    y = torch.from_numpy(np.asarray(b, dtype=np.float32) - 128.0)
    if x.ndim == 2:
        x, y = x[:, :, None], y[:, :, None]
    x = x.permute(2, 0, 1)  # (C, H, W)
    y = y.permute(2, 0, 1)
    c = x.shape[0]
    size = min(11, x.shape[-1], x.shape[-2])
    g = _gaussian(size, 1.5 * size / 11)
    maps = torch.cat([x, y, x * x, y * y, x * y]).unsqueeze(0)  # (1, 5C, H, W)
    n = maps.shape[1]
    blurred = F.conv2d(F.conv2d(maps, g.view(1, 1, -1, 1).expand(n, 1, -1, 1), groups=n),
                       g.view(1, 1, 1, -1).expand(n, 1, 1, -1), groups=n)[0]
    mx, my, exx, eyy, exy = blurred.split(c)
    sxx, syy, sxy = exx - mx * mx, eyy - my * my, exy - mx * my
    mx, my = mx + 128.0, my + 128.0
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.double().mean())


#: SSIM (a Gaussian window over every pixel) is the costliest figure of a picture (0.6 s a
#: megapixel on one core): a picture of more pixels than this has it measured on the grid of
#: a coarser pyramid level (every 2nd, 4th, ... row and column), the finest with at most this
#: many. The server's frames and the race's contenders are measured alike (``frame_ssim``).
SSIM_PIXELS = 1 << 19


def ssim_step(height: int, width: int) -> int:
    """The stride of the grid a picture's SSIM is measured on (1: every pixel)."""
    step = 1
    while -(-height // step) * -(-width // step) > SSIM_PIXELS:
        step *= 2
    return step


def frame_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two (H, W, C) pictures on the grid of ``ssim_step`` (every pixel up to ``SSIM_PIXELS``)."""
    step = ssim_step(*a.shape[:2])
    return ssim(a[::step, ::step], b[::step, ::step])
