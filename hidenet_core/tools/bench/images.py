"""The benchmark's image set: every image file in a folder, as (H, W, C) uint8 arrays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...imageio import MODE_OF_CHANNELS, ImageError, center_crop, load_image

__all__ = ["BenchImage", "load_images"]


@dataclass(frozen=True)
class BenchImage:
    name: str  # file stem, unique within the set
    pixels: np.ndarray  # (H, W, C) uint8, C in 1, 3, 4

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def mode(self) -> str:
        return MODE_OF_CHANNELS[self.pixels.shape[2]]


def load_images(paths: list[Path], max_images: int | None = None,
                crop: tuple[int, int] | None = None) -> list[BenchImage]:
    """Load ``paths`` (sorted by the caller); keep the first ``max_images`` and, with
    ``crop`` = (width, height), a centre crop of at most that size (a crop keeps the
    statistics of a photograph, a downscale would not)."""
    if not paths:
        raise ValueError("no images to benchmark")
    images: list[BenchImage] = []
    seen: set[str] = set()
    for path in paths[: max_images or None]:
        try:
            pixels = load_image(path).pixels
        except ImageError as exc:
            raise ImageError(f"{path}: {exc}") from None
        if crop:
            pixels = center_crop(pixels, *crop)
        name = path.stem
        while name in seen:
            name += "_"
        seen.add(name)
        images.append(BenchImage(name, pixels))
    return images
