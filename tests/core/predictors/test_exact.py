"""The learned model evaluated exactly (``predictors/exact.py``, format version 8): the same bits
whatever the CPU's kernels, close to the float model."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hidenet_core import EncodeSettings, encode, load_model
from hidenet_core.codec.pyramid import split
from hidenet_core.imageio import load_image
from hidenet_core.predictors import build
from hidenet_core.predictors.exact import _exp_table, exact_model
from hidenet_core.predictors.features import _log_table
from hidenet_core.samples import sample_paths

ROOT = Path(__file__).resolve().parents[3]
#: other kernels on this machine than its defaults: the portable ATen loops, oneDNN's SSE4.1 code,
#: MKL's conditional-reproducibility mode (the float32 model sums in other orders under them)
OTHER_KERNELS = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"}


def _crop() -> np.ndarray:
    rocket = next(p for p in sample_paths() if p.stem == "rocket")
    return load_image(rocket).pixels[100:260, 200:392]


def test_the_tables_are_pinned():
    """Built from Python's float64 log and exp, rounded to float32: a machine whose libm rounds
    one differently fails here, loudly, instead of writing streams others cannot read."""
    assert hashlib.sha256(_log_table().numpy().tobytes()).hexdigest()[:16] == "1eb0577b7a1fc054"
    assert hashlib.sha256(_exp_table().numpy().tobytes()).hexdigest()[:16] == "dc62d62ffe9d1759"


def test_the_exact_evaluation_is_close_to_the_float_model():
    model = load_model("default")
    exact = exact_model(model)
    assert exact is exact_model(model) and exact.weights_hash() == model.weights_hash()
    even, odd = split(_crop().transpose(2, 0, 1))
    e, o = torch.from_numpy(even.astype(np.float32))[None], torch.from_numpy(odd.astype(np.float32))[None]
    with torch.no_grad():
        for step in range(4):
            f, x = model(e, o, step, 0), exact(e, o, step, 0)
            assert (f.mean - x.mean).abs().mean() < 0.1 and (f.mean - x.mean).abs().max() < 2
            assert (f.scale.log() - x.scale.log()).abs().mean() < 0.1
            assert x.context is not None and x.context.shape == f.context.shape


def test_interp_is_evaluated_as_it_is():
    interp = load_model("interp")
    assert exact_model(interp) is interp


def test_a_model_without_an_exact_evaluation_is_refused_for_version_8():
    unet = build("UNetLikeLite")
    with pytest.raises(ValueError, match="no exact evaluation"):
        encode(np.zeros((16, 16, 3), np.uint8), unet, EncodeSettings())
    assert encode(np.zeros((16, 16, 3), np.uint8), unet, EncodeSettings(version=7))


_DECODE = """
import sys, numpy as np
from hidenet_core import HdnFormatError, decode, load_model
data, want = open(sys.argv[1], 'rb').read(), np.load(sys.argv[2])
try:
    got = decode(data, load_model('default'))[-1].image.reshape(want.shape)
    print('exact' if np.array_equal(got, want) else 'other pixels')
except HdnFormatError:
    print('refused')
"""


def _decoded_with_other_kernels(tmp_path: Path, data: bytes, pixels: np.ndarray) -> str:
    (tmp_path / "s.hdn").write_bytes(data)
    np.save(tmp_path / "px.npy", pixels)
    env = dict(os.environ, **OTHER_KERNELS)
    out = subprocess.run([sys.executable, "-c", _DECODE, str(tmp_path / "s.hdn"), str(tmp_path / "px.npy")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_a_version_8_stream_decodes_exactly_under_other_cpu_kernels(tmp_path):
    """What a machine of another CPU family does, on this one: version 7's float32 model is refused
    there on this machine (measured; it depends on the machine), version 8 decodes exactly."""
    pixels = _crop()
    data = encode(pixels, load_model("default"), EncodeSettings(version=8))
    assert _decoded_with_other_kernels(tmp_path, data, pixels) == "exact"


def test_each_model_writes_the_newest_version_it_can():
    from hidenet_core.codec.encoder import version_for
    from hidenet_core.codec.versions import VERSION

    assert version_for(load_model("default")) == VERSION == 10 and version_for(load_model("interp")) == VERSION
    assert version_for(build("UNetLikeLite")) == 7  # what a server started with one writes


def test_a_torch_whose_float32_convolutions_are_not_exact_is_refused(monkeypatch):
    """As under a bfloat16 math mode: the known-answer check refuses version 8 with a clear message."""
    from hidenet_core.predictors import exact

    real = exact.F.conv2d

    def rounded(*args, **kwargs):
        return real(*args, **kwargs).to(torch.bfloat16).float()

    monkeypatch.setattr(exact.F, "conv2d", rounded)
    exact._check_exact_convolutions.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="does not compute float32 convolutions of integers exactly"):
            exact.ExactModel(build("CNNP"))
    finally:
        monkeypatch.undo()
        exact._check_exact_convolutions.cache_clear()


def test_a_model_changed_in_place_gets_a_new_exact_evaluation():
    model = build("CNNP", features=8)
    first = exact_model(model)
    with torch.no_grad():
        model.head.weight.add_(0.01)
    second = exact_model(model)
    assert second is not first and second.weights_hash() == model.weights_hash() != first.weights_hash()
