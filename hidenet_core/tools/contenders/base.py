"""The one small interface every contender of the race implements.

A contender is an image format as a browser meets it on the web. It says how to encode
an image (``encode``), where a browser would repaint while the file arrives (``cuts``:
byte offsets into the file, the last one the whole file), and what the browser shows
after a prefix that ends at a cut (``shown``). Everything else (measuring, the link
schedule, the server's race, ``hidenet fetch``, ``hidenet bench``) is built on these
three calls, so every user of a contender sees the same frames.

Contenders compare the *visible* channels of an image: alpha is dropped (JPEG has
none), grey stays grey.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

__all__ = ["Contender", "Cut", "Shown", "QualityRange", "ContenderError", "visible", "EMPTY_GREY"]

#: what an unpainted pixel is scored as (a browser shows the page behind it); the bench's convention
EMPTY_GREY = 128


class ContenderError(ValueError):
    """An unknown contender, a bad quality, or a contender this installation cannot run."""


def visible(pixels: np.ndarray) -> np.ndarray:
    """The channels the contenders carry and the metrics compare: alpha is dropped."""
    return pixels[:, :, :3] if pixels.shape[2] == 4 else pixels


@dataclass(frozen=True)
class QualityRange:
    """The quality setting a lossy contender takes."""

    default: int
    low: int
    high: int


@dataclass(frozen=True)
class Cut:
    """A point where a browser repaints: the file's first ``end`` bytes have arrived."""

    end: int  # bytes of the file up to this repaint (the whole file for the last cut)
    label: str  # what has arrived, in words: "scan 3 of 10", "pass 2 of 7", "40% of the rows"


@dataclass(frozen=True)
class Shown:
    """What a browser shows after a prefix: ``image`` where ``rows`` from the top are painted."""

    image: np.ndarray  # (H, W, C) uint8, C = the visible channels of the original
    rows: int  # painted rows from the top (H: the whole picture); below them the page shows through

    @property
    def complete(self) -> bool:
        return self.rows >= self.image.shape[0]

    def scored(self) -> np.ndarray:
        """The picture as the metrics see it: unpainted rows are flat grey."""
        if self.complete:
            return self.image
        out = self.image.copy()
        out[self.rows :] = EMPTY_GREY
        return out

    def rgba(self) -> np.ndarray:
        """The picture to display as (H, W, 4) RGBA, unpainted rows transparent."""
        colour = np.repeat(self.image, 3, axis=2) if self.image.shape[2] == 1 else self.image
        alpha = np.full(self.image.shape[:2] + (1,), 255, np.uint8)
        alpha[self.rows :] = 0
        return np.concatenate([colour, alpha], axis=2)


class Contender(ABC):
    """One image format in the race. Subclasses set the class attributes and the three methods."""

    id: str  # stable id used in the protocol, the URL and the CLI ("pjpeg")
    name: str  # display name ("Progressive JPEG")
    lossless: bool  # the complete file restores the original exactly
    quality: QualityRange | None = None  # None: the format takes no quality setting
    repaints: str  # when a browser repaints, in words (docs, /api/contenders)
    max_side: int = 65535  # the longest side the format (its encoder here) can code

    def available(self) -> str | None:
        """None when this installation can run the contender, else the reason it cannot."""
        return None

    @abstractmethod
    def encode(self, pixels: np.ndarray, quality: int | None) -> bytes:
        """The file a web server would send for ``visible(pixels)``."""

    @abstractmethod
    def cuts(self, data: bytes) -> list[Cut]:
        """Where a browser repaints while ``data`` arrives, in increasing order; the last is ``len(data)``."""

    @abstractmethod
    def shown(self, data: bytes, end: int) -> Shown:
        """What a browser shows once ``data[:end]`` has arrived (``end`` from ``cuts``): decoded from
        that prefix alone, never from the bytes after it."""
