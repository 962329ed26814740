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
    # -- quality layers (version 6): the fields below leave a version without them unchanged
    layered: bool = False  # the header carries a schedule of passes (layers); later passes refine (intervals.py)
    part_positions: int = 0  # a pass over a level of at least this many positions is split into parts (0: never)
    strip_positions: int = 0  # ... one part per coding step and strip of about this many positions (0: no strips)
    halo_rows: int = 0  # a strip's prediction sees this many grid rows above and below it
    # -- version 7: the values' symbols in fixed tables, rANS-coded beside the range coder (tablecoder.py)
    value_tables: bool = False
    # -- version 8: a learned model evaluated exactly, the same bits on every machine (predictors/exact.py)
    exact_network: bool = False
    # -- version 9: a pass's mode may say ``UNTRUNCATED`` (plan.PassMode): its refinement codes every
    # bin index as a first pass codes its symbols, none under the masses truncated to its interval
    untruncated_mode: bool = False
    # -- version 10: each layer has a second max error per level, for the colours other than the lead
    # (green): a layer may code them coarser than the lead, or leave them as the layer before did
    colour_layers: bool = False

    def __post_init__(self) -> None:
        calibrated_only = self.refinement is not Refinement.NONE or self.rounds_by_phase or self.scale_context
        if (self.scale_bound > 0) != self.calibration or (calibrated_only and not self.calibration):
            raise ValueError(f"format version {self.number}: its stages need calibration")
        if self.scale_context and not self.linear:
            raise ValueError(f"format version {self.number}: a scale context needs the linear prediction's state")
        if (self.part_positions or self.strip_positions) and not self.layered:
            raise ValueError(f"format version {self.number}: parts and strips come with the layered container")
        if self.untruncated_mode and not (self.layered and self.value_tables):
            raise ValueError(f"format version {self.number}: untruncated refinement needs layers and value tables")
        if self.colour_layers and not self.layered:
            raise ValueError(f"format version {self.number}: the colours' own max errors need layers")

    def strip_rows(self, h: int, w: int) -> int:
        """The grid rows of each strip of a level with an (h, w) grid (the last strip may be shorter):
        even, so that a strip's halo keeps the grid's parity; h when the level is one strip."""
        if not self.strip_positions or h * w <= self.strip_positions:
            return h
        return max(16, (self.strip_positions // w) & ~1)

    def split(self, h: int, w: int) -> bool:
        """Whether a pass over a level with an (h, w) grid is split into parts (one per step and strip)."""
        return bool(self.part_positions) and h * w >= self.part_positions

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
        FormatVersion(6, calibration=True, refinement=Refinement.LINEAR, rounds_by_phase=True, scale_bound=16,
                      scale_context=True, preview_filter=True, layered=True, part_positions=CALIBRATED_POSITIONS,
                      strip_positions=1 << 20, halo_rows=16),
        FormatVersion(7, calibration=True, refinement=Refinement.LINEAR, rounds_by_phase=True, scale_bound=16,
                      scale_context=True, preview_filter=True, layered=True, part_positions=CALIBRATED_POSITIONS,
                      strip_positions=1 << 20, halo_rows=16, value_tables=True),
        FormatVersion(8, calibration=True, refinement=Refinement.LINEAR, rounds_by_phase=True, scale_bound=16,
                      scale_context=True, preview_filter=True, layered=True, part_positions=CALIBRATED_POSITIONS,
                      strip_positions=1 << 20, halo_rows=16, value_tables=True, exact_network=True),
        FormatVersion(9, calibration=True, refinement=Refinement.LINEAR, rounds_by_phase=True, scale_bound=16,
                      scale_context=True, preview_filter=True, layered=True, part_positions=CALIBRATED_POSITIONS,
                      strip_positions=1 << 20, halo_rows=16, value_tables=True, exact_network=True,
                      untruncated_mode=True),
        FormatVersion(10, calibration=True, refinement=Refinement.LINEAR, rounds_by_phase=True, scale_bound=16,
                      scale_context=True, preview_filter=True, layered=True, part_positions=CALIBRATED_POSITIONS,
                      strip_positions=1 << 20, halo_rows=16, value_tables=True, exact_network=True,
                      untruncated_mode=True, colour_layers=True),
    )
}
#: the version written by default
VERSION = 10
VERSIONS = tuple(FORMATS)


def format_version(number: int) -> FormatVersion:
    """The record of a version (ValueError for a number not in the table)."""
    try:
        return FORMATS[number]
    except KeyError:
        raise ValueError(f"unknown .hdn format version {number!r}; the versions are {list(VERSIONS)}") from None
