"""Progressive decoding: feed bytes as they arrive, get each level as its chunk completes.

``ProgressiveDecoder`` is what the server and ``hidenet decode`` use; ``decode`` is the
whole-buffer convenience. ``preview`` turns any decoded level into a full-resolution
image by predicting the remaining levels (the seed's generative decompression).
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np

from ..predictors.base import Predictor
from .container import (
    CHUNK_HEADER_SIZE,
    MAGIC,
    PREAMBLE_SIZE,
    HdnFormatError,
    Header,
    ModelMismatchError,
    parse_chunk_header,
    parse_header,
    parse_preamble,
)
from .entropy import LevelDecoder
from .loop import code_level, level_crc, predict_level, top_prior
from .pyramid import level_shapes, total_levels
from .stages import calibration, linear, previewfilter
from .stages.calibration import ChannelInput, ChannelParams
from .versions import FormatVersion, format_version

__all__ = ["DecodedLevel", "ProgressiveDecoder", "decode", "decode_until", "preview", "read_header"]


@dataclass(frozen=True)
class DecodedLevel:
    """One level as the decoder produced it."""

    level: int  # 0 = full image
    image: np.ndarray  # (H, W, C) uint8
    payload_bytes: int  # this level's chunk payload
    bytes_consumed: int  # stream bytes up to the end of this chunk, header included
    decode_seconds: float


def _max_payload(version: FormatVersion, shapes: list[tuple[int, int]], first: int, last: int, channels: int) -> int:
    """A generous bound on a chunk's payload for levels first..last (constriction: < 32 bits/symbol).

    Besides the values, a calibrated level codes per odd channel (3C) at most
    ``calibration.max_values`` parameters, 4 bytes each at most; the chunk may end with
    the next finer level's preview filter.
    """
    pixels = sum(h * w for h, w in shapes[last : first + 1])
    params = 3 * channels * calibration.max_values(version, channels)
    return 4 * channels * pixels + 64 + 4 * params * (first - last + 1) + _max_filter_payload(version, channels)


def _max_filter_payload(version: FormatVersion, channels: int) -> int:
    """A bound on the bytes of one level's preview filter (a flag and at most
    ``linear.max_features`` weights per odd channel), 0 in a version without."""
    return 64 + 4 * 3 * channels * (1 + linear.max_features(channels)) if version.preview_filter else 0


def read_header(data: bytes) -> Header:
    """The header of a stream (raises HdnFormatError if it is not complete and valid)."""
    return parse_header(data)[0]


class ProgressiveDecoder:
    """Decode a ``.hdn`` stream chunk by chunk, as bytes arrive."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.header: Header | None = None
        self.levels: list[DecodedLevel] = []
        self._buf = bytearray()
        self._consumed = 0  # stream bytes parsed so far
        self._recon: np.ndarray | None = None  # (C, h, w) of the last decoded level
        self._next_level: int | None = None
        self._shapes: list[tuple[int, int]] = []
        self._format: FormatVersion | None = None  # the header's version's record
        self._filters: dict[int, list[tuple[int, ...]]] = {}  # level -> its preview filter, once read

    @property
    def done(self) -> bool:
        """True once level 0 (the full image) is decoded."""
        return self._next_level == -1

    @property
    def current_level(self) -> int | None:
        return self.levels[-1].level if self.levels else None

    def feed(self, data: bytes) -> list[DecodedLevel]:
        """Add bytes; return the levels they completed (possibly none)."""
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
            raise HdnFormatError(
                f"truncated stream: {len(self._buf)} bytes of an incomplete chunk for level {self._next_level}"
            )

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
        del self._buf[:size]
        self._consumed = size
        self._next_level = header.levels
        self._shapes = level_shapes(header.height, header.width, total_levels(header.height, header.width))
        return True

    def _try_chunk(self) -> DecodedLevel | None:
        h, fmt = self.header, self._format
        assert h is not None and fmt is not None and self._next_level is not None
        if len(self._buf) < CHUNK_HEADER_SIZE:
            return None
        ch = parse_chunk_header(bytes(self._buf[:CHUNK_HEADER_SIZE]))
        k = self._next_level
        if ch.level != k:
            raise HdnFormatError(f"chunk for level {ch.level} where level {k} was expected (levels go base to full)")
        first = len(self._shapes) - 1 if k == h.levels else k
        if k >= h.generative_levels:
            bound = _max_payload(fmt, self._shapes, first, k, h.channels)
        else:
            bound = _max_filter_payload(fmt, h.channels) if fmt.carries_filter(self._shapes, k - 1) else 0
        if ch.payload_length > bound:
            raise HdnFormatError(
                f"chunk for level {k} declares {ch.payload_length} payload bytes, at most {bound} possible"
            )
        total = CHUNK_HEADER_SIZE + ch.payload_length
        if len(self._buf) < total:
            return None
        payload = bytes(self._buf[CHUNK_HEADER_SIZE:total])
        if zlib.crc32(payload) != ch.payload_crc:
            raise HdnFormatError(f"payload CRC mismatch in the chunk for level {k}: the stream is corrupted")
        t0 = time.perf_counter()
        recon = self._decode_chunk(k, payload)
        if level_crc(recon) != ch.recon_crc:
            raise HdnFormatError(
                f"level {k} decoded to an image whose CRC does not match the encoder's: "
                f"the stream is corrupted or the predictor computes differently here"
            )
        seconds = time.perf_counter() - t0
        del self._buf[:total]
        self._consumed += total
        self._recon = recon
        self._next_level = k - 1
        level = DecodedLevel(k, recon.transpose(1, 2, 0).copy(), ch.payload_length, self._consumed, seconds)
        self.levels.append(level)
        return level

    def _read_filter(self, dec: LevelDecoder, k: int) -> None:
        """Read level k's preview filter from the end of chunk k + 1 (if the stream has one)."""
        assert self.header is not None and self._format is not None
        if self._format.carries_filter(self._shapes, k):
            c = self.header.channels
            self._filters[k] = previewfilter.read(dec, previewfilter.counts(c, self.predictor.steps(c)))

    def _filter(self, k: int) -> previewfilter.FilterFn | None:
        """The preview filter of level k, once its chunk k + 1 is decoded (else None: the plain means)."""
        return previewfilter.applier(self._filters[k]) if k in self._filters else None

    def _decode_chunk(self, k: int, payload: bytes) -> np.ndarray:
        h, fmt = self.header, self._format
        assert h is not None and fmt is not None
        if k < h.generative_levels:
            recon = predict_level(self.predictor, self._recon, self._shapes[k], k, self._filter(k))
            if fmt.carries_filter(self._shapes, k - 1):  # else the payload is empty (its bound is 0)
                self._read_filter(LevelDecoder(payload, self.predictor.distribution), k - 1)
            return recon
        dec = LevelDecoder(payload, self.predictor.distribution)
        coder = _Coder(dec, h.max_error[k], fmt)
        if k < h.levels:
            recon = code_level(self.predictor, self._recon, self._shapes[k], k, coder, fmt)
        else:
            top = len(self._shapes) - 1
            c = h.channels
            recon = dec.decode(*top_prior(c), coder.d).reshape(c, 1, 1)
            for j in range(top - 1, k - 1, -1):
                recon = code_level(self.predictor, recon, self._shapes[j], j, coder, fmt)
        self._read_filter(dec, k - 1)
        return recon

    def preview(self) -> np.ndarray:
        """The full-size (H, W, C) image predicted from the last decoded level."""
        if self._recon is None or self.current_level is None:
            raise HdnFormatError("no level decoded yet: nothing to preview")
        level = self.current_level
        return preview(self.predictor, self._recon, level, self._shapes, self._filter(level - 1))


def preview(predictor: Predictor, recon_chw: np.ndarray, level: int, shapes: list[tuple[int, int]],
            first_filter: previewfilter.FilterFn | None = None) -> np.ndarray:
    """Predict levels level-1 .. 0 from the (C, h, w) reconstruction of ``level``; level-1 with
    ``first_filter`` (its preview filter, from the stream) where given, the rest with the plain means."""
    x = recon_chw
    for k in range(level - 1, -1, -1):
        x = predict_level(predictor, x, shapes[k], k, first_filter if k == level - 1 else None)
    return x.transpose(1, 2, 0).copy()


class _Coder:
    """The decoder's side of the closed loop (``loop.LevelCoder``): reads the values and the
    calibration that the encoder coded into one chunk's payload."""

    def __init__(self, dec: LevelDecoder, d: int, version: FormatVersion) -> None:
        self.dec, self.d, self.version = dec, d, version

    def code(self, channels: list[int], valid: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return self.dec.decode(mean, scale, self.d)

    def calibrate(self, channels: list[ChannelInput]) -> list[ChannelParams]:
        return calibration.read(self.dec, self.version, channels)


def decode(data: bytes, predictor: Predictor, stop_level: int = 0) -> list[DecodedLevel]:
    """Decode a whole buffer; stop after ``stop_level``. A prefix ending on a chunk boundary is fine."""
    return decode_until(data, predictor, stop_level).levels


def decode_until(data: bytes, predictor: Predictor, stop_level: int = 0) -> ProgressiveDecoder:
    """The decoder after decoding a whole buffer up to ``stop_level`` (for its ``preview``)."""
    dec = ProgressiveDecoder(predictor)
    out = dec.levels
    pos = 0
    # feed chunk-sized pieces so that we can stop early without decoding finer levels
    while pos < len(data):
        if dec.done:
            raise HdnFormatError(f"unexpected {len(data) - pos} bytes after the last chunk")
        if out and out[-1].level <= stop_level:
            return dec
        need = _next_piece(dec, data, pos)
        dec.feed(data[pos : pos + need])
        pos += need
    if out and out[-1].level <= stop_level:
        return dec
    dec.finish()
    if not out:
        raise HdnFormatError("stream holds a header but no complete chunk")
    return dec


def _next_piece(dec: ProgressiveDecoder, data: bytes, pos: int) -> int:
    """How many bytes to feed next so that at most one chunk completes."""
    if dec.header is None:
        if len(data) - pos < PREAMBLE_SIZE:
            return len(data) - pos
        return PREAMBLE_SIZE + parse_preamble(data[pos : pos + PREAMBLE_SIZE])
    if len(data) - pos < CHUNK_HEADER_SIZE:
        return len(data) - pos
    ch = parse_chunk_header(data, pos)
    return CHUNK_HEADER_SIZE + ch.payload_length
