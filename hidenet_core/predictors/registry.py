"""Predictors by name, and loading/saving checkpoints.

``--model`` everywhere takes a registered name (``interp``, ``default``, an
architecture with untrained weights is refused) or the path of a checkpoint file.
A checkpoint is a dict ``{"format": 1, "arch": NAME, "config": {...},
"state_dict": {...}, "meta": {...}}`` saved with ``torch.save`` and read with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .base import Predictor
from .interp import Interp

__all__ = [
    "ARCHITECTURES",
    "register",
    "build",
    "load_model",
    "save_checkpoint",
    "load_checkpoint",
    "default_weights_path",
    "ModelLoadError",
    "model_names",
]

CHECKPOINT_FORMAT = 1

#: architecture name -> class; filled by ``register``
ARCHITECTURES: dict[str, type[Predictor]] = {}


class ModelLoadError(ValueError):
    """A model name or checkpoint that cannot be used; the message says why."""


def register(cls: type[Predictor]) -> type[Predictor]:
    """Class decorator: make ``cls`` buildable by its ``name``."""
    if cls.name in ARCHITECTURES and ARCHITECTURES[cls.name] is not cls:
        raise ValueError(f"predictor name {cls.name!r} registered twice")
    ARCHITECTURES[cls.name] = cls
    return cls


register(Interp)


def build(arch: str, **config: Any) -> Predictor:
    """A fresh (untrained) model of architecture ``arch``."""
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise ModelLoadError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}") from None
    return cls(**config)


def default_weights_path() -> Path:
    """The shipped default weights inside the package."""
    return Path(str(resources.files("hidenet_core") / "weights" / "default.pt"))


def model_names() -> list[str]:
    """Names ``load_model`` accepts besides checkpoint paths."""
    return ["default", "interp"]


def save_checkpoint(model: Predictor, path: str | Path, meta: dict[str, Any] | None = None, **extra: Any) -> None:
    """Write ``model`` (architecture, config, weights) and ``meta`` to ``path`` atomically."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "arch": model.name,
        "config": model.config(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta or {},
        **extra,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint dict (weights only: no code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ModelLoadError(f"cannot read model checkpoint {str(path)!r}: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "arch" not in ckpt:
        raise ModelLoadError(f"{str(path)!r} is not a hideNet checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def _from_checkpoint(ckpt: dict[str, Any], origin: str) -> Predictor:
    model = build(ckpt["arch"], **ckpt.get("config", {}))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"weights in {origin!r} do not fit architecture {ckpt['arch']!r}: {exc}") from None
    return model.eval()


_CACHE: dict[str, Predictor] = {}
_LOADERS: dict[str, Callable[[], Predictor]] = {
    "interp": lambda: Interp().eval(),
    "default": lambda: _load_default(),
}


def _load_default() -> Predictor:
    path = default_weights_path()
    if not path.is_file():  # never silently another model: its streams would not match the default's
        raise ModelLoadError(
            f"the default model's weights are missing ({path} is not a file): reinstall hidenet, "
            f"or choose --model interp or a checkpoint path"
        )
    return _from_checkpoint(load_checkpoint(path), "default")


def load_model(name_or_path: str = "default") -> Predictor:
    """A ready (eval mode) predictor from a registered name or a checkpoint path.

    Names are cached per process: the same object is returned for the same name.
    """
    if name_or_path in _LOADERS:
        if name_or_path not in _CACHE:
            _CACHE[name_or_path] = _LOADERS[name_or_path]()
        return _CACHE[name_or_path]
    path = Path(name_or_path)
    if path.suffix in {".pt", ".pth", ".ckpt"} or path.exists():
        return _from_checkpoint(load_checkpoint(path), str(path))
    raise ModelLoadError(
        f"unknown model {name_or_path!r}: give one of {model_names()} or the path of a checkpoint (.pt)"
    )
