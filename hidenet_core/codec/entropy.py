"""Near-lossless quantization of residuals and range coding with ``constriction``.

A value ``x`` predicted with mean ``m`` and scale ``s`` is coded as the integer

    q = sign(r) * floor((|r| + d) / (2d + 1)),   r = x - round(m)

(JPEG-LS "NEAR" quantization), reconstructed as ``clip(round(m) + q (2d + 1), 0, 255)``,
so that ``|x - x'| <= d``; ``d = 0`` is lossless. ``q`` is entropy coded with a
quantized Laplace (or Gaussian) centred on ``(m - round(m)) / (2d + 1)`` with scale
``s / (2d + 1)``. From format version 7 (``tables=True``) those symbols go through fixed
tables and rANS instead (``tablecoder.py``): the same quantization, another coder; everything
else a chunk codes (side information, truncated refinements) stays with the range coder.
"""

from __future__ import annotations

from functools import lru_cache

import constriction
import numpy as np

from .compiled import jit
from .container import HdnFormatError
from .tablecoder import TableDecoder, TableEncoder

__all__ = ["quantize", "dequantize", "symbol_bound", "LevelEncoder", "LevelDecoder", "SCALE_FLOOR", "warm_up"]

#: scales (in units of the quantization step) are floored here
SCALE_FLOOR = 0.04


def symbol_bound(d: int) -> int:
    """The largest |q| a residual of an 8-bit value can quantize to with max-error d."""
    return (255 + d) // (2 * d + 1)


def quantize(x: np.ndarray, rmean: np.ndarray, d: int) -> np.ndarray:
    """Quantized residual symbols (int32) of integer values ``x`` given rounded means."""
    r = x.astype(np.int32) - rmean.astype(np.int32)
    if d == 0:
        return r
    return (np.sign(r) * ((np.abs(r) + d) // (2 * d + 1))).astype(np.int32)


def dequantize(q: np.ndarray, rmean: np.ndarray, d: int) -> np.ndarray:
    """Reconstructed 8-bit values from symbols and rounded means."""
    return np.clip(rmean.astype(np.int32) + q.astype(np.int32) * (2 * d + 1), 0, 255).astype(np.uint8)


#: per-symbol categorical distributions (refinement passes, ``intervals.py``); "perfect=False" is
#: constriction's fast fixed-point conversion, deterministic for the same probabilities
_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


@lru_cache(maxsize=64)
def _uniform(bound: int):
    """Symbols -bound..bound (shifted to 0..2 bound) all equally likely: a table's escaped values."""
    return constriction.stream.model.Uniform(2 * bound + 1)


@lru_cache(maxsize=64)
def _family(distribution: str, bound: int):
    models = constriction.stream.model
    if distribution == "laplace":
        return models.QuantizedLaplace(-bound, bound)
    if distribution == "gaussian":
        return models.QuantizedGaussian(-bound, bound)
    raise ValueError(f"unknown distribution {distribution!r}")


def _params(mean: np.ndarray, scale: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rounded means, and centre and scale of the symbol distribution (float64): ``_params_numpy``
    (the definition, which a test compares it with) by a compiled loop, value by value."""
    m, s = np.asarray(mean), np.asarray(scale)
    if m.ndim != 1 or s.shape != m.shape:
        return _params_numpy(mean, scale, d)
    rmean, centre, sc = (np.empty(m.size, dtype=np.float64) for _ in range(3))
    _params_kernel(np.ascontiguousarray(m), np.ascontiguousarray(s), float(2 * d + 1), SCALE_FLOOR, rmean, centre, sc)
    return rmean, centre, sc


@jit
def _params_kernel(mean, scale, step, floor, rmean, centre, sc):  # pragma: no cover - compiled
    for i in range(mean.size):
        m = np.float64(mean[i])
        r = np.rint(m)
        rmean[i] = r
        centre[i] = (m - r) / step
        sc[i] = max(np.float64(scale[i]) / step, floor)


def _params_numpy(mean: np.ndarray, scale: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_params`` in numpy, array by array: its definition."""
    step = 2 * d + 1
    mean = mean.astype(np.float64)
    rmean = np.round(mean)
    centre = (mean - rmean) / step
    sc = np.maximum(scale.astype(np.float64) / step, SCALE_FLOOR)
    return rmean, centre, sc


class LevelEncoder:
    """Accumulates the symbols of one chunk into one payload: range-coded, and with ``tables``
    (format version 7, a Laplace predictor) the values' symbols table-coded beside it."""

    def __init__(self, distribution: str, tables: bool = False) -> None:
        self.distribution = distribution
        self._enc = constriction.stream.queue.RangeEncoder()
        self._tables = TableEncoder() if tables and distribution == "laplace" else None
        self._split = tables  # the payload starts with the range part's length

    def _symbols(self, q: np.ndarray, bound: int, centre: np.ndarray, scale: np.ndarray) -> None:
        if self._tables is None:
            self._enc.encode(q.astype(np.int32), _family(self.distribution, bound), centre, scale)
            return
        escaped = self._tables.add(q, bound, centre, scale)
        if escaped.any():
            self._enc.encode((q[escaped] + bound).astype(np.int32), _uniform(bound))

    def encode(self, x: np.ndarray, mean: np.ndarray, scale: np.ndarray, d: int) -> np.ndarray:
        """Code 8-bit values ``x`` (1-D) and return their reconstruction (uint8)."""
        if x.size == 0:
            return x.astype(np.uint8)
        rmean, centre, sc = _params(mean, scale, d)
        q = quantize(x, rmean, d)
        self._symbols(q, symbol_bound(d), centre, sc)
        return dequantize(q, rmean, d)

    def encode_params(self, values: np.ndarray, bound: int, scale: float) -> None:
        """Code small signed integers in -bound..bound (side information) under a Laplace around 0."""
        if values.size:
            self._enc.encode(values.astype(np.int32), _family("laplace", bound), np.zeros(values.size),
                             np.full(values.size, scale))

    def encode_weight_sets(self, weights: list[tuple[int, ...]], bound: int, scale: float) -> None:
        """Code one weight set per channel: a flag each (sent or all zero), then the sets sent."""
        self.encode_params(np.array([1 if any(w) else 0 for w in weights]), 1, 0.5)
        self.encode_params(np.array([a for w in weights if any(w) for a in w]), bound, scale)

    def encode_symbols(self, q: np.ndarray, bound: int, centre: np.ndarray, scale: np.ndarray) -> None:
        """Code integer symbols in -bound..bound under the predictor's distribution family with
        these centres and scales (in symbol units), as ``encode`` codes its quantized residuals."""
        if q.size:
            self._symbols(q, bound, centre, scale)

    def encode_categorical(self, symbols: np.ndarray, probabilities: np.ndarray) -> None:
        """Code symbols 0..K-1, each under its own row of ``probabilities`` (N, K)."""
        if symbols.size:
            self._enc.encode(symbols.astype(np.int32), _CATEGORICAL, probabilities)

    def payload(self) -> bytes:
        """The chunk's payload: the range coder's words; with tables, their count (u32) first and
        the table part after them."""
        words = self._enc.get_compressed().astype(">u4")
        if not self._split:
            return words.tobytes()
        table_part = self._tables.finish() if self._tables is not None else b""
        return np.array([words.size], dtype=">u4").tobytes() + words.tobytes() + table_part


class LevelDecoder:
    """Reads symbols from one chunk's payload, in the order the encoder wrote them."""

    def __init__(self, payload: bytes, distribution: str, tables: bool = False) -> None:
        if len(payload) % 4:
            raise HdnFormatError(f"chunk payload of {len(payload)} bytes is not a whole number of 32-bit words")
        self.distribution = distribution
        words = np.frombuffer(payload, dtype=">u4").astype(np.uint32)
        self._tables: TableDecoder | None = None
        if tables and words.size:  # (an empty payload: a chunk that codes nothing)
            n = int(words[0])
            if n > words.size - 1:
                raise HdnFormatError(f"chunk payload declares {n} range-coded words, it holds {words.size - 1}")
            if distribution == "laplace":
                self._tables = TableDecoder(payload[4 + 4 * n :])
            elif words.size > n + 1:
                raise HdnFormatError("chunk payload has a table-coded part its predictor does not use")
            words = words[1 : n + 1]
        self._dec = constriction.stream.queue.RangeDecoder(words)

    def _symbols(self, bound: int, centre: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Symbols coded by ``LevelEncoder._symbols`` (int64)."""
        if self._tables is None:
            return np.asarray(self._decode(_family(self.distribution, bound), centre, scale), dtype=np.int64)
        try:
            q, escaped = self._tables.take(bound, centre, scale)
        except ValueError as exc:
            raise HdnFormatError(f"chunk payload cannot be decoded: {exc}") from None
        count = int(np.count_nonzero(escaped))
        if count:
            q[escaped] = np.asarray(self._decode(_uniform(bound), count), dtype=np.int64) - bound
        return q

    def decode(self, mean: np.ndarray, scale: np.ndarray, d: int) -> np.ndarray:
        """Decode as many values as ``mean`` has (1-D) and return them (uint8)."""
        if mean.size == 0:
            return np.zeros(0, dtype=np.uint8)
        rmean, centre, sc = _params(mean, scale, d)
        return dequantize(self._symbols(symbol_bound(d), centre, sc), rmean, d)

    def decode_params(self, count: int, bound: int, scale: float) -> np.ndarray:
        """Read ``count`` integers written by ``LevelEncoder.encode_params``."""
        if count == 0:
            return np.zeros(0, dtype=np.int32)
        return np.asarray(self._decode(_family("laplace", bound), np.zeros(count), np.full(count, scale)),
                          dtype=np.int32)

    def decode_weight_sets(self, counts: list[int], bound: int, scale: float) -> list[tuple[int, ...]]:
        """Read what ``LevelEncoder.encode_weight_sets`` coded for sets of ``counts`` weights."""
        flags = self.decode_params(len(counts), 1, 0.5)
        values = iter(self.decode_params(sum(k for k, f in zip(counts, flags) if f), bound, scale).tolist())
        return [tuple(next(values) for _ in range(k)) if f else (0,) * k for k, f in zip(counts, flags)]

    def decode_symbols(self, bound: int, centre: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Read what ``LevelEncoder.encode_symbols`` coded (int64)."""
        if centre.size == 0:
            return np.zeros(0, dtype=np.int64)
        return self._symbols(bound, centre, scale)

    def decode_categorical(self, probabilities: np.ndarray) -> np.ndarray:
        """Read what ``LevelEncoder.encode_categorical`` coded with these rows (int64)."""
        if probabilities.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self._decode(_CATEGORICAL, probabilities), dtype=np.int64)

    def _decode(self, family, *params: np.ndarray):
        """Symbols from the range decoder; a payload it cannot read is an HdnFormatError."""
        try:
            return self._dec.decode(family, *params)
        except (AssertionError, ValueError, RuntimeError) as exc:
            raise HdnFormatError(f"chunk payload cannot be decoded: {' '.join(str(exc).split())}") from None


def warm_up() -> None:
    """Compile (or load from numba's cache) ``_params``' loop for the codec's float32 predictions
    and a caller's float64, so that a server pays it at start-up, not its first viewer."""
    for dtype in (np.float32, np.float64):
        _params(np.array([1.5, 2.0], dtype), np.array([1.0, 3.0], dtype), 1)
