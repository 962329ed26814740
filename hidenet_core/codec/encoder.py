"""Encoding an image into a ``.hdn`` stream (closed loop, any mix of d and g, in layers).

The stream's chunks follow its plan (``plan.py``): for versions 1 to 5 one chunk per
level, base first; for the layered version 6 one pass over every level per layer, base
first, each large level's pass split into parts (a coding step on a strip of rows), the
generative levels last. The base's pass codes the base itself hierarchically: its own
pyramid down to a single pixel, with the same predictor. Every level is predicted from
the *reconstructed* coarser level, so the decoder sees exactly what the encoder saw; a
later pass refines what the earlier ones left open (``intervals.py``).

``encode_chunks`` yields the stream piece by piece as it is made (the server streams
them as they come); ``encode`` returns the whole stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..predictors.base import Predictor
from ..predictors.exact import has_exact
from .container import (
    MAX_ERROR,
    MAX_LEVELS,
    MAX_PIXELS,
    MAX_SIDE,
    MODE_OF_CHANNELS,
    Header,
    pack_chunk,
    pack_header,
)
from .entropy import LevelEncoder
from .intervals import Interval, first_interval, refine_encode
from .loop import LevelPass, level_crc, part_crc, predict_level, top_prior
from .plan import ChunkSpec, Pass, PassMode, guarantees, stream_plan, untruncated
from .pyramid import default_levels, level_images, level_shapes, split, total_levels
from .reconstruction import Reconstruction
from .schedule import schedule_problem
from .stages import calibration, previewfilter
from .stages.calibration import ChannelInput, ChannelParams
from .versions import VERSION, VERSIONS, FormatVersion, format_version

__all__ = ["EncodeSettings", "EncodedChunk", "EncodeCancelled", "encode", "encode_chunks", "resolve_max_error",
           "default_layers", "default_schedule", "FIRST_LAYER_ERROR", "DEFAULT_LAYERS", "DISPLAY_PIXELS", "EFFORTS",
           "DEFAULT_EFFORT", "pass_modes", "version_for"]

#: versions 6 to 9: the default first layer's max error at level 0 (halved at each coarser level):
#: the picture it shows after a few percent of the lossless stream (docs/format.md, "Choosing the layers")
FIRST_LAYER_ERROR = 32
#: version 10: the default layers before the last, each as (the lead's, the other colours') max error at
#: level 0, halved at each coarser level: green within 16 with red and blue within 64, then green within
#: 8 with red and blue within 32 (docs/format.md, "The colours' own max errors (version 10)")
DEFAULT_LAYERS = ((16, 64), (8, 32))


#: effort -> what it trades (``pass_modes``); 1 is the fastest, the last the smallest
EFFORTS = {
    1: "the built-in interpolation, no per-image stages, refinements untruncated (from format version 9): "
       "the fastest to encode and decode",
    2: "the built-in interpolation with the per-image stages",
    3: "the model in the last layer but on the full-size level, the interpolation elsewhere",
    4: "the model in the last layer, the interpolation in the earlier ones (0.1 to 0.2% larger than 5)",
    5: "the model and the per-image stages in every pass: the smallest",
}
DEFAULT_EFFORT = 4


def pass_modes(effort: int, levels: int, layers: int, fmt: FormatVersion | None = None) -> tuple[tuple[int, ...], ...]:
    """Each pass's mode (``plan.PassMode``) per layer and level for an effort (``EFFORTS``) in format
    ``fmt`` (default: the current one)."""
    if effort not in EFFORTS:
        raise ValueError(f"effort {effort} is outside {min(EFFORTS)}..{max(EFFORTS)}")
    fmt = format_version(VERSION) if fmt is None else fmt
    if effort == 1:
        untruncated = PassMode.UNTRUNCATED if fmt.untruncated_mode else 0
        return ((PassMode.INTERP | PassMode.PLAIN | untruncated,) * (levels + 1),) * layers
    if effort == 2:
        return ((PassMode.INTERP,) * (levels + 1),) * layers
    last = tuple(PassMode.INTERP if effort == 3 and k == 0 else 0 for k in range(levels + 1))
    earlier = (0,) * (levels + 1) if effort == 5 else (PassMode.INTERP,) * (levels + 1)
    return (earlier,) * (layers - 1) + (last,)


@dataclass(frozen=True)
class EncodeSettings:
    """How to code an image; the defaults are lossless with every level coded, in the current format."""

    max_error: int | tuple[int, ...] = 0  # d, or d per level from 0 (full image) to L (base): what the stream ends at
    generative_levels: int = 0  # the finest g levels send no residual
    levels: int | None = None  # L; None: base longer side <= 32 px
    version: int = VERSION  # the format version to write (versions.py); older ones for older decoders
    #: layered versions: the max error per level of every layer but the last (level 0 first; in version 10
    #: the lead colour's); None: the default (``default_schedule``); () : a single layer (one pass)
    layers: tuple[int | tuple[int, ...], ...] | None = None
    #: layered versions: how hard to work (``EFFORTS``): faster to encode and decode, or smaller
    effort: int = DEFAULT_EFFORT
    #: version 10: the max error per level of the colours other than the lead (green) in every layer but
    #: the last, as ``layers`` (one row per layer of it); None: the lead's (with ``layers`` None too,
    #: the default schedule's, ``default_schedule``)
    colour_layers: tuple[int | tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        fmt = format_version(self.version)  # raises for a version not in the table
        if self.layers and not fmt.layered:
            raise ValueError(f"format version {self.version} has no layers; layers need version 6 or later")
        if self.effort not in EFFORTS:
            raise ValueError(f"effort {self.effort} is outside {min(EFFORTS)}..{max(EFFORTS)}")
        if self.colour_layers is not None and not fmt.colour_layers:
            raise ValueError(f"format version {self.version} has no max errors of the colours of their own; "
                             f"they need version 10 or later")
        if self.colour_layers and not self.layers:
            raise ValueError("the colours' max errors need the layers they belong to (layers, the lead's)")
        if self.effort != DEFAULT_EFFORT and not fmt.layered:
            raise ValueError(f"format version {self.version} has no efforts; efforts need version 6 or later")

    @property
    def format(self) -> FormatVersion:
        """The record of the format version these settings write."""
        return format_version(self.version)


class EncodeCancelled(Exception):
    """``encode_chunks`` stopped because its ``cancelled`` said so."""


@dataclass(frozen=True)
class EncodedChunk:
    """One piece of a stream as the encoder makes it: the header (``spec`` None) or a chunk."""

    data: bytes
    spec: ChunkSpec | None
    chunks: int  # the stream's chunk count
    max_error: int | None = None  # after this chunk, the largest error any pixel can have (None: unbounded)
    #: the encoder's reconstruction after this chunk, which is the decoder's after it (a chunk only):
    #: valid until the generator is resumed, which changes it in place
    state: Reconstruction | None = field(default=None, compare=False, repr=False)


def resolve_max_error(max_error: int | Sequence[int], levels: int) -> tuple[int, ...]:
    """Expand a single d or check a per-level list (index 0 = full image)."""
    if isinstance(max_error, int):
        values = (max_error,) * (levels + 1)
    else:
        values = tuple(int(v) for v in max_error)
        if len(values) != levels + 1:
            raise ValueError(
                f"got {len(values)} max-error values for {levels + 1} levels (0..{levels}); "
                f"give one value or one per level"
            )
    if any(not 0 <= v <= MAX_ERROR for v in values):
        raise ValueError(f"max-error values must be in 0..{MAX_ERROR}, got {list(values)}")
    return values


#: a Full-HD display (1920 x 1080): a level whose next coarser level has at least this many pixels is
#: seen at fit shrunk to less than half its size (``default_schedule``)
DISPLAY_PIXELS = 1920 * 1080


def default_schedule(final: tuple[int, ...], generative_levels: int = 0, fmt: FormatVersion | None = None,
                     channels: int = 3, shapes: Sequence[tuple[int, int]] = ()
                     ) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]:
    """The default layers before the last one (which ends at ``final``, d per level, level 0 first) in
    format ``fmt`` (default: the current one), as (the lead's max errors, the other colours' or ()
    where they are the lead's): each layer of ``DEFAULT_LAYERS`` (versions 6 to 9: one layer of
    ``FIRST_LAYER_ERROR``) halved at each coarser level, the base and the generative levels at their
    final d, no level below its final d; a layer no coarser than the one after it is left out.

    ``shapes``: the image's level sizes (h, w), level 0 first (``pyramid.level_shapes``). A level whose
    next coarser level already covers a Full-HD display (``DISPLAY_PIXELS``: the level of a photograph
    of about 8 megapixels or more) is refined by the first layer and the last only: a viewer sees it
    at fit shrunk to less than half its size, so a middle layer there would add little to the picture
    and about a fifth to the decoding time (a 12 MP photograph's level 0: 11.4 instead of 13.5 s on two
    cores, for 0.5% fewer bytes; docs/format.md, "The largest levels skip the second layer").

    Measured (docs/format.md, "Choosing the layers" and "The colours' own max errors"): versions 6 to
    9's one layer of 32 costs 1.9 to 2.5% on average, 6.0% at most (eveningglow); version 10's two
    layers, red and blue coarser than green, cost 1.7 to 2.1% on average, 3.0% at most, and show a
    better picture than a progressive JPEG at every budget from 2 to 64 KB on the samples and on the
    validation crops.
    """
    fmt = format_version(VERSION) if fmt is None else fmt
    levels = len(final) - 1
    colours = fmt.colour_layers and channels > 1
    schedule = DEFAULT_LAYERS if fmt.colour_layers else ((FIRST_LAYER_ERROR, FIRST_LAYER_ERROR),)
    # levels seen at fit shrunk by more than half: no pass in a layer between the first and the last
    large = {k for k in range(min(levels, len(shapes) - 1))
             if shapes[k + 1][0] * shapes[k + 1][1] >= DISPLAY_PIXELS}

    def halved(d: int) -> tuple[int, ...]:
        return tuple(final[k] if k == levels or k < generative_levels else max(final[k], d >> k)
                     for k in range(levels + 1))

    def kept(row: tuple[int, ...], first: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(first[k] if k in large else d for k, d in enumerate(row))

    forward = [(halved(lead), halved(other) if colours else halved(lead)) for lead, other in schedule]
    forward = forward[:1] + [(kept(lead, forward[0][0]), kept(other, forward[0][1])) for lead, other in forward[1:]]
    rows: list[tuple[tuple[int, ...], tuple[int, ...]]] = [(final, final)]  # from the last layer back
    for row in reversed(forward):
        if row != rows[-1]:  # each layer is no finer than the next (the schedule's are coarser), so: coarser
            rows.append(row)
    rows = rows[:0:-1]
    layers = tuple(r for r, _ in rows)
    others = tuple(c for _, c in rows)
    return layers, (others if others != layers else ())


def default_layers(final: tuple[int, ...], generative_levels: int = 0) -> tuple[tuple[int, ...], ...]:
    """The lead's max errors of the default layers before the last (``default_schedule``)."""
    return default_schedule(final, generative_levels)[0]


def _check_image(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit image (uint8), got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in MODE_OF_CHANNELS:
        raise ValueError(f"expected an (H, W, C) image with C in {', '.join(map(str, MODE_OF_CHANNELS))}; "
                         f"got shape {image.shape}")
    h, w = image.shape[:2]
    if h < 1 or w < 1 or h * w > MAX_PIXELS or max(h, w) > MAX_SIDE:
        raise ValueError(
            f"image size {w}x{h} is outside the supported range (1..{MAX_SIDE} per side, {MAX_PIXELS} pixels)"
        )
    return image


def _schedule(settings: EncodeSettings, levels: int, final: tuple[int, ...], channels: int,
              shapes: Sequence[tuple[int, int]] = ()
              ) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]:
    """The validated layer schedule (layered versions), the last layer ``final``: the lead's max
    errors of every layer and, in version 10, the other colours' (() : the lead's)."""
    fmt = settings.format
    if not fmt.layered:
        return (), ()
    if settings.layers is None:
        before, colour_rows = default_schedule(final, settings.generative_levels, fmt, channels, shapes)
    else:
        before, colour_rows = settings.layers, settings.colour_layers or ()
    layers = (*(resolve_max_error(r if isinstance(r, int) else tuple(r), levels) for r in before), final)
    colours = _colour_layers(colour_rows, levels, layers) if fmt.colour_layers and channels > 1 else ()
    if problem := schedule_problem(layers, colours, settings.generative_levels):
        raise ValueError(problem)
    return layers, colours


def _colour_layers(given: tuple[int | tuple[int, ...], ...], levels: int,
                   layers: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
    """The max errors of the colours other than the lead, one row per layer (() : the lead's,
    ``layers``), as given (``schedule_problem`` checks them with the lead's)."""
    if not given:
        return ()
    if len(given) != len(layers) - 1:
        raise ValueError(f"{len(given)} rows of the colours' max errors for {len(layers) - 1} layers before the "
                         f"last; give one row per layer")
    colours = (*(resolve_max_error(r if isinstance(r, int) else tuple(r), levels) for r in given), layers[-1])
    return () if colours == layers else colours


def _never() -> bool:
    return False


class _Coder:
    """The encoder's side of the closed loop on one level (``loop.LevelCoder``): codes the
    true odd values (3C, h, w) with max error ``d``, and fits and codes the calibration;
    raises EncodeCancelled as soon as ``cancelled`` says so (between channels and rounds)."""

    def __init__(self, enc: LevelEncoder, odd_true: np.ndarray, d: int, version: FormatVersion,
                 cancelled: Callable[[], bool] = _never, untruncated: bool = False) -> None:
        self.enc, self.odd_true, self.d, self.version, self.cancelled = enc, odd_true, d, version, cancelled
        self.untruncated = untruncated

    def code(self, channels, rows, valid, mean, scale, prior: Interval | None) -> Interval:
        if self.cancelled():
            raise EncodeCancelled("the encoding was cancelled")
        x = self.odd_true[channels, rows.start : rows.stop][valid]
        if prior is None:
            return first_interval(self.enc.encode(x, mean, scale, self.d), self.d)
        return refine_encode(self.enc, x, prior.lo, prior.hi, mean, scale, self.d, self.untruncated)

    def calibrate(self, channels: list[ChannelInput]) -> list[ChannelParams]:
        if self.cancelled():
            raise EncodeCancelled("the encoding was cancelled")
        step = 2 * self.d + 1
        w = self.odd_true.shape[-1]
        truth = [self.odd_true[c.channel].reshape(-1)[c.flat + (c.rows.start * w if c.rows else 0)] for c in channels]
        params = [calibration.fit(x, c, step, self.version) for x, c in zip(truth, channels)]
        calibration.write(self.enc, self.version, channels, params)
        return params


class _OddValues:
    """The true odd values (3C, h, w) of each level, split off its original when asked: the
    passes go level by level, so only the last two asked for are kept (all of them at once
    would be three quarters of the image's bytes again)."""

    def __init__(self, originals: list[np.ndarray]) -> None:
        self.originals = originals
        self._kept: dict[int, np.ndarray] = {}

    def __getitem__(self, k: int) -> np.ndarray:
        if k not in self._kept:
            if len(self._kept) >= 2:
                del self._kept[next(iter(self._kept))]
            self._kept[k] = split(self.originals[k])[1]
        return self._kept[k]


def encode_chunks(image: np.ndarray, predictor: Predictor, settings: EncodeSettings = EncodeSettings(),
                  cancelled: Callable[[], bool] | None = None) -> Iterator[EncodedChunk]:
    """Encode an (H, W, C) uint8 image (C = 1, 3 or 4): the header, then every chunk in
    stream order, each as soon as it is made. ``cancelled`` is asked between chunks and,
    within them, before every channel is coded; once it returns True the generator raises
    ``EncodeCancelled``."""
    cancelled = cancelled or _never
    image = _check_image(image)
    height, width, channels = image.shape
    levels = default_levels(height, width) if settings.levels is None else settings.levels
    top = total_levels(height, width)
    if not 0 <= levels <= min(top, MAX_LEVELS):
        raise ValueError(f"--levels {levels} is outside 0..{min(top, MAX_LEVELS)} for a {width}x{height} image")
    g = settings.generative_levels
    if not 0 <= g <= levels:
        raise ValueError(f"generative levels {g} is outside 0..{levels}")
    final = resolve_max_error(settings.max_error, levels)
    fmt = settings.format
    layers, colours = _schedule(settings, levels, final, channels, level_shapes(height, width, levels))
    modes = pass_modes(settings.effort, levels, len(layers), fmt) if layers else ()
    header = Header(width, height, channels, levels, final, g, predictor.name, predictor.weights_hash(),
                    version=fmt.number, layers=layers, modes=modes, other_layers=colours)
    plan = stream_plan(header)
    bounds = guarantees(header, plan)
    yield EncodedChunk(pack_header(header), None, len(plan))

    originals = level_images(image.transpose(2, 0, 1), top)  # (C, H, W) of every level down to 1x1
    odds = _OddValues(originals)  # the odd values (3C, h, w) that rebuild each level
    state = Reconstruction(header, predictor)  # what the decoder will hold, chunk by chunk
    predictor = state.predictor  # the model as the version evaluates it (exactly, from version 8)
    shapes = state.shapes
    last_pass = {p.level: p for c in plan if (p := c.pass_) is not None}  # level -> its last pass
    previews: dict[int, np.ndarray] = {}  # generative level -> its filtered prediction (what the level is)
    current: LevelPass | None = None
    for spec, bound in zip(plan, bounds):
        if cancelled():
            raise EncodeCancelled("the encoding was cancelled")
        enc = LevelEncoder(predictor.distribution, tables=fmt.value_tables)
        if spec.pass_ is None:  # a generative level: the prediction itself, filtered where it has a filter
            k = spec.level
            recon = previews.pop(k, None)
            if recon is None:
                recon = predict_level(predictor, state.image(k + 1), shapes[k], k, None, fmt)
            state.set_level(k, split(recon)[1], None)
            _fit_filter(enc, predictor, fmt, state, odds, shapes, k - 1, g, previews)
            payload = enc.payload() if fmt.carries_filter(shapes, k - 1) else b""
            yield EncodedChunk(pack_chunk(k, payload, level_crc(recon), fmt.layered, spec.layer, 0), spec,
                               len(plan), bound, state)
            continue
        p = spec.pass_
        if p.level == levels:  # the base: the top pixel, then the base's own levels, in one part
            crc = _code_base(enc, fmt, state, p, originals, odds, keep=p is not last_pass[p.level],
                             cancelled=cancelled)
        else:
            if spec.part == 0:
                current = state.start_pass(p, keep=p is not last_pass[p.level])
            assert current is not None
            part = current.run(_Coder(enc, odds[p.level], p.d, fmt, cancelled, untruncated(p)))
            crc = part_crc(current.odd, current.part_channels(part), part.strips) if fmt.layered else None
            if current.done:
                state.set_level(p.level, current.odd, current.intervals)
                if crc is None:
                    crc = level_crc(state.image(p.level))
        if spec.last_part and (p.prev_d is None or p.level - 1 < g):
            _fit_filter(enc, predictor, fmt, state, odds, shapes, p.level - 1, g, previews)
        yield EncodedChunk(pack_chunk(p.level, enc.payload(), crc, fmt.layered, spec.layer, spec.part), spec,
                           len(plan), bound, state)


def version_for(predictor: Predictor) -> int:
    """The newest format version ``predictor`` can write: ``VERSION``, or for a learned model
    without an exact evaluation (``predictors.exact.has_exact``: a U-Net, a level-conditioned
    CNNP) the newest before version 8 (float32 streams, machine-dependent)."""
    if has_exact(predictor):
        return VERSION
    return max(v for v in VERSIONS if not format_version(v).exact_network)


def encode(image: np.ndarray, predictor: Predictor, settings: EncodeSettings = EncodeSettings()) -> bytes:
    """Encode an (H, W, C) uint8 image (C = 1, 3 or 4) into a complete ``.hdn`` stream."""
    return b"".join(c.data for c in encode_chunks(image, predictor, settings))


def _code_base(enc: LevelEncoder, fmt: FormatVersion, state: Reconstruction, p: Pass, originals, odds, keep: bool,
               cancelled: Callable[[], bool] = _never) -> int:
    """The base's pass: the top pixel, then each of the base's own levels, top down; the CRC of the base."""
    c = originals[0].shape[0]
    x = originals[state.top_level].reshape(-1)
    if p.prev_d is None:
        state.set_top(first_interval(enc.encode(x, *top_prior(c), p.d), p.d))
    else:
        old = state.top
        state.set_top(refine_encode(enc, x, old.lo, old.hi, *top_prior(c), p.d, untruncated(p)))
    for k in range(state.top_level - 1, p.level - 1, -1):
        level_pass = state.start_pass(p, keep, level=k, track=False)
        level_pass.run(_Coder(enc, odds[k], p.d, fmt, cancelled, untruncated(p)))
        state.set_level(k, level_pass.odd, level_pass.intervals)
    return level_crc(state.image(p.level))


#: a preview filter of a level whose grid has more positions than this is fitted on a band of
#: about this many positions across the middle of the level (it is fitted on a subsample of
#: ``previewfilter.FIT_VALUES`` anyway): predicting the whole level for it cost as much as
#: coding the level again. The decoder only reads the weights, so this is the encoder's choice.
FILTER_BAND_POSITIONS = 1 << 18


def _fit_filter(enc: LevelEncoder, predictor: Predictor, fmt: FormatVersion, state: Reconstruction, odds, shapes,
                k: int, g: int, previews: dict[int, np.ndarray]) -> None:
    """Fit level k's preview filter on the reconstruction of level k + 1 and code it, where the format has one."""
    if not fmt.carries_filter(shapes, k):
        return
    even, truth, size = state.image(k + 1), odds[k], shapes[k]
    h, w = even.shape[1:]
    if k >= g and h * w > FILTER_BAND_POSITIONS:  # not a generative level: the prediction is not kept
        rows = max(2, (FILTER_BAND_POSITIONS // w) & ~1)
        r0 = ((h - rows) // 2) & ~1
        even, truth, size = even[:, r0 : r0 + rows], truth[:, r0 : r0 + rows], (2 * rows, size[1])
    fitter = previewfilter.Fitter(truth)
    predicted = predict_level(predictor, even, size, k, fitter, fmt)
    if k < g:  # exactly what the decoder will rebuild, if no later pass refines level k + 1
        if fitter.calls > len(fitter.weights):  # fitted strip by strip, but the stream carries the last fit
            predicted = predict_level(predictor, even, size, k, previewfilter.applier(fitter.ordered()), fmt)
        previews[k] = predicted
    previewfilter.write(enc, fitter.ordered())
    state.set_filter(k, fitter.ordered())
