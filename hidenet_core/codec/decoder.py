"""Progressive decoding: feed bytes as they arrive, get a result for each chunk as it completes.

``ProgressiveDecoder`` is what the server and ``hidenet decode`` use; ``decode`` is the
whole-buffer convenience. ``preview`` turns the current state into a full-resolution
image, predicting the levels not received yet (the seed's generative decompression).
The decoder walks the stream's plan (``plan.py``): one chunk per level for versions 1 to
5; passes over the levels, layer by layer, split into parts, for the layered version 6.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..predictors.base import Predictor
from ..predictors.exact import for_version
from .container import (
    MAGIC,
    PREAMBLE_SIZE,
    HdnFormatError,
    Header,
    ModelMismatchError,
    check_chunk,
    parse_chunk_header,
    parse_header,
    parse_preamble,
)
from .entropy import LevelDecoder
from .intervals import Interval, first_interval, refine_decode
from .loop import level_crc, part_crc, predict_level, top_prior
from .plan import ChunkSpec, Pass, guarantees, stream_plan, untruncated
from .pyramid import split
from .reconstruction import Reconstruction
from .stages import calibration, linear, previewfilter
from .stages.calibration import ChannelInput, ChannelParams
from .versions import FormatVersion, format_version

__all__ = ["DecodedLevel", "ProgressiveDecoder", "decode", "decode_image", "decode_until", "preview", "read_header"]


@dataclass(frozen=True)
class DecodedLevel:
    """What one chunk gave: the state of its level once the chunk is decoded."""

    level: int  # 0 = full image
    image: np.ndarray  # (H, W, C) uint8: the level as it stands after this chunk
    payload_bytes: int  # this chunk's payload
    bytes_consumed: int  # stream bytes up to the end of this chunk, header included
    decode_seconds: float
    layer: int = 0  # the pass's layer (layered streams; generative chunks: the layer count)
    part: int = 0  # the part of the pass
    parts: int = 1  # the pass's part count
    max_error: int | None = None  # the largest error any pixel of the full image can have now (None: unbounded)
    index: int = 0  # the chunk's position in the stream
    chunks: int = 1  # the stream's chunk count

    @property
    def pass_done(self) -> bool:
        """True when this chunk completes a pass over its level."""
        return self.part == self.parts - 1


def _max_payload(version: FormatVersion, values: int, levels: int, channels: int) -> int:
    """A generous bound on a chunk's payload coding ``values`` values over ``levels`` levels
    (constriction: < 32 bits/symbol). Besides the values, a calibrated level codes per odd
    channel (3C) at most ``calibration.max_values`` parameters, 4 bytes each at most, and a
    layered stream's strips each carry their own; the chunk may end with a preview filter."""
    params = 3 * channels * calibration.max_values(version, channels)
    return 4 * values + 64 + 4 * params * levels + _max_filter_payload(version, channels)


def _max_filter_payload(version: FormatVersion, channels: int) -> int:
    """A bound on the bytes of one level's preview filter (a flag and at most
    ``linear.max_features`` weights per odd channel), 0 in a version without."""
    return 64 + 4 * 3 * channels * (1 + linear.max_features(channels)) if version.preview_filter else 0


def read_header(data: bytes) -> Header:
    """The header of a stream (raises HdnFormatError if it is not complete and valid)."""
    return parse_header(data)[0]


class ProgressiveDecoder:
    """Decode a ``.hdn`` stream chunk by chunk, as bytes arrive."""

    def __init__(self, predictor: Predictor, images: bool = True, finest_level: int = 0) -> None:
        """``images``: give each chunk's ``DecodedLevel`` its image (a copy of the level as it stands);
        False: an empty image (0 x 0) instead, for a caller that wants only the end result
        (``current_image``): a large image's level 0 comes in tens of parts, and a copy of it
        for each part costs time and, kept in ``levels``, memory in proportion to the image.

        ``finest_level``: decode the levels down to this one only; the chunks of finer levels
        are read and their payload CRC checked, but not decoded (their ``DecodedLevel`` has an
        empty image): for a viewer that shows the image no larger than that level, since a
        level is predicted from the coarser ones alone, what it shows is the same, for a
        fraction of the time and memory (level 0 holds three quarters of the pixels)."""
        self.predictor = predictor
        self.images = images
        self.finest_level = finest_level
        self.decoded_chunks = 0  # chunks decoded (not skipped): the state shown changes with it
        self.header: Header | None = None
        self.levels: list[DecodedLevel] = []  # one result per chunk read (decoded or skipped), in stream order
        self._buf = bytearray()
        self._consumed = 0  # stream bytes parsed so far
        self._plan: list[ChunkSpec] = []
        self._bounds: list[int | None] = []
        self._next = 0  # index of the next chunk in the plan
        self._shapes: list[tuple[int, int]] = []
        self._format: FormatVersion | None = None  # the header's version's record
        self._rec: Reconstruction | None = None  # the picture so far, once the header is read
        self._last_pass: dict[int, Pass] = {}

    @property
    def done(self) -> bool:
        """True once every chunk of the stream is decoded."""
        return self.header is not None and self._next == len(self._plan)

    @property
    def bytes_fed(self) -> int:
        """Stream bytes given to ``feed`` so far."""
        return self._consumed + len(self._buf)

    @property
    def current_level(self) -> int | None:
        """The finest level decoded so far (None before the first chunk)."""
        return None if self._rec is None else self._rec.current_level

    @property
    def reconstruction(self) -> Reconstruction:
        """The picture the chunks decoded so far make (``Reconstruction``)."""
        if self._rec is None:
            raise HdnFormatError("no header decoded yet: nothing to show")
        return self._rec

    def feed(self, data: bytes) -> list[DecodedLevel]:
        """Add bytes; return a result for each chunk they completed (possibly none)."""
        if self.done and data:
            raise HdnFormatError(f"unexpected {len(data)} bytes after the last chunk")
        self._buf += data
        out: list[DecodedLevel] = []
        if self.header is None and not self._try_header():
            return out
        while not self.done:
            level = self._try_chunk()
            if level is None:
                break
            out.append(level)
        if self.done and self._buf:
            raise HdnFormatError(f"unexpected {len(self._buf)} bytes after the last chunk")
        return out

    def finish(self) -> None:
        """Declare the end of the stream: raise if it stopped inside the header or a chunk."""
        if self.header is None:
            if not self._buf:
                raise HdnFormatError("empty stream: no header")
            if len(self._buf) >= PREAMBLE_SIZE:
                need = PREAMBLE_SIZE + parse_preamble(bytes(self._buf[:PREAMBLE_SIZE]))
                raise HdnFormatError(f"truncated header: {len(self._buf)} of {need} bytes")
            parse_preamble(bytes(self._buf))  # raises with the precise reason
        if self._buf:
            raise HdnFormatError(f"truncated stream: {len(self._buf)} bytes of an incomplete chunk for "
                                 f"{self._describe(self._plan[self._next])}")

    def _describe(self, spec: ChunkSpec) -> str:
        assert self.header is not None
        if not self.header.layered:
            return f"level {spec.level}"
        return f"layer {spec.layer}, level {spec.level}, part {spec.part}"

    def _try_header(self) -> bool:
        if len(self._buf) < PREAMBLE_SIZE:
            n = min(len(self._buf), len(MAGIC))
            if bytes(self._buf[:n]) != MAGIC[:n]:
                raise HdnFormatError(f"not a .hdn stream: it starts with {bytes(self._buf[:n])!r}, expected {MAGIC!r}")
            return False
        end = PREAMBLE_SIZE + parse_preamble(bytes(self._buf[:PREAMBLE_SIZE]))
        if len(self._buf) < end:
            return False
        header, size = parse_header(bytes(self._buf[:end]))
        expected = self.predictor.weights_hash()
        if header.model_hash != expected:
            raise ModelMismatchError(
                f"stream was encoded with model {header.model_name!r} (weights {header.model_hash.hex()}), "
                f"but the decoder has {self.predictor.name!r} (weights {expected.hex()}); "
                f"decode with the model that encoded it (--model)"
            )
        self.header = header
        self._format = format_version(header.version)
        self._plan = stream_plan(header)
        self._bounds = guarantees(header, self._plan)
        self._last_pass = {p.level: p for c in self._plan if (p := c.pass_) is not None}
        del self._buf[:size]
        self._consumed = size
        self._rec = Reconstruction(header, self.predictor)
        self._shapes = self._rec.shapes
        return True

    def _bound(self, spec: ChunkSpec) -> int:
        """The most payload bytes the chunk ``spec`` can have."""
        h, fmt = self.header, self._format
        assert h is not None and fmt is not None
        k, c = spec.level, h.channels
        if spec.pass_ is None:
            return _max_filter_payload(fmt, c) if fmt.carries_filter(self._shapes, k - 1) else 0
        if k == h.levels:
            values = c * sum(a * b for a, b in self._shapes[k:])
            return _max_payload(fmt, values, len(self._shapes) - k, c)
        part = spec.pass_.parts[spec.part]
        w = self._shapes[k + 1][1]
        rows = sum(s.stop - s.start for s in part.strips)
        steps = self.predictor.steps(c)
        coded = [s for s in (range(len(steps)) if part.step is None else [part.step])
                 if spec.pass_.step_d(c, s) is not None]  # a pass leaves the steps it does not lower uncoded
        channels = sum(len(steps[s]) for s in coded)
        return _max_payload(fmt, channels * rows * w, len(part.strips), c)

    def _try_chunk(self) -> DecodedLevel | None:
        h, fmt = self.header, self._format
        assert h is not None and fmt is not None
        size = h.chunk_header_size
        if len(self._buf) < size:
            return None
        ch = parse_chunk_header(bytes(self._buf[:size]), 0, h.layered)
        spec = self._plan[self._next]
        k = spec.level
        if h.layered:
            check_chunk(ch, spec)
        elif ch.level != k:
            raise HdnFormatError(f"chunk for level {ch.level} where level {k} was expected (levels go base to full)")
        bound = self._bound(spec)
        if ch.payload_length > bound:
            raise HdnFormatError(
                f"chunk for {self._describe(spec)} declares {ch.payload_length} payload bytes, at most {bound} possible"
            )
        total = size + ch.payload_length
        if len(self._buf) < total:
            return None
        payload = bytes(self._buf[size:total])
        if zlib.crc32(payload) != ch.payload_crc:
            raise HdnFormatError(f"payload CRC mismatch in the chunk for {self._describe(spec)}: "
                                 f"the stream is corrupted")
        t0 = time.perf_counter()
        skip = k < self.finest_level
        crc = ch.recon_crc if skip else self._decode_chunk(spec, payload)
        if crc != ch.recon_crc:
            raise HdnFormatError(
                f"{self._describe(spec)} decoded to {'values' if h.layered else 'an image'} whose CRC does not match "
                f"the encoder's: "
                f"the stream is corrupted or the predictor computes differently here"
            )
        seconds = time.perf_counter() - t0
        del self._buf[:total]
        self._consumed += total
        self._next += 1
        parts = 1 if spec.pass_ is None else len(spec.pass_.parts)
        self.decoded_chunks += not skip
        if self.images and not skip:
            image = self._rec.level_now(k).transpose(1, 2, 0).copy()
        else:
            image = np.zeros((0, 0, h.channels), dtype=np.uint8)
        level = DecodedLevel(k, image, ch.payload_length, self._consumed, seconds,
                             spec.layer, spec.part, parts, self._bounds[spec.index], spec.index, len(self._plan))
        self.levels.append(level)
        return level

    def _decode_chunk(self, spec: ChunkSpec, payload: bytes) -> int:
        """Decode one chunk; return the CRC the stream must carry for it."""
        h, fmt, rec = self.header, self._format, self._rec
        assert h is not None and fmt is not None and rec is not None
        k = spec.level
        dec = LevelDecoder(payload, self.predictor.distribution, tables=fmt.value_tables)
        if spec.pass_ is None:  # a generative level: the prediction, filtered with the latest filter
            recon = predict_level(rec.predictor, rec.image(k + 1), self._shapes[k], k, rec.filter(k), fmt)
            rec.set_level(k, split(recon)[1], None)
            if fmt.carries_filter(self._shapes, k - 1):  # else the payload is empty (its bound is 0)
                self._read_filter(dec, k - 1)
            return level_crc(recon)
        p = spec.pass_
        keep = p is not self._last_pass[k]
        if k == h.levels:
            crc = self._decode_base(dec, p, keep)
        else:
            if spec.part == 0:
                rec.start_pass(p, keep)
            level_pass = rec.pass_
            assert level_pass is not None
            part = level_pass.run(_Coder(dec, p.d, fmt, untruncated(p)))
            crc = part_crc(level_pass.odd, level_pass.part_channels(part), part.strips) if fmt.layered else None
            if level_pass.done:
                rec.set_level(k, level_pass.odd, level_pass.intervals)
                if crc is None:
                    crc = level_crc(rec.image(k))
        if spec.last_part and (p.prev_d is None or k - 1 < h.generative_levels):
            self._read_filter(dec, k - 1)
        return crc

    def _decode_base(self, dec: LevelDecoder, p: Pass, keep: bool) -> int:
        h, fmt, rec = self.header, self._format, self._rec
        assert h is not None and fmt is not None and rec is not None
        c = h.channels
        if p.prev_d is None:
            rec.set_top(first_interval(dec.decode(*top_prior(c), p.d), p.d))
        else:
            rec.set_top(refine_decode(dec, rec.top.lo, rec.top.hi, *top_prior(c), p.d, untruncated(p)))
        for j in range(len(self._shapes) - 2, p.level - 1, -1):
            level_pass = rec.start_pass(p, keep, level=j, track=False)
            level_pass.run(_Coder(dec, p.d, fmt, untruncated(p)))
            rec.set_level(j, level_pass.odd, level_pass.intervals)
        return level_crc(rec.image(p.level))

    def _read_filter(self, dec: LevelDecoder, k: int) -> None:
        """Read level k's preview filter from the end of the chunk (if the stream has one)."""
        assert self.header is not None and self._format is not None and self._rec is not None
        if self._format.carries_filter(self._shapes, k):
            c = self.header.channels
            self._rec.set_filter(k, previewfilter.read(dec, previewfilter.counts(c, self.predictor.steps(c))))

    # -- what is shown (``Reconstruction``) -----------------------------------------------------------

    def current_image(self) -> np.ndarray:
        """The (H, W, C) image of the level of the last chunk decoded, as it stands (what that
        chunk's ``DecodedLevel.image`` holds when the decoder keeps images)."""
        if not self.levels:
            raise HdnFormatError("no chunk decoded yet")
        return self.reconstruction.level_now(max(self.levels[-1].level, self.finest_level)).transpose(1, 2, 0).copy()

    def level_image(self, k: int) -> np.ndarray:
        """Level k's (H, W, C) reconstruction as it stands (a pass over it and every level above complete)."""
        if self._rec is None:
            raise HdnFormatError(f"level {k} is not decoded yet")
        return self._rec.level_image(k)

    def preview(self, level: int = 0, model_pixels: int | None = None,
                estimate_pixels: int | None = None) -> np.ndarray:
        """``Reconstruction.preview`` of the chunks decoded so far: the image at level ``level``'s
        size, the levels not decoded yet predicted (the model's pixels bounded by ``model_pixels``,
        the estimated ones between a layer's boundaries by ``estimate_pixels``)."""
        if self._rec is None:
            raise HdnFormatError("no chunk decoded yet: nothing to preview")
        return self._rec.preview(level, model_pixels, estimate_pixels)

    def region(self, top: int, left: int, height: int, width: int, model_pixels: int | None = None,
               estimate_pixels: int | None = None) -> np.ndarray:
        """``Reconstruction.region`` of the chunks decoded so far: the full-size pixels in a
        rectangle (clipped to the image), exact where every level is decoded."""
        return self.reconstruction.region(top, left, height, width, model_pixels, estimate_pixels)



def preview(predictor: Predictor, recon_chw: np.ndarray, level: int, shapes: list[tuple[int, int]],
            first_filter: previewfilter.FilterFn | None = None, version: FormatVersion | None = None) -> np.ndarray:
    """Predict levels level-1 .. 0 from the (C, h, w) reconstruction of ``level``; level-1 with
    ``first_filter`` (its preview filter, from the stream) where given, the rest with the plain means."""
    x = recon_chw
    if version is not None:
        predictor = for_version(predictor, version.exact_network)
    for k in range(level - 1, -1, -1):
        x = predict_level(predictor, x, shapes[k], k, first_filter if k == level - 1 else None, version)
    return x.transpose(1, 2, 0).copy()


class _Coder:
    """The decoder's side of the closed loop (``loop.LevelCoder``): reads the values and the
    calibration that the encoder coded into one chunk's payload."""

    def __init__(self, dec: LevelDecoder, d: int, version: FormatVersion, untruncated: bool = False) -> None:
        self.dec, self.d, self.version, self.untruncated = dec, d, version, untruncated

    def code(self, channels, rows, valid, mean, scale, prior: Interval | None) -> Interval:
        if prior is None:
            return first_interval(self.dec.decode(mean, scale, self.d), self.d)
        return refine_decode(self.dec, prior.lo, prior.hi, mean, scale, self.d, self.untruncated)

    def calibrate(self, channels: list[ChannelInput]) -> list[ChannelParams]:
        return calibration.read(self.dec, self.version, channels)


def decode(data: bytes, predictor: Predictor, stop_level: int = 0) -> list[DecodedLevel]:
    """Decode a whole buffer, the levels finer than ``stop_level`` skipped (``decode_until``).
    A prefix ending on a chunk boundary is fine."""
    return decode_until(data, predictor, stop_level).levels


def decode_image(data: bytes, predictor: Predictor) -> np.ndarray:
    """The (H, W, C) image a whole stream (or a prefix ending on a chunk boundary) decodes to: what
    ``decode(data, predictor)[-1].image`` holds, without an image of every chunk on the way (at
    12 MP those copies are seconds of a decode's time)."""
    return decode_until(data, predictor, images=False).current_image()


def decode_until(data: bytes, predictor: Predictor, stop_level: int = 0,
                 on_chunk: Callable[[DecodedLevel], None] | None = None, images: bool = True) -> ProgressiveDecoder:
    """The decoder after decoding a whole buffer, the levels finer than ``stop_level`` skipped
    (``finest_level``): level ``stop_level`` as the stream's last pass over it left it. A
    stream of one layer (versions 1 to 5, ``--no-layers``) codes each level once, so its
    reading stops after that level.
    ``on_chunk`` hears each chunk read. ``images``: as ``ProgressiveDecoder``'s (False: ask
    ``current_image`` for the result)."""
    dec = ProgressiveDecoder(predictor, images, finest_level=stop_level)
    pos = 0
    # feed chunk-sized pieces so that a one-pass stream can stop early without reading finer levels
    while pos < len(data):
        if dec.done:
            raise HdnFormatError(f"unexpected {len(data) - pos} bytes after the last chunk")
        one_pass = dec.header is not None and len(dec.header.layers) <= 1  # versions 1-5: no layers
        if one_pass and stop_level > 0 and dec.current_level is not None and dec.current_level <= stop_level:
            return dec
        need = _next_piece(dec, data, pos)
        for chunk in dec.feed(data[pos : pos + need]):
            if on_chunk is not None:
                on_chunk(chunk)
        pos += need
    if stop_level > 0 and dec.current_level is not None and dec.current_level <= stop_level:
        return dec  # a prefix: the chunks that are complete
    dec.finish()
    if not dec.levels:
        raise HdnFormatError("stream holds a header but no complete chunk")
    return dec


def _next_piece(dec: ProgressiveDecoder, data: bytes, pos: int) -> int:
    """How many bytes to feed next so that at most one chunk completes."""
    if dec.header is None:
        if len(data) - pos < PREAMBLE_SIZE:
            return len(data) - pos
        return PREAMBLE_SIZE + parse_preamble(data[pos : pos + PREAMBLE_SIZE])
    size = dec.header.chunk_header_size
    if len(data) - pos < size:
        return len(data) - pos
    ch = parse_chunk_header(data, pos, dec.header.layered)
    return size + ch.payload_length
