"""Reconstruct one pyramid level from the next coarser one: the closed loop's core.

The encoder and the decoder run exactly this code (``LevelPass``); they differ only in
their ``LevelCoder``: the encoder's codes the true odd values and returns their
reconstruction, and fits and codes the calibration; the decoder's reads both from the
stream. ``predict_level`` is a level shown as a prediction (a generative level, a
preview): every odd value is the predicted mean, refined by the level's preview filter
(``previewfilter.py``) where it has one.

A pass runs the predictor once per coding *step* (groups of odd channels, each seeing the
values decoded before it) and, in the layered version, per *strip* of grid rows, the
prediction seeing ``halo_rows`` more rows above and below (so a large level never needs
the network's activations for all of it at once); within a strip the channels being
coded read beyond the strip as if it were the whole grid (``pyramid.window``). A pass is
run part by part (``plan.Part``: a step and a strip, or all of them), one chunk each.

What a coded level carries is its format version's (``versions.py``): in a version with
calibration a level with enough positions is calibrated (``calibration.py``): each step
is coded in rounds (``calibration.rounds``: the channels without a parent and then those
with one, by phase where the version says so), and before each round's values the
coder's ``calibrate`` gives the parameters of its channels, including, as the version
has them, each channel's linear prediction from what is already decoded (``linear.py``)
and a correction of its scale from the surprise of what is already decoded
(``scalecontext.py``). A later pass of a layered stream refines the intervals the values
are known to lie in (``intervals.py``) with a new prediction from the refined levels.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np
import torch

from .. import memory
from ..predictors.base import Prediction, Predictor, snap
from .intervals import Bounds, FirstPassBounds, Interval, StoredBounds, truncated_mean
from .plan import Part, Strip, strips
from .pyramid import merge, odd_valid_mask
from .stages import calibration, linear, previewfilter, scalecontext
from .stages.calibration import ChannelInput, ChannelParams
from .stages.linear import ChannelFeatures
from .stages.previewfilter import FilterFn
from .stages.scalecontext import ScaleContext
from .versions import FormatVersion

__all__ = ["LevelCoder", "LevelPass", "code_level", "predict_level", "estimate_level", "level_crc", "part_crc",
           "to_tensor", "TOP_MEAN", "TOP_SCALE", "top_prior", "one_thread"]

#: prior of the single top pixel of the base's own pyramid, the first values of a stream
TOP_MEAN = 128.0
TOP_SCALE = 64.0


def top_prior(channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and scale (float32, one per channel) the top pixel is coded with."""
    return np.full(channels, TOP_MEAN, np.float32), np.full(channels, TOP_SCALE, np.float32)


class LevelCoder(Protocol):
    """One side of the closed loop on one level: the encoder's or the decoder's."""

    d: int  # the max error of the step being coded (the pass sets it before each step)

    def code(self, channels: list[int], rows: Strip, valid: np.ndarray, mean: np.ndarray, scale: np.ndarray,
             prior: Interval | None) -> Interval:
        """The values of ``channels`` at the ``valid`` positions of grid rows ``rows``, given
        their prediction, as intervals (1-D, in the order of ``valid``) with the value shown.

        valid: bool (k, rows, w); mean, scale: float32 arrays of the valid values; prior: the
        intervals they are known to lie in (a later pass of a layered stream), else None.
        """
        ...

    def calibrate(self, channels: list[ChannelInput]) -> list[ChannelParams]:
        """The calibration of each channel of one round of a calibrated step: the encoder fits
        and codes it, the decoder reads it."""
        ...


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside: for the per-image stages' many small tensors (a few
    thousand values each), where a second thread only adds waiting; on a machine whose
    cores are busy with other work, the encoder's fits ran 5 times slower on two threads
    than on one (docs/bench.md, "Scaling"). Results do not depend on the thread count."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def to_tensor(image_chw: np.ndarray) -> torch.Tensor:
    """A (1, C, h, w) float32 tensor in pixel units from a (C, h, w) uint8 array."""
    return torch.from_numpy(np.ascontiguousarray(image_chw)).float().unsqueeze(0)


def level_crc(image_chw: np.ndarray) -> int:
    """CRC-32 of a reconstructed level's bytes (C, H, W order)."""
    return zlib.crc32(np.ascontiguousarray(image_chw, dtype=np.uint8).tobytes())


def part_crc(odd: np.ndarray, channels: list[int], part_strips: tuple[Strip, ...]) -> int:
    """CRC-32 of what a part codes: its channels' values (shown) on its strips' rows, channel
    by channel, strip by strip (the padding positions included, which hold predictions)."""
    crc = 0
    for ch in channels:
        for s in part_strips:
            crc = zlib.crc32(np.ascontiguousarray(odd[ch, s.start : s.stop]).tobytes(), crc)
    return crc


#: the predictor keeps memos (``Memos``) for windows of this many positions of a level in all
MEMO_POSITIONS = 1 << 22


class Memos:
    """The predictor's memo of each window of a level's rows (``Predictor.takes_memo``), kept by
    a pass across its steps (the same even image, odd values only added), for windows of at
    most ``limit`` positions in all: the windows met first keep theirs, the others run without.

    A memo only saves time (each step's interpolation computed once instead of once per later
    step; the values are the same either way), but holds about 20 bytes a position, and the
    windows of the tiles overlap: all of them would hold 0.4 GB over the finest level of a
    40 MP photograph. ``limit`` keeps them within about 84 MB (RGB) whatever the image size.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = MEMO_POSITIONS if limit is None else limit
        self._memos: dict[tuple[int, int], dict] = {}
        self._positions = 0

    def get(self, rows: tuple[int, int], width: int) -> dict | None:
        """The memo of the window of rows ``rows`` (a new one while within the limit), else None."""
        memo = self._memos.get(rows)
        if memo is None:
            n = (rows[1] - rows[0]) * width
            if self._positions + n > self.limit:
                return None
            memo = self._memos[rows] = {}
            self._positions += n
        return memo

    def clear(self) -> None:
        self._memos.clear()
        self._positions = 0


def _predict(predictor: Predictor, even: np.ndarray, odd: np.ndarray, step: int, level: int, rows: Strip,
             halo: int, memos: Memos | None = None):
    """The predictor's output for ``step`` on grid rows ``rows``, seeing ``halo`` rows around them.

    ``memos``: kept by the caller across the steps of one level: the predictor's memo of each window."""
    h = even.shape[1]
    a, b = max(0, rows.start - halo), min(h, rows.stop + halo)
    pred = _tiled(predictor, even, odd, step, level, a, b, memos)
    top, n = rows.start - a, rows.stop - rows.start
    if a == 0 and b == h and n == h:
        return pred
    context = None if pred.context is None else pred.context[..., top : top + n, :]
    return pred._replace(mean=pred.mean[..., top : top + n, :], scale=pred.scale[..., top : top + n, :],
                         context=context)


#: the predictor runs over a window of more positions than this in tiles of rows (``_tiled``)
TILE_POSITIONS = 1 << 17
#: ... each tile seeing at most this many more rows above and below: more than the receptive
#: field of every shipped model and its inputs (at most 12 rows), so the tiles give exactly
#: what one run over the window gives (tests/core/codec/test_tiles.py checks it); even, so that
#: a tile starts on the window's grid of rows of every parity (a U-Net's stride-2 convolution
#: samples it)
TILE_HALO = 16


def tile_halo(predictor: Predictor) -> int:
    """The rows a tile sees above and below it: the predictor's receptive field
    (``Predictor.context_rows``) rounded up to even, else ``TILE_HALO``. The default model
    reads 7 rows: on a 40 MP photograph's finest level a tile ran the network on 64 rows for
    32 of them, and now on 46 for 30."""
    rows = predictor.context_rows
    return TILE_HALO if rows is None else min(TILE_HALO, max(2, rows + (rows & 1)))


def tile_rows(rows: int, width: int, halo: int = TILE_HALO) -> int:
    """The rows of each tile of a window (``rows`` x ``width`` positions); ``rows``: one tile."""
    if rows * width <= TILE_POSITIONS:
        return rows
    return max(2 * halo, (TILE_POSITIONS // width) & ~1)


def _empty_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    """An empty tensor like ``t`` with ``rows`` rows (dimension -2), its dimensions laid out in
    memory in the order of ``t``'s (a channels-last context stays channels-last: the tiles
    are copied in as blocks, and the scale context reads it as it reads one tile's)."""
    shape = (*t.shape[:-2], rows, t.shape[-1])
    order = sorted(range(t.dim()), key=lambda d: (-t.stride(d), d))  # outermost first
    inverse = [order.index(d) for d in range(t.dim())]
    return t.new_empty([shape[d] for d in order]).permute(inverse)


def _tiled(predictor: Predictor, even: np.ndarray, odd: np.ndarray, step: int, level: int, a: int, b: int,
           memos: Memos | None):
    """The predictor's output for ``step`` on grid rows ``a:b`` as if run on them at once (edges
    replicated at ``a`` and ``b``), run in tiles of ``tile_rows`` rows, each seeing ``tile_halo``
    rows around it within ``a:b``: the network's activations never exceed a tile's, whatever
    the image's height (memory grows with the width only)."""
    halo = tile_halo(predictor)
    step_rows = tile_rows(b - a, even.shape[2], halo)
    out = None  # the window's (mean, scale, context), filled tile by tile
    for t0 in range(a, b, step_rows):
        t1 = min(b, t0 + step_rows)
        ta, tb = (t0, t1) if step_rows == b - a else (max(a, t0 - halo), min(b, t1 + halo))
        memo = memos.get((ta, tb), even.shape[2]) if memos is not None and predictor.takes_memo else None
        extra = {} if memo is None else {"memo": memo}
        pred = predictor(to_tensor(even[:, ta:tb]), to_tensor(odd[:, ta:tb]), step, level, **extra)
        if (ta, tb) == (a, b):  # one tile
            return pred
        # a context shared by the step's channels (a view of one) is kept as one
        shared = pred.context is not None and pred.context.shape[1] > 1 and pred.context.stride(1) == 0
        context = None if pred.context is None else pred.context[:, :1] if shared else pred.context
        if out is None:
            rows = b - a
            out = [None if t is None else _empty_rows(t, rows) for t in (pred.mean, pred.scale, context)]
        top, n = t0 - ta, t1 - t0
        for dst, src in zip(out, (pred.mean, pred.scale, context)):
            if dst is not None:
                dst[..., t0 - a : t1 - a, :].copy_(src[..., top : top + n, :])
        del pred, context
    mean, scale, context = out
    if context is not None and shared:
        context = context.expand(-1, mean.shape[1], -1, -1, -1)
    return Prediction(mean, scale, context)


#: after coding a strip of at least this many positions, a pass tells ``memory.strip_done`` (a
#: server then gives the pages its working arrays freed back to the system)
RELEASE_POSITIONS = 1 << 19


class LevelPass:
    """One pass of the closed loop over a level, run part by part (``run``).

    ``prior``: the intervals (``intervals.Bounds``, over the (3C, h, w) grid) the odd values lie in,
    for a later pass of a layered stream, and ``shown`` the values shown before it (what
    ``level`` shows of the parts not run yet); ``stages``: whether a calibrated level carries
    the per-image stages (a pass's mode may turn them off); ``keep``: keep each value's
    interval for a later pass.
    """

    def __init__(self, predictor: Predictor, version: FormatVersion, level: int, size: tuple[int, int],
                 even: np.ndarray, parts: tuple[Part, ...], prior: Bounds | None = None,
                 stages: bool = True, keep: bool = False, shown: np.ndarray | None = None,
                 step_ds: tuple[int | None, ...] | None = None) -> None:
        c, h, w = even.shape
        self.predictor, self.version, self.level, self.size, self.even = predictor, version, level, size, even
        self.parts = parts
        self.odd = np.zeros((3 * c, h, w), dtype=np.uint8)  # the values shown, as they are coded
        self.prior, self.shown = prior, shown
        # kept for a later pass: a refinement's intervals as planes; a first pass's follow from its values
        self.keep = keep
        self.intervals: Bounds | None = StoredBounds(self.odd.shape) if keep and prior is not None else None
        self.calibrated = stages and version.calibrated(h, w)
        self.state = _LevelState(even, self.odd, version) if self.calibrated and version.linear else None
        self.steps = predictor.steps(c)
        # the max error of each step (version 10: the lead's and the other colours' may differ); None: a
        # step the pass does not code, whose values keep what was shown and the intervals they had
        self.step_ds = step_ds
        self.frozen = [] if step_ds is None else [
            ch for s, d in enumerate(step_ds) if d is None for ch in self.steps[s]]
        if self.frozen:
            if prior is None or shown is None:
                raise ValueError("a first pass codes every channel")
            self.odd[self.frozen] = shown[self.frozen]  # what later steps' predictions read of them
            if isinstance(self.intervals, StoredBounds):
                lo, hi = prior.strip(self.frozen, 0, h)
                self.intervals.lo[self.frozen], self.intervals.hi[self.frozen] = lo, hi
        self.next = 0
        self._memos = Memos()  # the predictor's memo per window of rows (``_predict``)
        #: whether the pass leaves the colours other than the lead at a larger max error than the lead's
        #: (set by ``Reconstruction.start_pass``; a preview estimates them, ``Reconstruction.coarse_colours``)
        self.coarse_colours = False

    def valid(self, r0: int, r1: int) -> np.ndarray:
        """Which odd values of grid rows r0 .. r1 - 1 are pixels, not padding: (3C, r1 - r0, w) bool
        (computed per strip: a mask of the whole level would be a byte per value)."""
        h = self.even.shape[1]  # rows past the grid are none (as a slice of the whole mask would give)
        return odd_valid_mask(*self.size, self.even.shape[0], (min(r0, h), min(r1, h)))

    @property
    def done(self) -> bool:
        return self.next == len(self.parts)

    def part_steps(self, part: Part) -> list[int]:
        """The coding steps a part codes (of every step, those the pass codes)."""
        steps = range(len(self.steps)) if part.step is None else [part.step]
        return [s for s in steps if self.step_ds is None or self.step_ds[s] is not None]

    def part_channels(self, part: Part) -> list[int]:
        """The odd channels a part codes."""
        return [ch for s in self.part_steps(part) for ch in self.steps[s]]

    @torch.no_grad()
    def run(self, coder: LevelCoder) -> Part:
        """Code (or decode) the next part; return it. With ``step_ds``, the coder's ``d`` is set to
        each step's max error before it is coded."""
        part = self.parts[self.next]
        self.next += 1
        for step in self.part_steps(part):
            if self.step_ds is not None:
                coder.d = self.step_ds[step]
            for rows in part.strips:
                self._code_step(step, rows, coder)
                if (rows.stop - rows.start) * self.even.shape[2] >= RELEASE_POSITIONS:
                    memory.strip_done()
        if self.done:
            self._memos.clear()
            if self.keep and self.prior is None:
                self.intervals = FirstPassBounds(self.odd, coder.d if self.step_ds is None else self._channel_ds())
        return part

    def _channel_ds(self) -> int | np.ndarray:
        """A first pass's max error (``step_ds``): one, or where its steps' differ, one per odd channel (3C,)."""
        if len(set(self.step_ds)) == 1:
            return self.step_ds[0]
        out = np.zeros(self.odd.shape[0], dtype=np.int16)
        for s, chans in enumerate(self.steps):
            out[list(chans)] = self.step_ds[s]
        return out

    def coded(self, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
        """Which odd values (3C, h, w) the parts run so far have coded (a part codes a step's
        channels on its strips only); of grid rows ``rows`` and columns ``cols`` only, if given."""
        r0, r1, _ = rows.indices(self.odd.shape[1])
        width = len(range(*cols.indices(self.odd.shape[2])))
        coded = np.zeros((self.odd.shape[0], max(r1 - r0, 0), width), dtype=bool)
        for part in self.parts[: self.next]:
            for s in part.strips:
                a, b = max(s.start, r0), min(s.stop, r1)
                if a < b:
                    coded[self.part_channels(part), a - r0 : b - r0] = True
        return coded

    def image(self) -> np.ndarray:
        """The (C, H, W) level as it stands: the parts run so far as coded, the others as shown
        before the pass (0 in a first pass)."""
        if self.shown is None or self.done:
            return merge(self.even, self.odd, self.size)
        return merge(self.even, np.where(self.coded(), self.odd, self.shown), self.size)

    def _code_step(self, step: int, rows: Strip, coder: LevelCoder) -> None:
        c = self.even.shape[0]
        idx = list(self.steps[step])
        pred = _predict(self.predictor, self.even, self.odd, step, self.level, rows, self.version.halo_rows,
                        self._memos)
        # in place: the prediction's tensors are this step's own (``_tiled``'s or the model's outputs)
        pred = snap(pred if self.calibrated and self.version.scale_context else pred._replace(context=None),
                    in_place=True)
        means = pred.mean[0].numpy()  # (k, rows, w)
        scales = pred.scale[0].numpy()
        trunk = None if pred.context is None else pred.context[0].numpy()  # (k, F, rows, w)
        if not self.calibrated:
            self._code_values(idx, rows, means, scales, coder)
            return
        if self.state is not None:
            self.state.net_means.store(idx, rows, means)
        par = calibration.parents(c, tuple(idx))
        live = frozenset(idx)
        if self.state is not None:
            self.state.strip_started()
        for rnd in calibration.rounds(c, tuple(idx), self.version.rounds_by_phase):
            self._code_round(rnd, idx, par, rows, live, means, scales, trunk, coder)
        if self.state is not None and rows.stop == self.even.shape[1]:  # the step is complete on every strip
            self.state.step_done(idx)

    def _code_values(self, chans: list[int], rows: Strip, means: np.ndarray, scales: np.ndarray,
                     coder: LevelCoder) -> None:
        """Code the odd channels ``chans`` on grid rows ``rows`` given their (k, rows, w) means and scales."""
        r0, r1 = rows.start, rows.stop
        vals = np.clip(np.round(means), 0, 255).astype(np.uint8)
        v = self.valid(r0, r1)[chans]
        prior = None
        if self.prior is not None:
            lo, hi = self.prior.strip(chans, r0, r1)
            prior = Interval(lo[v], hi[v], vals[v])
        got = coder.code(chans, rows, v, means[v], scales[v], prior)
        vals[v] = got.rec
        self.odd[chans, r0:r1] = vals
        if isinstance(self.intervals, StoredBounds):
            self.intervals.store(chans, r0, r1, v, got)

    def _code_round(self, rnd, idx, par, rows: Strip, live, means, scales, trunk, coder: LevelCoder) -> None:
        """Calibrate and code the channels at positions ``rnd`` of a step on one strip, one channel at a time."""
        version, state, odd = self.version, self.state, self.odd
        r0, r1 = rows.start, rows.stop
        planes = None if state is None else state.planes(rows, live)
        surprise = None if state is None else state.surprise_view(rows, live)
        inputs, resids = [], []
        valid = self.valid(r0, r1)
        for j in rnd:
            ch = idx[j]
            flat = np.flatnonzero(valid[ch])
            resid = None
            if version.coupling and par[j] >= 0:
                resid = odd[idx[par[j]], r0:r1].astype(np.float64) - means[par[j]]
            feats = None if state is None else state.features(planes, ch, means[j], flat)
            context = None if state is None else state.context(surprise, ch, flat, None if trunk is None else trunk[j])
            inputs.append(ChannelInput(ch, flat, means[j].reshape(-1)[flat], scales[j].reshape(-1)[flat],
                                       None if resid is None else resid.reshape(-1)[flat], feats, context, rows))
            resids.append(resid)
        with one_thread():
            params = coder.calibrate(inputs)
        coded = []
        for j, inp, p, r in zip(rnd, inputs, params, resids):
            refinement = None if inp.features is None or not any(p.linear) else inp.features.refinement(p.linear)
            shift = None if inp.context is None or not any(p.context) else inp.context.shift(p.context)
            mean, scale = calibration.apply(means[j], scales[j], p, r, refinement, shift)  # (rows, w) each
            self._code_values([inp.channel], rows, mean[None], scale[None], coder)
            coded.append((inp.channel, mean, scale))
        if state is not None:  # known only once the whole round is coded: its channels' features do not see each other
            for ch, mean, scale in coded:
                state.decoded(ch, odd[ch, r0:r1], mean, scale, rows)


def code_level(predictor: Predictor, even: np.ndarray, size: tuple[int, int], level: int, coder: LevelCoder,
               version: FormatVersion) -> np.ndarray:
    """The (C, H, W) uint8 level ``level`` of size ``size`` = (H, W), coded (or decoded) by
    ``coder`` from its reconstructed even image (C, h, w) as format ``version`` codes it, in one part."""
    c, h, w = even.shape
    level_pass = LevelPass(predictor, version, level, size, even, (Part(None, strips(version, h, w)),))
    level_pass.run(coder)
    return level_pass.image()


@torch.no_grad()
def predict_level(predictor: Predictor, even: np.ndarray, size: tuple[int, int], level: int,
                  preview_filter: FilterFn | None = None, version: FormatVersion | None = None) -> np.ndarray:
    """The (C, H, W) uint8 level ``level`` predicted from its reconstructed even image (C, h, w):
    every odd value its rounded mean, with ``preview_filter`` (the level's preview filter,
    ``previewfilter.py``) refined by each odd channel's weights; in strips where ``version`` has them."""
    c, h, w = even.shape
    valid = odd_valid_mask(*size, c)  # (3C, h, w)
    odd = np.zeros((3 * c, h, w), dtype=np.uint8)
    level_strips = strips(version, h, w) if version is not None else (Strip(0, h),)
    halo = version.halo_rows if version is not None else 0
    # 'own' features never read the means
    planes = None if preview_filter is None else linear.Planes(even, odd, None)
    known: set[int] = set()
    memos = Memos()
    for step, channels in enumerate(predictor.steps(c)):
        idx = list(channels)
        for rows in level_strips:
            pred = snap(_predict(predictor, even, odd, step, level, rows, halo, memos)._replace(context=None))
            means = pred.mean[0].numpy()
            if preview_filter is not None:
                means = _filtered(means.astype(np.float64), idx, rows, even, odd, valid, known, preview_filter,
                                  planes if len(level_strips) == 1 else None)
            odd[idx, rows.start : rows.stop] = np.clip(np.round(means), 0, 255).astype(np.uint8)
        known.update(idx)
    return merge(even, odd, size)


#: the rows of each strip of ``estimate_level`` (bounds its working arrays whatever the image's size)
ESTIMATE_POSITIONS = 1 << 18


@torch.no_grad()
def estimate_level(predictor: Predictor, even: np.ndarray, size: tuple[int, int], level: int, lo: np.ndarray,
                   hi: np.ndarray, known: np.ndarray | None = None, coded: np.ndarray | None = None) -> np.ndarray:
    """The (C, H, W) uint8 level ``level`` from its even image (C, h, w) and the intervals its odd
    values are known to lie in, ``lo`` .. ``hi`` (3C, h, w): each odd value the rounded mean of
    the predictor's Laplace truncated to its interval (``intervals.truncated_mean``), step by step
    (a step's estimates are the next steps' decoded values); where ``coded`` (3C, h, w) is true,
    the value ``known`` holds instead (a refinement pass's parts coded so far).

    What a viewer is shown of a level a later pass of a layered stream will refine, once the
    levels above it are sharper than when it was coded (``Reconstruction.preview``): the same
    intervals, a better prediction inside them. In strips of rows, each seeing the rows a tile of
    the predictor sees around it (``tile_halo``: the same values as at once, in working arrays
    bounded by the width)."""
    c, h, w = even.shape
    odd = np.zeros((3 * c, h, w), dtype=np.uint8) if known is None else known.copy()
    rows_per = min(h, max(2, (ESTIMATE_POSITIONS // max(w, 1)) & ~1))
    level_strips = tuple(Strip(r, min(r + rows_per, h)) for r in range(0, h, rows_per))
    halo = tile_halo(predictor)
    for step, channels in enumerate(predictor.steps(c)):
        idx = list(channels)
        if coded is not None and coded[idx].all():
            continue
        for rows in level_strips:
            r0, r1 = rows.start, rows.stop
            pred = _predict(predictor, even, odd, step, level, rows, halo)
            values = truncated_mean(pred.mean[0].numpy(), pred.scale[0].numpy(), lo[idx, r0:r1], hi[idx, r0:r1])
            values = np.clip(np.rint(values), 0, 255).astype(np.uint8)
            if coded is not None:
                values = np.where(coded[idx, r0:r1], odd[idx, r0:r1], values)
            odd[idx, r0:r1] = values
    return merge(even, odd, size)


def _filtered(means: np.ndarray, idx: list[int], rows: Strip, even: np.ndarray, odd: np.ndarray, valid: np.ndarray,
              known: set[int], preview_filter: FilterFn, planes: linear.Planes | None) -> np.ndarray:
    """Each channel's (rows, w) means refined by its preview filter; odd channels of earlier steps
    count as decoded with their predicted values."""
    c = even.shape[0]
    if planes is None:
        planes = linear.Planes(even, odd, None, (rows.start, rows.stop))
    for j, ch in enumerate(idx):
        cf = ChannelFeatures(planes, previewfilter.features(c, ch, frozenset(known)), ch // c, means[j],
                             np.flatnonzero(valid[ch, rows.start : rows.stop]))
        weights = preview_filter(ch, cf)
        if any(weights):
            means[j] = means[j] + cf.refinement(weights)
    return means


class _LevelState:
    """The per-image stages' state over one level: the network means, the surprise of what is
    decoded (with a scale context) and the channels decoded so far."""

    def __init__(self, even: np.ndarray, odd: np.ndarray, version: FormatVersion) -> None:
        self.channels = even.shape[0]
        self.even, self.odd = even, odd
        self.net_means = _NetMeans(self.channels, *even.shape[1:])
        self.surprise = scalecontext.SurprisePlanes(*even.shape[1:]) if version.scale_context else None
        self.done_steps: set[int] = set()  # channels of the steps complete on every strip
        self.known: set[int] = set()  # channels a feature may read in the current strip: those and the
        # channels of the current step's rounds already coded in this strip
        self._planes: tuple[Strip, frozenset[int], linear.Planes] | None = None

    def planes(self, rows: Strip, live: frozenset[int]) -> linear.Planes:
        """The linear prediction's planes over a strip, for the channels ``live`` being coded
        there (one object per strip and step: its cached planes stay valid within it)."""
        if self._planes is None or self._planes[:2] != (rows, live):
            planes = linear.Planes(self.even, self.odd, self.net_means, (rows.start, rows.stop), live)
            self._planes = (rows, live, planes)
        return self._planes[2]

    def surprise_view(self, rows: Strip, live: frozenset[int]) -> scalecontext.SurpriseView | None:
        return None if self.surprise is None else self.surprise.view((rows.start, rows.stop), live)

    def features(self, planes: linear.Planes, ch: int, mean: np.ndarray, flat: np.ndarray) -> ChannelFeatures:
        feats = linear.features(self.channels, ch, frozenset(self.known))
        return ChannelFeatures(planes, feats, ch // self.channels, mean, flat)

    def context(self, view: scalecontext.SurpriseView | None, ch: int, flat: np.ndarray,
                trunk: np.ndarray | None) -> ScaleContext | None:
        if view is None:
            return None
        feats = scalecontext.features(self.channels, ch, frozenset(self.known), 0 if trunk is None else trunk.shape[0])
        return ScaleContext(view, feats, self.channels, ch // self.channels, flat, trunk)

    def strip_started(self) -> None:
        self.known = set(self.done_steps)

    def step_done(self, channels: list[int]) -> None:
        self.done_steps.update(channels)
        self.net_means.release(self.done_steps)

    def decoded(self, ch: int, values: np.ndarray, mean: np.ndarray, scale: np.ndarray, rows: Strip) -> None:
        """Record that ``ch`` is decoded on ``rows``, with the (rows, w) mean and scale it was coded with."""
        if self.surprise is not None:
            self.surprise.add(ch, scalecontext.surprise(values, mean, scale), (rows.start, rows.stop))
        self.known.add(ch)


class _NetMeans:
    """The network's snapped means, in units of 1/64 (``linear.MEAN_UNITS``: exact in 2 bytes),
    of the odd channels whose means a linear feature reads (``linear.mean_readers``), a (h, w)
    plane each, held from the step that codes a channel until every channel reading it is coded
    on every strip: for RGB at most 4 planes at once, where all 9 channels' would be held to
    the end of the pass (a 40 MP photograph's finest level: 80 MB instead of 180 MB)."""

    def __init__(self, channels: int, h: int, w: int) -> None:
        self.shape = (h, w)
        self._readers = linear.mean_readers(channels)
        self._planes: dict[int, np.ndarray] = {}

    def store(self, channels: list[int], rows: Strip, means: np.ndarray) -> None:
        """Keep the (k, rows, w) means of ``channels`` on ``rows``, of those a feature reads."""
        for j, ch in enumerate(channels):
            if ch not in self._readers:
                continue
            if ch not in self._planes:  # made once (``setdefault`` would make a plane per strip)
                self._planes[ch] = np.zeros(self.shape, dtype=np.uint16)
            self._planes[ch][rows.start : rows.stop] = np.rint(means[j] * linear.MEAN_UNITS)

    def release(self, done: set[int]) -> None:
        """Drop the planes of the channels all of whose readers are in ``done`` (coded everywhere)."""
        for ch in [ch for ch in self._planes if self._readers[ch] <= done]:
            del self._planes[ch]

    def __getitem__(self, ch: int) -> np.ndarray:
        return self._planes[ch]
