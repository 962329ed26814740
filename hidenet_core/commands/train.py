"""``hidenet train``: train a learned predictor (also under ``torchrun --nproc_per_node=N``)."""

from __future__ import annotations

import argparse
import json

from ..predictors import ARCHITECTURES, LearnedPredictor
from .options import int_range

HELP = "train a learned predictor on a folder of images (AdamW, cosine schedule, checkpoint every epoch)"


def _learned() -> list[str]:
    return sorted(k for k, v in ARCHITECTURES.items() if issubclass(v, LearnedPredictor))


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def _model_config(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--model-config is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('--model-config must be a JSON object, e.g. \'{"features": 24}\'')
    return value


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="DIR", help="folder of training images")
    p.add_argument("--val", metavar="DIR", help="folder of validation images, scored after every epoch")
    p.add_argument("--arch", default="CNNP", choices=_learned(), help="architecture (default CNNP)")
    p.add_argument("--model-config", type=_model_config, default={}, metavar="JSON",
                   help='architecture arguments as JSON, e.g. \'{"features": 24}\'')
    p.add_argument("--epochs", type=int_range(1, 10000), default=10, help="epochs (default 10)")
    p.add_argument("--batch-size", type=int_range(1, 4096), default=16, help="crops per step and process (default 16)")
    p.add_argument("--patch-size", type=int_range(4, 4096), default=96, metavar="P",
                   help="crop side in pixels of its pyramid level, even (default 96)")
    p.add_argument("--crops-per-image", type=int_range(1, 100000), default=1024, metavar="N",
                   help="random crops of each image per epoch (default 1024)")
    p.add_argument("--max-level", type=int_range(0, 8), default=3,
                   help="crops come from pyramid levels 0..K (default 3)")
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--mse-weight", type=float, default=0.005, help="weight of the mean's squared error (default 0.005)")
    p.add_argument("--out", default="runs/model.pt", metavar="PATH", help="checkpoint written after every epoch")
    p.add_argument("--resume", metavar="PATH", help="continue from this checkpoint (same --out to keep one file)")
    p.add_argument("--init", metavar="MODEL", help="start from this model's weights ('default' or a checkpoint) "
                   "with a fresh optimizer and schedule: fine-tuning")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int_range(1, 256), default=None, help="torch threads per process")
    p.add_argument("--max-steps", type=int_range(1, 10**9), default=None, help="stop after this many steps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..tools.train import TrainConfig, train

    if args.patch_size % 2:
        raise ValueError(f"--patch-size must be even, got {args.patch_size}")
    cfg = TrainConfig(
        data=args.data, val=args.val, arch=args.arch, model_config=tuple(sorted(args.model_config.items())),
        epochs=args.epochs, batch_size=args.batch_size, patch_size=args.patch_size,
        crops_per_image=args.crops_per_image, max_level=args.max_level, lr=args.lr, mse_weight=args.mse_weight,
        out=args.out, resume=args.resume, init=args.init, seed=args.seed, threads=args.threads,
        max_steps=args.max_steps, progress=not args.no_progress,
    )
    train(cfg, log=lambda msg: print(msg, flush=True))
    print(f"wrote {args.out}")
    return 0
