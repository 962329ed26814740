"""A contender's timeline for one image: its file, and each repaint measured against the original.

``Spec`` names a contender and its quality ("pjpeg:90"); ``build_timeline`` encodes the
image once, cuts the file where a browser repaints and decodes each prefix as the
browser shows it. The server's race, ``hidenet fetch`` (through the server) and
``hidenet bench`` all take their frames from here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ...metrics import psnr, ssim
from .base import Contender, ContenderError, Shown, visible
from .registry import CONTENDERS

__all__ = ["Spec", "parse_spec", "Frame", "Timeline", "build_timeline", "BuildCancelled", "score", "MAX_CONTENDERS"]

#: contenders beside hideNet in one race
MAX_CONTENDERS = 3


@dataclass(frozen=True)
class Spec:
    """A contender at a quality: what a race asks for."""

    contender: Contender
    quality: int | None  # None for a format without a quality setting

    @property
    def key(self) -> str:
        """The canonical id: ``pjpeg:90``, ``png``."""
        return self.contender.id if self.quality is None else f"{self.contender.id}:{self.quality}"

    @property
    def label(self) -> str:
        """The display name: ``Progressive JPEG q90``."""
        return self.contender.name if self.quality is None else f"{self.contender.name} q{self.quality}"

    def to_json(self) -> dict:
        c = self.contender
        return {"key": self.key, "id": c.id, "label": self.label, "name": c.name, "quality": self.quality,
                "lossless": c.lossless}


def parse_spec(text: object) -> Spec:
    """``"pjpeg"`` (the default quality), ``"pjpeg:75"``, ``"png"``; raises ContenderError."""
    if not isinstance(text, str) or not text:
        raise ContenderError(f"a contender is an id string such as 'pjpeg' or 'pjpeg:75', got {text!r}")
    name, _, q = text.partition(":")
    contender = CONTENDERS.get(name)
    if contender is None:
        raise ContenderError(f"unknown contender {name!r}; use one of {', '.join(CONTENDERS)}")
    reason = contender.available()
    if reason is not None:
        raise ContenderError(f"contender {name!r} is not available here: {reason}")
    if contender.quality is None:
        if q:
            raise ContenderError(f"contender {name!r} takes no quality, got {text!r}")
        return Spec(contender, None)
    if not q:
        return Spec(contender, contender.quality.default)
    r = contender.quality
    if not re.fullmatch(r"[0-9]{1,4}", q) or not r.low <= int(q) <= r.high:  # ASCII digits: "²".isdigit() too
        raise ContenderError(f"quality of {name!r} must be an integer in {r.low}..{r.high}, got {q!r}")
    return Spec(contender, int(q))


@dataclass(frozen=True)
class Frame:
    """One repaint: what the browser shows once ``bytes`` of the file have arrived."""

    index: int  # 1-based
    bytes: int  # file bytes up to this repaint
    label: str  # what has arrived ("scan 3 of 10")
    shown: Shown
    psnr: float  # dB against the original's visible channels; inf when identical
    ssim: float


@dataclass(frozen=True)
class Timeline:
    spec: Spec
    file_bytes: int  # the whole file
    frames: tuple[Frame, ...]

    @property
    def exact(self) -> bool:
        """The last frame equals the original."""
        return math.isinf(self.frames[-1].psnr)


def _like(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """A decoded picture in the reference's channels (formats without grey send grey as RGB)."""
    if image.shape[2] == reference.shape[2]:
        return image
    if reference.shape[2] == 1 and image.shape[2] == 3:
        return np.asarray(Image.fromarray(image).convert("L"))[:, :, None]
    raise ValueError(f"a {image.shape[2]}-channel picture cannot be compared with a {reference.shape[2]}-channel one")


def score(shown: Shown, reference: np.ndarray,
          measure_ssim: Callable[[np.ndarray, np.ndarray], float] = ssim) -> tuple[Shown, float, float]:
    """``shown`` in the reference's channels, and its PSNR and SSIM (unpainted rows count as flat
    grey). ``measure_ssim``: every pixel (the bench, like its other series), or the server's
    ``frame_ssim`` (the grid its frames of that size are measured on)."""
    shown = Shown(_like(shown.image, reference), shown.rows)
    scored = shown.scored()
    return shown, psnr(scored, reference), measure_ssim(scored, reference)


class BuildCancelled(Exception):
    """A timeline's build stopped because nobody waits for it any more."""


def build_timeline(spec: Spec, pixels: np.ndarray, cancelled: Callable[[], bool] = lambda: False,
                   measure_ssim: Callable[[np.ndarray, np.ndarray], float] = ssim) -> Timeline:
    """Encode ``pixels`` once, cut the file at every repaint, decode and measure each prefix
    (SSIM as ``score`` measures it); ``cancelled`` is asked before each repaint (seconds each for
    a large photograph): once it returns True the build raises ``BuildCancelled``."""
    reference = visible(pixels)
    data = spec.contender.encode(pixels, spec.quality)
    frames = []
    for i, cut in enumerate(spec.contender.cuts(data), 1):
        if cancelled():
            raise BuildCancelled(f"the {spec.key} timeline was no longer wanted")
        shown, p, s = score(spec.contender.shown(data, cut.end), reference, measure_ssim)
        frames.append(Frame(i, cut.end, cut.label, shown, p, s))
    return Timeline(spec, len(data), tuple(frames))
