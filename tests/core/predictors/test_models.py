"""The learned predictors: shapes, the view plan, the registry, checkpoints, codec round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hidenet_core import ModelMismatchError, decode, encode
from hidenet_core.predictors import (
    ARCHITECTURES,
    CNNP,
    Interp,
    LearnedPredictor,
    ModelLoadError,
    UNetLikeLite,
    build,
    coding_steps,
    load_model,
    save_checkpoint,
)
from hidenet_core.predictors.features import view_plan
from tests.conftest import smooth_image

ARCHS = [("UNetLikeLite", {"features": 8}), ("CNNP", {"features": 8, "blocks": 1})]


def perturbed(arch: str, config: dict, seed: int = 0) -> LearnedPredictor:
    """A model whose heads are not zero (a fresh model predicts exactly like Interp)."""
    torch.manual_seed(seed)
    model = build(arch, **config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("arch,config", ARCHS)
@pytest.mark.parametrize("c", [1, 3, 4])
def test_prediction_shapes_and_positive_scales(arch, config, c):
    model = perturbed(arch, config)
    h, w = 5, 7
    even = torch.rand(2, c, h, w) * 255
    odd = torch.rand(2, 3 * c, h, w) * 255
    steps = model.steps(c)
    assert sorted(k for s in steps for k in s) == list(range(3 * c))
    for step, idx in enumerate(steps):
        with torch.no_grad():
            pred = model(even, odd, step, level=step)
        assert pred.mean.shape == pred.scale.shape == (2, len(idx), h, w)
        assert torch.isfinite(pred.mean).all() and (pred.scale > 0).all()


@pytest.mark.parametrize("c", [1, 3, 4])
def test_view_plan_covers_each_step_once(c):
    for idx, tasks in zip(coding_steps(c), view_plan(c)):
        assert sorted(ch for t in tasks for ch in t.channels) == sorted(idx)


@pytest.mark.parametrize("arch,config", ARCHS)
def test_prediction_ignores_odd_values_not_yet_decoded(arch, config):
    model = perturbed(arch, config)
    even = torch.rand(1, 3, 6, 6) * 255
    odd = torch.rand(1, 9, 6, 6) * 255
    for step, _ in enumerate(model.steps(3)):
        later = [k for s in model.steps(3)[step:] for k in s]
        other = odd.clone()
        other[:, later] = torch.rand(1, len(later), 6, 6) * 255
        with torch.no_grad():
            a, b = model(even, odd, step, 0), model(even, other, step, 0)
        assert torch.equal(a.mean, b.mean) and torch.equal(a.scale, b.scale)


@pytest.mark.parametrize("arch,config", ARCHS)
def test_fresh_model_predicts_like_interp(arch, config):
    model = build(arch, **config).eval()
    even = torch.rand(1, 3, 6, 5) * 255
    odd = torch.rand(1, 9, 6, 5) * 255
    for step in range(4):
        with torch.no_grad():
            a, b = model(even, odd, step, 0), Interp()(even, odd, step, 0)
        assert torch.allclose(a.mean, b.mean, atol=1e-4)
        assert torch.allclose(a.scale, b.scale.clamp_min(1 / 16), rtol=1e-4)


def test_registry_knows_the_architectures_and_refuses_unknown_names():
    assert ARCHITECTURES["UNetLikeLite"] is UNetLikeLite and ARCHITECTURES["CNNP"] is CNNP
    with pytest.raises(ModelLoadError, match="unknown architecture 'nope'"):
        build("nope")
    with pytest.raises(ModelLoadError, match="unknown model 'nope'"):
        load_model("nope")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model("missing.pt")
    with pytest.raises(TypeError):
        build("UNetLikeLite", widht=3)


def test_missing_default_weights_fail_loudly(tmp_path, monkeypatch):
    """No silent fallback to another model: its streams would not be the default model's."""
    from hidenet_core.predictors import registry

    monkeypatch.setattr(registry, "default_weights_path", lambda: tmp_path / "default.pt")
    monkeypatch.setattr(registry, "_CACHE", {})
    with pytest.raises(ModelLoadError, match="default model's weights are missing .*--model interp"):
        load_model("default")


@pytest.mark.parametrize("arch,config", ARCHS)
def test_checkpoint_round_trip(tmp_path, arch, config):
    model = perturbed(arch, config, seed=3)
    path = tmp_path / "m.pt"
    save_checkpoint(model, path, {"note": "test"})
    loaded = load_model(str(path))
    assert type(loaded) is type(model) and loaded.config() == model.config()
    assert loaded.weights_hash() == model.weights_hash()
    even, odd = torch.rand(1, 3, 4, 4) * 255, torch.rand(1, 9, 4, 4) * 255
    with torch.no_grad():
        a, b = model(even, odd, 2, 1), loaded(even, odd, 2, 1)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.scale, b.scale)


def test_checkpoint_with_wrong_weights_is_refused(tmp_path):
    model = perturbed("UNetLikeLite", {"features": 8})
    path = tmp_path / "m.pt"
    save_checkpoint(model, path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["features"] = 12
    torch.save(ckpt, path)
    with pytest.raises(ModelLoadError, match="do not fit architecture"):
        load_model(str(path))


def test_stream_decoded_with_other_weights_fails_clearly():
    a = perturbed("CNNP", {"features": 8}, seed=1)
    b = perturbed("CNNP", {"features": 8}, seed=2)
    data = encode(smooth_image(20, 24, 3), a)
    with pytest.raises(ModelMismatchError, match="encoded with model 'CNNP'.*decode with the model"):
        decode(data, b)
    with pytest.raises(ModelMismatchError, match="'interp'"):
        decode(data, load_model("interp"))


@pytest.fixture(scope="module")
def default_model():
    return load_model("default")


def test_default_model_is_learned(default_model):
    assert isinstance(default_model, LearnedPredictor)


@pytest.mark.parametrize("c", [1, 3, 4])
def test_lossless_round_trip_with_default_model(default_model, c):
    image = smooth_image(45, 70, c, seed=c)
    if c == 4:
        image[..., 3] = np.where(np.arange(70)[None, :] < 30, 0, 255)
    data = encode(image, default_model)
    assert np.array_equal(decode(data, default_model)[-1].image, image)


def test_decode_with_another_thread_count_is_bit_exact(default_model):
    image = smooth_image(64, 96, 3, seed=5)
    threads = torch.get_num_threads()
    data = encode(image, default_model)
    try:
        torch.set_num_threads(1)
        out = decode(data, default_model)[-1].image
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(out, image)
