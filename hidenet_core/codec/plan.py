"""The chunks of a stream in order, derived from its header alone.

A stream of versions 1 to 5 holds one chunk per level, base first. A layered stream
(version 6) holds *passes*: for each layer, for each level base first, a pass over the
level if the layer codes it (its first coding, or a smaller max error than the layer
before); a pass over a large level is split into parts, one per coding step and strip
of rows, each its own chunk; the generative levels come last, one chunk each. Encoder,
decoder and ``scan_stream`` walk this same plan, so a chunk out of place is an error
named by what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..predictors.interp import coding_steps, lead_odd_channels
from .pyramid import level_shapes, total_levels
from .versions import FormatVersion, format_version

__all__ = ["Strip", "Part", "Pass", "ChunkSpec", "PassMode", "untruncated", "strips", "stream_plan", "passes_of",
           "guarantees", "is_lead_step"]


@dataclass(frozen=True)
class Strip:
    """Rows [start, stop) of a level's grid of odd positions."""

    start: int
    stop: int


@dataclass(frozen=True)
class Part:
    """What one chunk of a pass codes: one coding step (None: every step) over some strips."""

    step: int | None
    strips: tuple[Strip, ...]


class PassMode:
    """Bits of a pass's mode byte (version 6): how the encoder chose to code it (its effort)."""

    INTERP = 1  # predict with the built-in interpolation instead of the stream's model
    PLAIN = 2  # no per-image stages (calibration, linear prediction, scale context)
    ALL = INTERP | PLAIN  # the bits of versions 6 to 8
    #: (version 9) a refinement codes every bin index untruncated, as a first pass codes its symbols
    #: (intervals.py): a few more bits where the prediction is unsure, a tenth of the decoding time
    UNTRUNCATED = 4

    @staticmethod
    def defined(fmt: FormatVersion) -> int:
        """The bits a pass's mode may set in format ``fmt``."""
        return PassMode.ALL | (PassMode.UNTRUNCATED if fmt.untruncated_mode else 0)


@dataclass(frozen=True)
class Pass:
    """One pass over a level: its first coding (``prev_d`` None) or a refinement."""

    layer: int
    level: int  # the chunk's level; the base's pass (level L) also covers the base's own levels
    d: int  # the max error it codes the lead colour (``interp.lead_channel``) down to
    prev_d: int | None  # the lead's max error before it; None: the level's first coding
    mode: int  # PassMode bits
    parts: tuple[Part, ...]
    #: (version 10) the max error of the other colours, and before it (None: the first coding); a
    #: colour whose max error the pass does not lower is not coded: it keeps its values and intervals
    colour_d: int | None = None  # None: the lead's
    prev_colour_d: int | None = None

    @property
    def others_d(self) -> int:
        """The max error the pass leaves the colours other than the lead at."""
        return self.d if self.colour_d is None else self.colour_d

    @property
    def bound(self) -> int:
        """The largest error of any of the level's values once the pass is complete."""
        return max(self.d, self.others_d)

    def step_d(self, channels: int, step: int) -> int | None:
        """The max error coding step ``step`` codes its values down to, None where the pass leaves
        them as they are (its colour's max error not lowered)."""
        lead = is_lead_step(channels, step)
        d, prev = (self.d, self.prev_d) if lead else (self.others_d, self.prev_d if self.colour_d is None
                                                                       else self.prev_colour_d)
        return d if prev is None or d < prev else None


def is_lead_step(channels: int, step: int) -> bool:
    """Whether coding step ``step`` of an image of ``channels`` codes the lead colour (each step codes
    either the lead's odd channels or the others')."""
    return set(coding_steps(channels)[step]) <= set(lead_odd_channels(channels))


def untruncated(p: Pass) -> bool:
    """Whether pass ``p``'s refinement codes every bin index untruncated (``PassMode.UNTRUNCATED``)."""
    return bool(p.mode & PassMode.UNTRUNCATED)


@dataclass(frozen=True)
class ChunkSpec:
    """One chunk of the plan: part ``part`` of ``pass_`` (None: a generative level's chunk)."""

    index: int  # position in the stream, 0 = the first chunk
    layer: int  # the pass's layer; generative chunks: the layer count
    level: int
    part: int
    pass_: Pass | None

    @property
    def last_part(self) -> bool:
        return self.pass_ is None or self.part == len(self.pass_.parts) - 1


def strips(fmt: FormatVersion, h: int, w: int) -> tuple[Strip, ...]:
    """The strips a level with an (h, w) grid is processed in (one: the whole grid)."""
    rows = fmt.strip_rows(h, w)
    return tuple(Strip(r, min(r + rows, h)) for r in range(0, max(h, 1), max(rows, 1)))


def _parts(fmt: FormatVersion, channels: int, h: int, w: int, base: bool, p: Pass) -> tuple[Part, ...]:
    """A pass's parts: one (every step) for the base and a small level, else one per step it codes and strip."""
    level_strips = strips(fmt, h, w)
    if base or not fmt.split(h, w):
        return (Part(None, level_strips),)
    return tuple(Part(s, (strip,)) for s in range(len(coding_steps(channels)))
                 if p.step_d(channels, s) is not None for strip in level_strips)


def passes_of(header) -> list[Pass]:
    """Every pass of a stream, in stream order (for versions 1 to 5: one per coded level)."""
    fmt = format_version(header.version)
    shapes = level_shapes(header.height, header.width, total_levels(header.height, header.width))
    L, g = header.levels, header.generative_levels
    layers = header.layers or (header.max_error,)
    colours = header.other_layers  # version 10: the colours' own max errors
    modes = header.modes or ((0,) * (L + 1),) * len(layers)
    out = []
    for layer, ds in enumerate(layers):
        for k in range(L, g - 1, -1):
            prev = layers[layer - 1][k] if layer else None
            cd = colours[layer][k] if colours else None
            prev_cd = colours[layer - 1][k] if colours and layer else None
            if prev is not None and ds[k] >= prev and (cd is None or cd >= prev_cd):
                continue
            h, w = shapes[k + 1] if k < len(shapes) - 1 else (1, 1)
            p = Pass(layer, k, ds[k], prev, modes[layer][k], (), cd, prev_cd)
            out.append(replace(p, parts=_parts(fmt, header.channels, h, w, k == L, p)))
    return out


def stream_plan(header) -> list[ChunkSpec]:
    """Every chunk of a stream with this header, in stream order."""
    out: list[ChunkSpec] = []
    for p in passes_of(header):
        for i in range(len(p.parts)):
            out.append(ChunkSpec(len(out), p.layer, p.level, i, p))
    layer = len(header.layers) if header.layers else 0
    for k in range(header.generative_levels - 1, -1, -1):
        out.append(ChunkSpec(len(out), layer, k, 0, None))
    return out


def guarantees(header, plan: list[ChunkSpec]) -> list[int | None]:
    """After each chunk of ``plan``, the largest error any pixel of the full image can still
    have (None: some level is not coded yet, or is generative, so nothing is guaranteed)."""
    current: dict[int, int] = {}  # level -> its max error once a pass over it is complete
    coded = set(range(header.generative_levels, header.levels + 1))
    out: list[int | None] = []
    for spec in plan:
        if spec.pass_ is not None and spec.last_part:
            current[spec.level] = spec.pass_.bound
        complete = not header.generative_levels and coded <= current.keys()
        out.append(max(current[k] for k in coded) if complete else None)
    return out
