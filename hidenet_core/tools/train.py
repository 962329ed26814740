"""Training a learned predictor: code length of the odd pixels plus MSE of the mean.

Each sample is a random crop of a training image at a random pyramid level (the image
decimated by 2^k with a random phase, which is exactly what the codec's level k looks
like). The crop is split into even and odd pixels; the four RGB coding steps are run
with the *true* odd values of earlier steps as context (teacher forcing, exact for
lossless coding, where the decoder has those values) and stacked into one batch.

The loss is the code length in bits per odd value under the predicted discretized
Laplace (what the range coder pays with max-error 0) plus ``mse_weight`` times the
squared error of the mean in pixel units (for the generative preview). AdamW with a
cosine-annealed learning rate; a checkpoint (weights, optimizer, scheduler, epoch)
after every epoch. Under ``torchrun`` it trains with DistributedDataParallel (gloo on
CPU, nccl on GPUs); only rank 0 logs and writes checkpoints.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ..codec.codelength import laplace_bits
from ..codec.pyramid import merge, split
from ..imageio import image_files, load_image
from ..metrics import ssim
from ..predictors import ARCHITECTURES, LearnedPredictor, build, load_checkpoint, load_model, save_checkpoint
from ..predictors.features import RGB_STEPS, step_inputs
from ..predictors.learned import stack_inputs

__all__ = [
    "TrainConfig",
    "laplace_bits",
    "CropDataset",
    "TeacherForcedLoss",
    "train",
    "evaluate_crops",
]


@dataclass(frozen=True)
class TrainConfig:
    data: str  # folder of training images
    val: str | None = None  # folder of validation images (optional)
    arch: str = "CNNP"  # registered architecture
    model_config: tuple[tuple[str, Any], ...] = ()  # extra architecture arguments
    epochs: int = 10  # passes over the crops (as in the seed)
    batch_size: int = 16  # crops per optimizer step (per process)
    patch_size: int = 96  # crop side at its level, even
    crops_per_image: int = 1024  # random crops of each image per epoch
    max_level: int = 3  # crops come from levels 0..max_level (image decimated by 2^k)
    grey_fraction: float = 0.1  # fraction of crops turned grey (R = G = B), for L images
    noise_fraction: float = 0.2  # fraction of crops with Gaussian noise added (sensor-noise-like texture)
    noise_sigma: float = 6.0  # that noise's standard deviation is uniform in 0..noise_sigma
    lr: float = 1e-3  # peak learning rate (AdamW, cosine annealed to lr / 50)
    weight_decay: float = 1e-4
    mse_weight: float = 0.005  # weight of the mean's squared error (pixel units) in the loss
    out: str = "runs/model.pt"  # checkpoint written after every epoch
    resume: str | None = None  # checkpoint to continue from
    #: start from this model's weights ('default' or a checkpoint) with a fresh optimizer and schedule: fine-tuning
    init: str | None = None
    seed: int = 0
    threads: int | None = None  # torch threads per process (None: leave torch's default)
    max_steps: int | None = None  # stop after this many optimizer steps (tests, smoke runs)
    progress: bool = True  # tqdm progress bar on rank 0


def _load_rgb(path: Path) -> np.ndarray:
    """(3, H, W) uint8: grey repeated, alpha dropped."""
    px = load_image(path).pixels
    if px.shape[2] == 1:
        px = np.repeat(px, 3, axis=2)
    return np.ascontiguousarray(px[:, :, :3].transpose(2, 0, 1))


class CropDataset(Dataset):
    """Random crops of a folder's images at random pyramid levels, reproducible per epoch.

    Item ``i`` of epoch ``e`` is drawn from ``np.random.default_rng([seed, e, i])``:
    image ``i % n``, a level k in 0..max_level (levels weighted 4:3:2:1 ...), the image
    decimated by 2^k at a random phase, a random crop, an optional horizontal flip, an
    optional conversion to grey and optional Gaussian noise. Returns ((3, P, P) float pixels, level).
    """

    def __init__(self, folder: str | Path, patch: int, crops_per_image: int, max_level: int,
                 grey_fraction: float, seed: int, noise_fraction: float = 0.0, noise_sigma: float = 0.0) -> None:
        if patch < 4 or patch % 2:
            raise ValueError(f"patch size must be even and at least 4, got {patch}")
        self.images = [_load_rgb(p) for p in image_files(folder)]
        self.patch, self.crops, self.seed, self.grey = patch, crops_per_image, seed, grey_fraction
        self.noise, self.sigma = noise_fraction, noise_sigma
        smallest = min(min(im.shape[1:]) for im in self.images)
        self.max_level = max(0, min(max_level, int(math.log2(max(smallest // patch, 1)))))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images) * self.crops

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        im = self.images[i % len(self.images)]
        weights = np.arange(self.max_level + 1, 0, -1, dtype=np.float64)
        k = int(rng.choice(self.max_level + 1, p=weights / weights.sum()))
        f = 2**k
        oy, ox = rng.integers(0, f, 2)
        lv = im[:, oy::f, ox::f]  # (3, H/f, W/f)
        p = min(self.patch, lv.shape[1] - lv.shape[1] % 2, lv.shape[2] - lv.shape[2] % 2)
        y = int(rng.integers(0, lv.shape[1] - p + 1))
        x = int(rng.integers(0, lv.shape[2] - p + 1))
        crop = torch.from_numpy(np.ascontiguousarray(lv[:, y : y + p, x : x + p])).float()
        if p < self.patch:  # tiny images: pad by replication to the batch's size
            crop = nn.functional.pad(crop[None], (0, self.patch - p, 0, self.patch - p), mode="replicate")[0]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        if rng.random() < self.grey:
            grey = (crop * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True).round()
            crop = grey.expand(3, -1, -1)
        if rng.random() < self.noise:
            noise = rng.normal(0.0, rng.uniform(0.0, self.sigma), crop.shape).astype(np.float32)
            crop = (crop + torch.from_numpy(noise)).round().clamp(0, 255)
        return crop, k


class TeacherForcedLoss(nn.Module):
    """All four RGB steps of a batch of crops in one forward; returns summed statistics.

    forward(pixels (B, 3, P, P) float, level (B,) long) -> (loss, stats) where stats is
    a (4,) tensor: summed bits, summed squared error, number of odd values, loss.
    """

    def __init__(self, model: LearnedPredictor, mse_weight: float) -> None:
        super().__init__()
        self.model = model
        self.mse_weight = mse_weight

    def predictions(self, pixels: torch.Tensor, level: torch.Tensor):
        even, odd = split(pixels)  # (B, 3, h, w), (B, 9, h, w)
        inputs = stack_inputs([step_inputs(even, odd, s) for s in range(len(RGB_STEPS))])
        mean, scale = self.model.predict(inputs, level.repeat(len(RGB_STEPS)))  # (4B, 9, h, w)
        b = pixels.shape[0]
        target = inputs.target.view(len(RGB_STEPS), b, 9, 1, 1)
        # each odd channel is the target of exactly one step: pick it
        mean = (mean.view(len(RGB_STEPS), b, 9, *mean.shape[-2:]) * target).sum(0)  # (B, 9, h, w)
        scale = (scale.view(len(RGB_STEPS), b, 9, *scale.shape[-2:]) * target).sum(0)
        return even, odd, mean, scale

    def forward(self, pixels: torch.Tensor, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, odd, mean, scale = self.predictions(pixels, level)
        bits = laplace_bits(odd, mean, scale)  # (B, 9, h, w)
        sq = (mean - odd) ** 2
        loss = bits.mean() + self.mse_weight * sq.mean()
        stats = torch.stack([bits.sum(), sq.sum(), torch.tensor(float(odd.numel()), device=odd.device), loss])
        return loss, stats.detach()


def _summary(stats: torch.Tensor) -> dict[str, float]:
    bits, sq, n = (float(v) for v in stats[:3])
    mse = sq / max(n, 1)
    return {
        "bits_per_value": bits / max(n, 1),
        # an RGB pixel has three values; every pyramid level costs about the same per value
        "bpp": 3 * bits / max(n, 1),
        "psnr": 10 * math.log10(255.0**2 / mse) if mse > 0 else math.inf,
    }


@torch.no_grad()
def evaluate_crops(model: LearnedPredictor, dataset: CropDataset, batch_size: int = 16,
                   device: torch.device | str = "cpu") -> dict[str, float]:
    """Teacher-forced bits, PSNR of the odd values and SSIM of the level predicted from its even pixels."""
    crit = TeacherForcedLoss(model, 0.0).eval()
    total = torch.zeros(4)
    ssims = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for pixels, level in loader:
        pixels, level = pixels.to(device), level.to(device)
        even, odd, mean, scale = crit.predictions(pixels, level)
        total += torch.stack([laplace_bits(odd, mean, scale).sum(), ((mean - odd) ** 2).sum(),
                              torch.tensor(float(odd.numel()), device=device), torch.tensor(0.0, device=device)]).cpu()
        pred = merge(even, mean.clamp(0, 255).round(), None).cpu()  # (B, 3, P, P)
        for a, b in zip(pred, pixels.cpu()):
            ssims.append(ssim(a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy()))
    out = _summary(total)
    out["ssim"] = float(np.mean(ssims)) if ssims else math.nan
    return out


def _dist_setup() -> tuple[int, int, int]:
    """(rank, world size, local rank); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


def train(cfg: TrainConfig, log=print) -> dict[str, Any]:
    """Train (or resume) a model; returns the last epoch's figures. Writes ``cfg.out`` every epoch."""
    if cfg.arch not in ARCHITECTURES or not issubclass(ARCHITECTURES[cfg.arch], LearnedPredictor):
        learned = sorted(k for k, v in ARCHITECTURES.items() if issubclass(v, LearnedPredictor))
        raise ValueError(f"cannot train architecture {cfg.arch!r}; choose one of {learned}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.crops_per_image < 1:
        raise ValueError("epochs, batch size and crops per image must be at least 1")
    if cfg.init and cfg.resume:
        raise ValueError("--init starts a new run from a model's weights, --resume continues a run: give one of them")
    rank, world, local_rank = _dist_setup()
    try:
        return _train(cfg, rank, world, local_rank, log)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _initial_model(cfg: TrainConfig) -> LearnedPredictor:
    """A trainable copy of the model ``cfg.init`` names: a learned model of ``cfg.arch``."""
    source = load_model(cfg.init)
    if not isinstance(source, LearnedPredictor):
        raise ValueError(f"--init {cfg.init!r} is not a learned model: it has no weights to fine-tune")
    if source.name != cfg.arch:
        raise ValueError(f"--init {cfg.init!r} is a {source.name!r} model, not {cfg.arch!r} (--arch)")
    config = source.config()
    if any(key not in config or config[key] != value for key, value in cfg.model_config):
        raise ValueError(f"--init {cfg.init!r} has the configuration {config}, which --model-config "
                         f"{dict(cfg.model_config)} contradicts")
    model = build(cfg.arch, **config)
    model.load_state_dict(source.state_dict())
    return model


def _train(cfg: TrainConfig, rank: int, world: int, local_rank: int, log) -> dict[str, Any]:
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        elif world > 1:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    torch.manual_seed(cfg.seed)
    data = CropDataset(cfg.data, cfg.patch_size, cfg.crops_per_image, cfg.max_level, cfg.grey_fraction, cfg.seed,
                       cfg.noise_fraction, cfg.noise_sigma)
    val = CropDataset(cfg.val, cfg.patch_size * 2, 8, cfg.max_level, 0.0, cfg.seed + 1) if cfg.val else None
    sampler = DistributedSampler(data, world, rank, shuffle=True, seed=cfg.seed) if world > 1 else None
    loader_gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(data, batch_size=cfg.batch_size, sampler=sampler, shuffle=sampler is None,
                        generator=loader_gen if sampler is None else None,
                        drop_last=len(data) >= cfg.batch_size * world)
    steps_per_epoch = max(1, len(loader))

    start_epoch, history, ckpt = 0, [], None
    if cfg.resume:
        ckpt = load_checkpoint(cfg.resume)
        if ckpt["arch"] != cfg.arch:
            raise ValueError(f"--resume checkpoint is a {ckpt['arch']!r} model, not {cfg.arch!r}")
        model = build(ckpt["arch"], **ckpt["config"])
        model.load_state_dict(ckpt["state_dict"])
    elif cfg.init:
        model = _initial_model(cfg)
        if rank == 0:
            log(f"fine-tuning the weights of {cfg.init}")
    else:
        model = build(cfg.arch, **dict(cfg.model_config))
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch, eta_min=cfg.lr / 50)
    if ckpt is not None:
        if "optimizer" in ckpt:
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
        start_epoch = int(ckpt.get("epoch", 0))
        history = list(ckpt.get("meta", {}).get("history", []))
        if rank == 0:
            log(f"resumed from {cfg.resume} after epoch {start_epoch}")
    crit: nn.Module = TeacherForcedLoss(model, cfg.mse_weight)
    if world > 1:
        crit = nn.parallel.DistributedDataParallel(crit, device_ids=[local_rank] if device.type == "cuda" else None)

    show = cfg.progress and rank == 0
    if show:
        from tqdm import tqdm
    t_start = time.perf_counter()
    step = start_epoch * steps_per_epoch
    summary: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        data.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        total = torch.zeros(4)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", file=sys.stderr, mininterval=2.0,
                   dynamic_ncols=True) if show else loader
        for pixels, level in bar:
            pixels, level = pixels.to(device), level.to(device)
            loss, stats = crit(pixels, level)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            total += stats.cpu()
            if show:
                s = _summary(stats)
                bar.set_postfix(loss=f"{float(stats[3]):.3f}", bpp=f"{s['bpp']:.3f}", psnr=f"{s['psnr']:.2f}")
            if cfg.max_steps is not None and step >= cfg.max_steps:
                break
        if world > 1:
            dist.all_reduce(total)
        summary = {"epoch": epoch + 1, "step": step, "lr": sched.get_last_lr()[0],
                   "seconds": round(time.perf_counter() - t_start, 1),
                   "train": _summary(total)}
        if val is not None and rank == 0:
            model.eval()
            summary["val"] = evaluate_crops(model, val, cfg.batch_size, device)
        history.append(summary)
        if rank == 0:
            log(f"epoch {epoch + 1}: " + _format(summary))
            meta = {"train_config": _jsonable(asdict(cfg)), "history": history, "world_size": world}
            Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(model, cfg.out, meta, optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                            epoch=epoch + 1)
        if world > 1:
            dist.barrier()
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
    return summary


def _format(summary: dict[str, Any]) -> str:
    parts = [f"{summary['seconds']:.0f}s lr {summary['lr']:.2e}"]
    for key in ("train", "val"):
        if key in summary:
            s = summary[key]
            extra = f" ssim {s['ssim']:.4f}" if "ssim" in s else ""
            parts.append(f"{key}: {s['bits_per_value']:.4f} bits/value, bpp {s['bpp']:.3f}, "
                         f"psnr {s['psnr']:.2f}{extra}")
    return " | ".join(parts)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj
