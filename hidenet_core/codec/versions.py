"""The format table: what each ``.hdn`` format version contains, one record per version.

Everything that depends on the version (the encoder, the decoder, the closed loop, the
per-image stages and the decoder's payload bounds) reads it from the version's record;
nothing else spells a version number. docs/format.md specifies each stage; its section
"Versions, golden streams and compatibility" says how a version is added: one more
record here (a new stage is a new field whose default leaves it out, so the records
above keep their meaning) and its golden fixtures.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "CALIBRATED_POSITIONS",
    "FILTERED_POSITIONS",
    "Refinement",
    "FormatVersion",
    "FORMATS",
    "VERSION",
    "VERSIONS",
    "format_version",
]

#: a coded level whose grid of odd positions (level k+1's size h x w) has at least this
#: many positions is calibrated in the versions that have calibration
CALIBRATED_POSITIONS = 4096
#: a level whose grid has at least this many positions (32 x 32: a quarter of the above, as
#: these coarse levels are what the viewer shows first) has a preview filter in the versions with one
FILTERED_POSITIONS = 1024


class Refinement(enum.Enum):
    """How the calibration refines a channel's predicted mean."""

    NONE = "none"  # the network's mean as it is
    COUPLING = "coupling"  # plus b / 16 of the parent's residual, b per scale bucket (calibration.py)
    LINEAR = "linear"  # plus a linear prediction from decoded neighbours and colours (linear.py)


@dataclass(frozen=True)
class FormatVersion:
    """What the streams of one format version contain."""

    number: int  # the version byte of the header
    calibration: bool  # calibrated levels carry per-image scale exponents (calibration.py)
    refinement: Refinement  # what else the calibration of a channel carries, refining its mean
    rounds_by_phase: bool  # a calibrated step is coded phase by phase, parents last in each (else parents last)
    scale_bound: int  # a bucket's scale exponent t is in -scale_bound..scale_bound (0: no calibration)
    scale_context: bool  # calibrated channels' exponents are shifted per position (scalecontext.py)
    preview_filter: bool  # chunk k+1 ends with level k's preview filter (previewfilter.py)

    def __post_init__(self) -> None:
        calibrated_only = self.refinement is not Refinement.NONE or self.rounds_by_phase or self.scale_context
        if (self.scale_bound > 0) != self.calibration or (calibrated_only and not self.calibration):
            raise ValueError(f"format version {self.number}: its stages need calibration")
        if self.scale_context and not self.linear:
            raise ValueError(f"format version {self.number}: a scale context needs the linear prediction's state")

    @property
    def coupling(self) -> bool:
        return self.refinement is Refinement.COUPLING

    @property
    def linear(self) -> bool:
        return self.refinement is Refinement.LINEAR

    def calibrated(self, h: int, w: int) -> bool:
        """Whether a coded level with an (h, w) grid of odd positions carries calibration parameters."""
        return self.calibration and h * w >= CALIBRATED_POSITIONS

    def carries_filter(self, shapes: list[tuple[int, int]], k: int) -> bool:
        """Whether the chunk of level k + 1 ends with level k's preview filter (``shapes``: the
        (H, W) of every level, 0 first; level k's grid of odd positions is level k + 1's size)."""
        return self.preview_filter and k >= 0 and shapes[k + 1][0] * shapes[k + 1][1] >= FILTERED_POSITIONS


#: every version a decoder reads, by number
FORMATS: dict[int, FormatVersion] = {
    f.number: f
    for f in (
        FormatVersion(1, calibration=False, refinement=Refinement.NONE, rounds_by_phase=False, scale_bound=0,
                      scale_context=False, preview_filter=False),
        FormatVersion(2, calibration=True, refinement=Refinement.COUPLING, rounds_by_phase=False, scale_bound=8,
                      scale_context=False, preview_filter=False),
        FormatVersion(3, calibration=True, refinement=Refinement.LINEAR, rounds_by_phase=True, scale_bound=16,
                      scale_context=False, preview_filter=False),
        FormatVersion(4, calibration=True, refinement=Refinement.LINEAR, rounds_by_phase=True, scale_bound=16,
                      scale_context=True, preview_filter=False),
        FormatVersion(5, calibration=True, refinement=Refinement.LINEAR, rounds_by_phase=True, scale_bound=16,
                      scale_context=True, preview_filter=True),
    )
}
#: the version written by default
VERSION = 5
VERSIONS = tuple(FORMATS)


def format_version(number: int) -> FormatVersion:
    """The record of a version (ValueError for a number not in the table)."""
    try:
        return FORMATS[number]
    except KeyError:
        raise ValueError(f"unknown .hdn format version {number!r}; the versions are {list(VERSIONS)}") from None
