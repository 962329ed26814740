"""The sample photographs shipped inside the package (from scikit-image, free to ship)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["samples_dir", "sample_paths"]


def samples_dir() -> Path:
    return Path(str(resources.files("hidenet_core") / "samples"))


def sample_paths() -> list[Path]:
    """The bundled sample images, sorted by name."""
    return sorted(samples_dir().glob("*.png"))
