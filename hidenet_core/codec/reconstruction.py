"""The picture a stream's chunks make so far, as both ends of the closed loop hold it.

The encoder and the decoder keep the same state after every chunk (that is what makes the
loop closed): each level's odd values as shown, the intervals a later pass refines, the
top pixel, each level's latest preview filter and the pass under way. ``Reconstruction``
is that state and what is shown of it: a level's image, a preview at any level's size
(the levels not coded yet predicted, the seed's generative decompression) and a region of
the full-size picture. The decoder fills it from the stream's bytes; the encoder fills it
as it codes, so that what a viewer is shown after a chunk can be rendered from the
encoder's own state, without decoding the chunk again (the server's first views).
"""

from __future__ import annotations

import numpy as np

from ..predictors.base import Predictor
from ..predictors.exact import for_version
from ..predictors.interp import Interp, lead_odd_channels
from .container import HdnFormatError, Header
from .intervals import Bounds, Interval
from .loop import LevelPass, estimate_level, predict_level
from .plan import Part, Pass, PassMode, passes_of, strips
from .pyramid import level_shapes, merge, split, total_levels
from .stages import previewfilter
from .versions import FormatVersion, format_version

__all__ = ["Reconstruction", "clip_region", "upsample_bilinear"]

#: the predictor of a pass whose mode says so (``plan.PassMode.INTERP``)
_INTERP = Interp().eval()


def clip_region(height: int, width: int, top: int, left: int, rows: int, cols: int) -> tuple[int, int, int, int]:
    """The rectangle of ``rows`` x ``cols`` pixels from (``top``, ``left``) clipped to a
    ``height`` x ``width`` image, as (top, left, bottom, right): at least one pixel, inside it."""
    top, left = max(0, min(top, height - 1)), max(0, min(left, width - 1))
    return top, left, min(height, top + max(1, rows)), min(width, left + max(1, cols))


def upsample_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Level j (size ``(H, W)``) from level j + 1's (C, h, w) uint8 ``x`` by bilinear interpolation
    on the pyramid's grid: the even pixels are ``x``, each odd one the mean of its two or four
    even neighbours (edges replicated), rounded half to even. For display only: the codec never
    predicts with it. In integers (the same pixels as the float means ``np.rint`` rounds, in
    half the time: 0.18 -> 0.10 s for a 12 MP photograph's level 0, each frame of a race)."""
    c, h, w = x.shape
    out = np.empty((c, 2 * h, 2 * w), dtype=np.uint8)
    out[:, 0::2, 0::2] = x
    xi = x.astype(np.uint16)
    across = _pair_sums(xi, axis=2)  # each pixel and its right-hand neighbour
    out[:, 0::2, 1::2] = _halve(across)
    out[:, 1::2, 0::2] = _halve(_pair_sums(xi, axis=1))  # and the one below
    four = _pair_sums(across, axis=1)  # the 2x2 block
    q, r = four >> 2, four & 3
    out[:, 1::2, 1::2] = q + (r == 3) + ((r == 2) & (q & 1).astype(bool))  # rint(four / 4)
    return out[:, : size[0], : size[1]]


def _pair_sums(x: np.ndarray, axis: int) -> np.ndarray:
    """Each value plus the next along ``axis`` (the last one doubled: the edge replicated), uint16."""
    out = np.empty(x.shape, dtype=np.uint16)
    n = x.shape[axis]
    head, tail = [slice(None)] * 3, [slice(None)] * 3
    head[axis], tail[axis] = slice(0, n - 1), slice(1, n)
    np.add(x[tuple(head)], x[tuple(tail)], out=out[tuple(head)])
    last = [slice(None)] * 3
    last[axis] = slice(n - 1, n)
    np.multiply(x[tuple(last)], 2, out=out[tuple(last)])
    return out


def _halve(s: np.ndarray) -> np.ndarray:
    """rint(s / 2) of non-negative integers: a half goes to the even neighbour."""
    half = s >> 1
    return half + (s & half & 1)


class _Budget:
    """Pixels a preview may estimate (``Reconstruction.estimated_below``): ``limit`` (None: any
    number), level by level; once a level does not fit, no finer one is estimated either."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit

    def take(self, shape: tuple[int, int]) -> bool:
        """Whether a level (or rectangle) of ``shape`` pixels is estimated (and counted)."""
        if self.left is None:
            return True
        pixels = shape[0] * shape[1]
        if pixels > self.left:
            self.left = -1
            return False
        self.left -= pixels
        return True


class Reconstruction:
    """One stream's reconstruction after the chunks coded (or decoded) so far."""

    def __init__(self, header: Header, predictor: Predictor) -> None:
        self.format: FormatVersion = format_version(header.version)
        # the stream's predictor: a learned model evaluated exactly where the version says so
        self.header, self.predictor = header, for_version(predictor, self.format.exact_network)
        self.shapes = level_shapes(header.height, header.width, total_levels(header.height, header.width))
        self.top_level = len(self.shapes) - 1  # the 1x1 level of the whole pyramid
        self.odd: dict[int, np.ndarray] = {}  # level -> (3C, h, w) values shown
        self.intervals: dict[int, Bounds] = {}  # level -> where its values lie, while a later pass refines them
        self.top: Interval | None = None  # the top pixel
        self.filters: dict[int, list[tuple[int, ...]]] = {}  # level -> its latest preview filter
        self.pass_: LevelPass | None = None  # the pass over a level below the base, while under way
        self._pass_ends_layer = False  # whether ``pass_`` is the last pass of its layer
        self._layer_ends: set[tuple[int, int]] | None = None  # (layer, level) of each layer's last pass
        self._images: dict[int, np.ndarray] = {}  # level -> its (C, H, W) image, while valid
        #: (version 10) the levels whose colours other than the lead a complete pass left at a larger max
        #: error than the lead's (``colours_estimated``)
        self.coarse_colours: set[int] = set()

    # -- the state, as the closed loop changes it ----------------------------------------------------

    def image(self, k: int) -> np.ndarray:
        """The (C, H, W) reconstruction of level k as it stands (every level above it coded)."""
        if k not in self._images:
            self._images[k] = (self.top.rec.reshape(self.header.channels, 1, 1) if k == self.top_level
                               else merge(self.image(k + 1), self.odd[k], self.shapes[k]))
        return self._images[k]

    def set_level(self, k: int, odd: np.ndarray, intervals: Bounds | None) -> None:
        """Level k's odd values after a pass (``intervals``: where a later pass refines them)."""
        self.odd[k] = odd
        if intervals is not None:
            self.intervals[k] = intervals
        else:  # the level's last pass: no later one refines it
            self.intervals.pop(k, None)
        p = self.pass_
        if intervals is not None and p is not None and p.level == k and p.done and p.coarse_colours:
            self.coarse_colours.add(k)
        else:
            self.coarse_colours.discard(k)
        self._invalidate(k)

    def set_top(self, interval: Interval) -> None:
        self.top = interval
        self._images.clear()

    def set_filter(self, k: int, weights: list[tuple[int, ...]]) -> None:
        """Level k's preview filter, as the stream carries it."""
        self.filters[k] = weights

    def filter(self, k: int) -> previewfilter.FilterFn | None:
        """The latest preview filter of level k (else None: the plain means)."""
        return previewfilter.applier(self.filters[k]) if k in self.filters else None

    def start_pass(self, p: Pass, keep: bool, level: int | None = None, track: bool = True) -> LevelPass:
        """Pass ``p`` over level ``level`` (default ``p.level``; the base's pass codes the base's
        own levels with the same parameters) from the current reconstruction of the level
        above: the pass's mode picks the predictor (the stream's, or the built-in interpolation)
        and the per-image stages, a later pass refines the intervals the earlier one left.
        ``keep``: keep each value's interval for a later pass; ``track``: it is the pass under
        way (a preview shows its parts coded so far)."""
        k = p.level if level is None else level
        predictor = _INTERP if p.mode & PassMode.INTERP else self.predictor
        prior = None if p.prev_d is None else self.intervals[k]
        even = self.image(k + 1)
        # one of the base's own levels: in one part, in the strips of its own grid (not the base's)
        parts = p.parts if k == p.level else (Part(None, strips(self.format, *even.shape[1:])),)
        c = self.header.channels
        step_ds = None if p.colour_d is None else tuple(p.step_d(c, s) for s in range(len(self.predictor.steps(c))))
        level_pass = LevelPass(predictor, self.format, k, self.shapes[k], even, parts, prior,
                               stages=not p.mode & PassMode.PLAIN, keep=keep, shown=self.odd.get(k), step_ds=step_ds)
        level_pass.coarse_colours = p.others_d > p.d
        if track:
            self.pass_ = level_pass
            if self._layer_ends is None:
                last: dict[int, int] = {}
                for q in passes_of(self.header):
                    last[q.layer] = q.level
                self._layer_ends = set(last.items())
            self._pass_ends_layer = (p.layer, k) in self._layer_ends
        return level_pass

    def _invalidate(self, k: int) -> None:
        for j in [j for j in self._images if j <= k]:
            del self._images[j]

    # -- what is shown of it -----------------------------------------------------------------------

    @property
    def current_level(self) -> int | None:
        """The finest level coded so far (None before the first chunk)."""
        return min(self.odd) if self.odd else (self.header.levels if self.top is not None else None)

    def level_now(self, k: int) -> np.ndarray:
        """Level k as it stands, mid-pass included (values not coded yet in a first pass: 0)."""
        if self.pass_ is not None and self.pass_.level == k and not self.pass_.done:
            return self.pass_.image()
        return self.image(k)

    def level_image(self, k: int) -> np.ndarray:
        """Level k's (H, W, C) reconstruction as it stands (a pass over it and every level above complete)."""
        if k not in self.odd and not (k == self.header.levels and self.top is not None):
            raise HdnFormatError(f"level {k} is not decoded yet")
        return self.image(k).transpose(1, 2, 0).copy()

    def preview(self, level: int = 0, model_pixels: int | None = None,
                estimate_pixels: int | None = None) -> np.ndarray:
        """The (H, W, C) image of the current state at level ``level``'s size (0: the full size):
        every level coded so far as it stands, the rest predicted (each with its latest
        preview filter from the stream, where it has one). Predicting stops at ``level``, so a
        small preview of a large image costs only the levels it shows. With ``model_pixels``,
        the model predicts levels only while their pixels add up to at most that many; finer
        levels are bilinear (``upsample_bilinear``, a hundred times cheaper): a bounded cost
        per preview whatever the image's size, for a viewer that must show something at once.

        Between a layer's boundaries the levels below its pass under way are estimated
        (``estimated_below``): what a layer coded of them, seen through the levels it has refined;
        with ``estimate_pixels``, while their pixels add up to at most that many (a server's
        frames of a large image keep them as they stand: 0)."""
        below = self.estimated_below()
        if below is not None:
            return self._estimated_preview(below, level, model_pixels, estimate_pixels)
        k = self.finest_level()
        if k < level:  # a finer level is under way: ``level`` is complete (not predicted)
            return self._colours_estimated(level, _Budget(estimate_pixels)).transpose(1, 2, 0).copy()
        spent = 0
        if self.pass_ is not None and not self.pass_.done and self.pass_.prior is None:  # predicted parts
            spent = self.shapes[k][0] * self.shapes[k][1]
        if self.pass_ is not None and not self.pass_.done or not self.coarse_colours:
            x, k = self._finest(model=model_pixels is None or spent <= model_pixels)
        else:
            x = self._colours_estimated(k, _Budget(estimate_pixels))
        for j in range(k - 1, level - 1, -1):
            pixels = self.shapes[j][0] * self.shapes[j][1]
            if j in self.odd or model_pixels is None or spent + pixels <= model_pixels:
                spent += 0 if j in self.odd else pixels
                x = self._next_level(x, j)
            else:
                model_pixels = 0  # once interpolating, every finer level is interpolated
                x = upsample_bilinear(x, self.shapes[j])
        return x.transpose(1, 2, 0).copy()

    def region(self, top: int, left: int, height: int, width: int, model_pixels: int | None = None,
               estimate_pixels: int | None = None) -> np.ndarray:
        """The full-size current state's pixels in rows top..top+height-1, columns left..left+width-1
        (clipped to the image): exact where every level is coded; elsewhere predicted from the
        finest coded level around the region (with a margin, so only its border may differ a
        little from ``preview``). Only the rectangle is predicted, the values a first pass under
        way has not coded yet included: its cost follows the rectangle, not the image. With
        ``model_pixels``, as for ``preview``: the model predicts while the predicted pixels add
        up to at most that many, bilinear interpolation beyond; levels are estimated between a
        layer's boundaries (``estimated_below``) while their pixels in the rectangle add up to at
        most ``estimate_pixels``."""
        top, left, bottom, right = clip_region(self.header.height, self.header.width, top, left, height, width)
        below = self.estimated_below()  # as ``preview`` estimates them
        k = self.finest_level() if below is None else below
        under_way = self.pass_ if self.pass_ is not None and not self.pass_.done else None
        start = min(k + 1, self.top_level)  # complete, and smaller: every finer level is made in the rectangle
        colours = set() if under_way is not None else self.coarse_colours  # as ``preview`` estimates them
        if colours:  # the colours of these are estimated (``_colours_estimated``): made in the rectangle too
            start = max(start, max(colours) + 1)
        x = self.image(start)
        if start == 0:
            return x.transpose(1, 2, 0)[top:bottom, left:right].copy()
        margin = 8  # grid positions around the region at each predicted level
        step = 1 << start
        y0, x0 = max(0, top // step - margin), max(0, left // step - margin)
        y1 = min(x.shape[1], -(-bottom // step) + margin)
        x1 = min(x.shape[2], -(-right // step) + margin)
        crop, cy, cx = x[:, y0:y1, x0:x1], y0, x0  # level start's pixels from (cy, cx)
        budget = _Budget(estimate_pixels)  # of the estimated levels (``estimated_below``)
        spent = 0
        for j in range(start - 1, -1, -1):  # level j's odd grid is level j + 1's pixels
            ch, cw = crop.shape[1:]
            size = (min(2 * ch, self.shapes[j][0] - 2 * cy), min(2 * cw, self.shapes[j][1] - 2 * cx))
            rows, cols = slice(cy, cy + ch), slice(cx, cx + cw)
            if under_way is not None and j == under_way.level and under_way.prior is not None:
                # a refinement cut between parts: its values coded so far, the others as shown before it
                coded = under_way.coded(rows, cols)
                if below is not None and budget.take(size):
                    crop = estimate_level(_INTERP, crop, size, j, *self._bounds(under_way.prior, rows, cols),
                                          known=under_way.odd[:, rows, cols], coded=coded)
                else:
                    odd = np.where(coded, under_way.odd[:, rows, cols], under_way.shown[:, rows, cols])
                    crop = merge(crop, odd, size)
            elif below is not None and j < below and j in self.intervals and budget.take(size):
                crop = estimate_level(_INTERP, crop, size, j, *self._bounds(self.intervals[j], rows, cols))
            elif j in colours and budget.take(size):
                known = self.odd[j][:, rows, cols]
                crop = estimate_level(_INTERP, crop, size, j, *self._bounds(self.intervals[j], rows, cols), known=known,
                                      coded=self._lead_mask(known.shape))
            elif j in self.odd:
                crop = merge(crop, self.odd[j][:, rows, cols], size)
            else:
                spent += size[0] * size[1]
                if model_pixels is None or spent <= model_pixels:
                    predicted = predict_level(self.predictor, crop, size, j, self.filter(j), self.format)
                else:
                    predicted = upsample_bilinear(crop, size)
                if under_way is not None and j == under_way.level:  # a first pass: its values coded so far
                    odd = np.where(under_way.coded(rows, cols), under_way.odd[:, rows, cols], split(predicted)[1])
                    predicted = merge(crop, odd, size)
                crop = predicted
            cy, cx = 2 * cy, 2 * cx
        oy, ox = top - cy, left - cx
        return crop.transpose(1, 2, 0)[oy : oy + bottom - top, ox : ox + right - left].copy()

    def _colours_estimated(self, k: int, budget: _Budget) -> np.ndarray:
        """Level k (C, H, W) with the colours other than the lead of each level in ``coarse_colours``
        estimated inside their intervals, following the lead as coded (coarse levels first, while
        ``budget`` lasts; the finer ones as they stand).

        Version 10's layers may code the colours other than the lead (green) coarser than it, or
        not refine them at all: red and blue follow green's detail closely, so most of their bytes
        are better spent once green is known exactly (docs/format.md, "The colours' own max errors").
        Until then they are shown as ``estimated_below`` shows a level between layers: the mean of
        the built-in interpolation's Laplace, predicted from the level above and the lead's values,
        truncated to each value's interval."""
        levels = sorted((j for j in self.coarse_colours if j >= k), reverse=True)
        if not levels:
            return self.image(k)
        x = self.image(levels[0] + 1)
        for j in range(levels[0], k - 1, -1):
            if j in self.coarse_colours and budget.take(self.shapes[j]):
                x = estimate_level(_INTERP, x, self.shapes[j], j, *self._bounds(self.intervals[j]), known=self.odd[j],
                                   coded=self._lead_mask(self.odd[j].shape))
            else:
                x = merge(x, self.odd[j], self.shapes[j])
        return x

    def _lead_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """(3C, h, w) bool: True on the odd channels of the lead colour."""
        mask = np.zeros(shape, dtype=bool)
        mask[list(lead_odd_channels(self.header.channels))] = True
        return mask

    def estimated_below(self) -> int | None:
        """The level of the refinement pass under way (or just complete) when the levels below it
        are shown as estimates, else None.

        A later layer refines the levels base first, so while it is under way the levels below
        its pass still hold what the layer before coded, predicted from the coarser levels as
        they were then. The intervals that layer left are exact knowledge, and the levels above
        are now sharper: a level below is shown with each odd value the mean of the built-in
        interpolation's Laplace, predicted from the sharper level above, truncated to the
        value's interval (``loop.estimate_level``; the model's estimate measured no better, at
        ten times the cost), and so are the values a pass under way has not refined yet.
        Measured on the samples at 64 KB: 31.3 -> 32.3 dB (docs/format.md, "What a viewer
        is shown between layers"). Each value stays in its interval, so within twice its
        level's max error; at a layer's boundary nothing is estimated: the picture is the
        reconstruction whose max error the layer states."""
        p = self.pass_
        if p is None or p.prior is None or (p.done and self._pass_ends_layer):
            return None
        return p.level

    def _bounds(self, bounds: Bounds, rows: slice = slice(None),
                cols: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """The (lo, hi) planes (3C, rows, cols) of a level's intervals."""
        r0, r1, _ = rows.indices(bounds.shape[1])
        lo, hi = bounds.strip(list(range(3 * self.header.channels)), r0, r1)
        return lo[:, :, cols], hi[:, :, cols]

    def _estimated_preview(self, k: int, level: int, model_pixels: int | None,
                           estimate_pixels: int | None) -> np.ndarray:
        """``preview`` while the levels below the refinement pass over level ``k`` are estimated:
        while their pixels add up to at most ``estimate_pixels`` (a server's bound on a frame's
        cost), the finer ones as they stand; levels never coded (generative) predicted as
        ``preview`` predicts them, within ``model_pixels``."""
        budget = _Budget(estimate_pixels)
        if level > k:  # refined in this layer
            return self._colours_estimated(level, budget).transpose(1, 2, 0).copy()
        p = self.pass_
        if p.done:
            x = self._colours_estimated(k, budget)
        elif budget.take(self.shapes[k]):  # its parts refined so far, the others estimated
            x = estimate_level(_INTERP, p.even, p.size, k, *self._bounds(p.prior), known=p.odd, coded=p.coded())
        else:
            x = p.image()
        spent = 0
        for j in range(k - 1, level - 1, -1):
            if j in self.intervals and budget.take(self.shapes[j]):
                x = estimate_level(_INTERP, x, self.shapes[j], j, *self._bounds(self.intervals[j]))
            elif j in self.odd:
                x = merge(x, self.odd[j], self.shapes[j])
            else:  # a generative level
                spent += self.shapes[j][0] * self.shapes[j][1]
                x = self._next_level(x, j) if model_pixels is None or spent <= model_pixels else \
                    upsample_bilinear(x, self.shapes[j])
        return x.transpose(1, 2, 0).copy()

    def finest_level(self) -> int:
        """The finest level with coded values (the pass under way's, mid-pass)."""
        if self.current_level is None:
            raise HdnFormatError("no chunk decoded yet: nothing to preview")
        return self.pass_.level if self.pass_ is not None and not self.pass_.done else self.current_level

    def _finest(self, model: bool = True) -> tuple[np.ndarray, int]:
        """The finest level with coded values, (C, H, W), and its index (mid-pass: the parts
        of a first pass not coded yet predicted, by the model or else interpolated, those of a
        refinement as the layer before)."""
        k = self.finest_level()
        if self.pass_ is not None and not self.pass_.done:
            return (self.pass_.image() if self.pass_.prior is not None else self._partial(self.pass_, model)), k
        return self.image(k), k

    def _next_level(self, x: np.ndarray, j: int) -> np.ndarray:
        """Level j from level j + 1's image ``x``: as coded where it is, else predicted."""
        if j in self.odd:
            return merge(x, self.odd[j], self.shapes[j])
        return predict_level(self.predictor, x, self.shapes[j], j, self.filter(j), self.format)

    def _partial(self, level_pass: LevelPass, model: bool = True) -> np.ndarray:
        """A first pass cut between parts: the steps coded so far, the rest predicted (by the
        model, or bilinear)."""
        if model:
            predicted = split(predict_level(self.predictor, level_pass.even, level_pass.size, level_pass.level,
                                            self.filter(level_pass.level), self.format))[1]
        else:
            predicted = split(upsample_bilinear(level_pass.even, level_pass.size))[1]
        return merge(level_pass.even, np.where(level_pass.coded(), level_pass.odd, predicted), level_pass.size)
