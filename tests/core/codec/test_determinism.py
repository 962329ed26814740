"""Decoding reproduces the encoder's predictions bit for bit, whatever the thread count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hidenet_core import EncodeSettings, decode, encode, load_model
from tests.conftest import smooth_image


@pytest.mark.parametrize("settings", [EncodeSettings(), EncodeSettings(max_error=2, generative_levels=1)])
@pytest.mark.parametrize("model_name", ["default", "interp"])
def test_decode_with_one_thread_matches_encode_with_two(model_name, settings):
    model = load_model(model_name)
    image = smooth_image(96, 128, 3, seed=7)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        data = encode(image, model, settings)
        torch.set_num_threads(1)
        levels = decode(data, model)  # every level's CRC is checked against the encoder's
        again = encode(image, model, settings)
    finally:
        torch.set_num_threads(before)
    assert again == data
    if settings.max_error == 0 and settings.generative_levels == 0:
        assert np.array_equal(levels[-1].image, image)
