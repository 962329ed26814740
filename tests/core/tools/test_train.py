"""Training: the loss, a few steps on a synthetic folder, resume, the CLI and two-process DDP."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hidenet_core.cli import main
from hidenet_core.imageio import save_png
from hidenet_core.predictors import LearnedPredictor, build, load_checkpoint, load_model
from hidenet_core.tools.train import CropDataset, TrainConfig, evaluate_crops, laplace_bits, train
from tests.conftest import smooth_image

ROOT = Path(__file__).resolve().parents[3]


def test_laplace_bits_known_values():
    m, b = torch.tensor(0.0), torch.tensor(1.0)
    # the bin [-1/2, 1/2] around the mean: 1 - exp(-1/2)
    assert math.isclose(float(laplace_bits(torch.tensor(0.0), m, b)), -math.log2(1 - math.exp(-0.5)), rel_tol=1e-5)
    # the bin [3/2, 5/2]: (exp(-3/2) - exp(-5/2)) / 2
    p = 0.5 * (math.exp(-1.5) - math.exp(-2.5))
    assert math.isclose(float(laplace_bits(torch.tensor(2.0), m, b)), -math.log2(p), rel_tol=1e-5)
    assert math.isclose(float(laplace_bits(torch.tensor(-2.0), m, b)), -math.log2(p), rel_tol=1e-5)


def test_laplace_bits_is_a_distribution_and_differentiable():
    x = torch.arange(-200.0, 201.0)
    for mean, scale in [(0.3, 0.2), (-0.5, 3.0), (0.49, 17.0)]:
        m = torch.tensor(mean, requires_grad=True)
        s = torch.tensor(scale, requires_grad=True)
        bits = laplace_bits(x, m, s)
        assert math.isclose(float((2.0 ** -bits.detach()).sum()), 1.0, rel_tol=1e-4)
        bits[200].backward()
        assert torch.isfinite(m.grad) and torch.isfinite(s.grad)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    for i in range(3):
        save_png(smooth_image(48 + 8 * i, 40, 3, seed=i), d / f"im{i}.png")
    save_png(smooth_image(40, 40, 1, seed=7), d / "grey.png")
    return d


def test_crops_are_reproducible_and_cover_levels(folder):
    ds = CropDataset(folder, 16, 8, 2, 0.5, seed=1)
    a, b = ds[5], ds[5]
    assert torch.equal(a[0], b[0]) and a[1] == b[1] and a[0].shape == (3, 16, 16)
    assert {ds[i][1] for i in range(len(ds))} == {0, 1}  # 40 px images: level 2 crops would be smaller than 16
    ds.set_epoch(1)
    assert not all(torch.equal(ds[i][0], CropDataset(folder, 16, 8, 2, 0.5, seed=1)[i][0]) for i in range(4))


def test_few_steps_train_write_a_loadable_checkpoint_and_resume(folder, tmp_path):
    out = tmp_path / "m.pt"
    cfg = TrainConfig(data=str(folder), val=str(folder), model_config=(("features", 8),), epochs=2, batch_size=4,
                      patch_size=16, crops_per_image=4, out=str(out), threads=1, progress=False)
    logs = []
    first = train(cfg, log=logs.append)
    assert first["epoch"] == 2 and math.isfinite(first["train"]["bpp"]) and 0 < first["val"]["ssim"] <= 1
    assert len(logs) == 2 and "bits/value" in logs[0]
    model = load_model(str(out))
    assert isinstance(model, LearnedPredictor) and model.config()["features"] == 8
    ckpt = load_checkpoint(out)
    assert ckpt["epoch"] == 2 and "optimizer" in ckpt and len(ckpt["meta"]["history"]) == 2
    resumed = train(TrainConfig(**{**cfg.__dict__, "epochs": 3, "resume": str(out)}), log=logs.append)
    assert resumed["epoch"] == 3 and load_checkpoint(out)["epoch"] == 3


def test_training_lowers_the_loss(folder, tmp_path):
    cfg = TrainConfig(data=str(folder), model_config=(("features", 8),), epochs=1, batch_size=8, patch_size=16,
                      crops_per_image=40, lr=3e-3, out=str(tmp_path / "m.pt"), threads=1, progress=False, seed=2)
    ds = CropDataset(folder, 16, 4, 2, 0.0, seed=9)
    before = evaluate_crops(build("UNetLikeLite", features=8).eval(), ds)["bits_per_value"]  # = Interp
    train(cfg, log=lambda m: None)
    after = evaluate_crops(load_model(str(tmp_path / "m.pt")), ds)["bits_per_value"]
    assert after < before


def test_cli_train_and_errors(folder, tmp_path, capsys):
    out = tmp_path / "cli.pt"
    rc = main(["train", "--data", str(folder), "--epochs", "1", "--batch-size", "4", "--patch-size", "16",
               "--crops-per-image", "2", "--out", str(out), "--model-config", '{"features": 8}', "--threads", "1",
               "--no-progress"])
    assert rc == 0 and out.is_file() and "wrote" in capsys.readouterr().out
    assert main(["train", "--data", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--data", str(folder), "--patch-size", "15"]) == 2
    assert "must be even" in capsys.readouterr().err


@pytest.mark.slow
def test_two_process_distributed_run(folder, tmp_path):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "hidenet_core.cli", "train", "--data", str(folder), "--epochs", "1", "--batch-size", "2",
           "--patch-size", "16", "--crops-per-image", "4", "--model-config", '{"features": 8}',
           "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(out)
    assert ckpt["meta"]["world_size"] == 2 and ckpt["epoch"] == 1
    # 4 images x 4 crops over 2 processes with 2 crops each: 4 steps
    assert ckpt["meta"]["history"][0]["step"] == 4
    assert np.isfinite(ckpt["meta"]["history"][0]["train"]["bpp"])


def _small_run(folder, tmp_path, **changes) -> TrainConfig:
    base = TrainConfig(data=str(folder), model_config=(("features", 8),), epochs=1, batch_size=4, patch_size=16,
                       crops_per_image=2, out=str(tmp_path / "m.pt"), threads=1, progress=False)
    return TrainConfig(**{**base.__dict__, **changes})


def test_init_fine_tunes_a_model_s_weights(folder, tmp_path):
    """``--init``: the run starts from the given weights (a tiny learning rate leaves them almost as they
    were) with a fresh optimizer: its checkpoint counts its own epochs."""
    source = tmp_path / "source.pt"
    train(_small_run(folder, tmp_path, out=str(source), epochs=2), log=lambda m: None)
    logs = []
    tuned = tmp_path / "tuned.pt"
    train(_small_run(folder, tmp_path, out=str(tuned), init=str(source), lr=1e-12, max_steps=1), log=logs.append)
    assert logs[0] == f"fine-tuning the weights of {source}"
    a, b = load_checkpoint(source), load_checkpoint(tuned)
    assert b["epoch"] == 1 and len(b["meta"]["history"]) == 1
    for name, w in a["state_dict"].items():
        assert torch.allclose(w, b["state_dict"][name], atol=1e-6), name
    fresh = build("CNNP", features=8).state_dict()
    assert any(not torch.allclose(w, fresh[name]) for name, w in b["state_dict"].items())


def test_init_refuses_the_non_learned_model(folder, tmp_path):
    with pytest.raises(ValueError, match="'interp' is not a learned model"):
        train(_small_run(folder, tmp_path, init="interp"), log=lambda m: None)
    assert not (tmp_path / "m.pt").exists()


def test_init_refuses_another_architecture(folder, tmp_path):
    source = tmp_path / "unet.pt"
    train(_small_run(folder, tmp_path, arch="UNetLikeLite", out=str(source)), log=lambda m: None)
    with pytest.raises(ValueError, match="is a 'UNetLikeLite' model, not 'CNNP'"):
        train(_small_run(folder, tmp_path, init=str(source)), log=lambda m: None)
    assert not (tmp_path / "m.pt").exists()


def test_init_refuses_a_contradicting_model_config(folder, tmp_path):
    source = tmp_path / "source.pt"
    train(_small_run(folder, tmp_path, out=str(source)), log=lambda m: None)
    with pytest.raises(ValueError, match="which --model-config"):
        train(_small_run(folder, tmp_path, init=str(source), model_config=(("features", 12),)), log=lambda m: None)
    assert not (tmp_path / "m.pt").exists()


def test_init_and_resume_exclude_each_other(folder, tmp_path, capsys):
    source = tmp_path / "source.pt"
    train(_small_run(folder, tmp_path, out=str(source)), log=lambda m: None)
    rc = main(["train", "--data", str(folder), "--init", str(source), "--resume", str(source), "--out",
               str(tmp_path / "m.pt"), "--no-progress"])
    assert rc == 2 and "give one of them" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_cli_init_fine_tunes(folder, tmp_path, capsys):
    source = tmp_path / "source.pt"
    train(_small_run(folder, tmp_path, out=str(source)), log=lambda m: None)
    out = tmp_path / "cli.pt"
    rc = main(["train", "--data", str(folder), "--init", str(source), "--epochs", "1", "--batch-size", "4",
               "--patch-size", "16", "--crops-per-image", "2", "--out", str(out), "--threads", "1", "--no-progress"])
    assert rc == 0 and out.is_file()
    assert "fine-tuning the weights of" in capsys.readouterr().out
    assert load_model(str(out)).config()["features"] == 8
