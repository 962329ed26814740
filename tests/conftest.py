"""Shared fixtures: small deterministic images and the fast non-learned predictor."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from hidenet_core.predictors import load_model


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="session")
def interp():
    return load_model("interp")


def smooth_image(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """A photograph-like test image: smooth gradients plus texture and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 128 + 60 * np.sin(xx / 7.0 + seed) * np.cos(yy / 11.0) + 20 * np.sin((xx + yy) / 3.0)
    img = base[:, :, None] + rng.normal(0, 6, (h, w, c)) + np.arange(c)[None, None, :] * 15
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def image_rgb():
    return smooth_image(37, 53, 3)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size its data does not have (a decompression bomb's header)."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(buf, "PNG")
    real = buf.getvalue()
    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    patched = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return real[:8] + patched + real[8 + 25 :]
