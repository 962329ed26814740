"""Static-table rANS: how a version-7 stream codes its values' symbols (docs/format.md, "Value tables").

Up to version 6 every value's symbol goes through constriction's range coder under a quantized
Laplace built for that value from its own centre and scale: about 100 ns a value, with the GIL
held, which alone kept a 12 MP photograph's fastest stream near 3.5 MP/s on one core
(docs/bench.md, "The entropy coder"). Version 7 codes the same symbols under one of a fixed set
of **tables** instead:

* a value's **scale** (in symbol units, at least ``entropy.SCALE_FLOOR``) picks its class from
  the bits of its float64 (exponent and the top three bits of the mantissa: eight classes per
  octave), ``class = (bits >> 49) - (bits of SCALE_FLOOR >> 49)``, clamped to the classes;
* its **centre** ``c`` (the mean's offset from its rounded value, in symbol units) picks a
  phase ``p = min(8, floor(16 |c| + 1/2))``; a negative centre mirrors the symbol (``-q``);
* the table of (bound, class, phase) holds 14-bit frequencies of the symbols ``-t .. t``
  under the Laplace of the class's scale and centre ``p / 16``, and, where ``t`` is below the
  symbol bound, an **escape** for the rest, whose symbol is then coded as it is (uniform over
  the bound) by the chunk's range coder. ``t`` covers 14 scales of the class, at least 12.

The tables are built by integer arithmetic alone from ``intervals.EXP_TABLE`` and the class's
scale in 1/4096 units (from exactly representable class edges and a correctly rounded square
root), so every machine builds the same ones; a test pins their checksum. The symbols of one
chunk share one 32-bit rANS state (16-bit words, states in [2^16, 2^32)): the encoder codes
them in reverse when the chunk's payload is made, the decoder reads them in order, call by
call, interleaved with what the range coder holds. The loops are compiled by numba, without
the GIL: about 20 ns a value to decode a 12 MP photograph's symbols against 110 for the range
coder, for the same bytes.
"""

from __future__ import annotations

import math
import zlib
from functools import lru_cache

import numpy as np

from .compiled import jit
from .fixedpoint import _IMAX, _ONE, EXP_TABLE

__all__ = ["PRECISION", "TableSet", "tables", "table_ids", "TableEncoder", "TableDecoder", "checksum", "warm_up"]

#: frequencies sum to 2^PRECISION
PRECISION = 14
_M = 1 << PRECISION
#: a state lies in [_LOW, _LOW << 16): 16-bit words in and out
_LOW = 1 << 16
#: a scale's class is its float64 bits shifted right by this much: 2^(52 - CLASS_SHIFT) classes per octave
CLASS_SHIFT = 49
#: the classes of scale, from SCALE_FLOOR's up to about 560
CLASSES = 110
#: a centre is quantized to 1 / 2^PHASE_BITS: phases 0 .. 2^(PHASE_BITS - 1)
PHASE_BITS = 4
PHASES = (1 << (PHASE_BITS - 1)) + 1
_PHASE_UNIT = float(1 << PHASE_BITS)
#: a table spans the symbols within this many of its scales of 0, at least MIN_SPAN
SPAN_SCALES, MIN_SPAN = 14, 12
#: scales in the tables' integer arithmetic are in units of 1/_SCALE_UNIT
_SCALE_UNIT = 4096
#: ``entropy.SCALE_FLOOR``, which this module cannot import (entropy imports it); a test checks they agree
_SCALE_FLOOR = 0.04
#: the float64 bits of the floor shifted to its class
_FLOOR_CLASS = int(np.array(_SCALE_FLOOR, dtype=np.float64).view(np.int64)) >> CLASS_SHIFT
_ARG_SHIFT = 22 - PHASE_BITS  # |A| / 2^PHASE_BITS over S / 4096, in units of 1/1024


def class_scales() -> list[int]:
    """Each class's scale in 1/4096 units: the geometric mean of its edges (float64 numbers with
    exact bit patterns; the lowest class starts at SCALE_FLOOR), rounded."""
    out = []
    for k in range(CLASSES):
        lo = float(np.array((_FLOOR_CLASS + k) << CLASS_SHIFT, dtype=np.int64).view(np.float64))
        hi = float(np.array((_FLOOR_CLASS + k + 1) << CLASS_SHIFT, dtype=np.int64).view(np.float64))
        out.append(round(math.sqrt(max(lo, _SCALE_FLOOR) * hi) * _SCALE_UNIT))
    return out


def _span(bound: int, s: int) -> int:
    return min(bound, max(MIN_SPAN, -(-SPAN_SCALES * s // _SCALE_UNIT)))


class TableSet:
    """Every table of one symbol bound: ``freq`` and ``cum`` (T, W) uint32 (W = the widest table
    plus one), ``span`` (T,) int32 (symbols -t..t at 0..2t, the escape at 2t + 1 where t < bound),
    ``count`` (T,) int32 the symbols of each, and ``bucket`` (T, 256) uint16: the first symbol of
    each 64-slot bucket (the decoder's search starts there). Table id = class * PHASES + phase."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        scales = class_scales()
        spans = [_span(bound, s) for s in scales]
        width = 2 * max(spans) + 3
        n_tab = CLASSES * PHASES
        self.freq = np.zeros((n_tab, width), dtype=np.uint32)
        self.cum = np.zeros((n_tab, width), dtype=np.uint32)
        self.span = np.zeros(n_tab, dtype=np.int32)
        self.count = np.zeros(n_tab, dtype=np.int32)
        self.bucket = np.zeros((n_tab, 256), dtype=np.uint16)
        for k, (s, t) in enumerate(zip(scales, spans)):
            for p in range(PHASES):
                f = _frequencies(bound, s, t, p)
                i = k * PHASES + p
                self.freq[i, : f.size] = f
                self.cum[i, 1 : f.size + 1] = np.cumsum(f)
                self.span[i], self.count[i] = t, f.size
                starts = np.arange(256, dtype=np.int64) << (PRECISION - 8)
                self.bucket[i] = np.searchsorted(self.cum[i, 1 : f.size + 1].astype(np.int64), starts, side="right")


def _frequencies(bound: int, s: int, t: int, p: int) -> np.ndarray:
    """The integer frequencies (sum 2^14, each at least 1) of symbols -t..t (and the escape where
    t < bound) under a Laplace of scale s / 4096 and centre p / 16."""
    v = np.arange(-t, t + 2, dtype=np.int64)  # the lower edges of -t..t and the upper edge of t
    unit = 1 << PHASE_BITS
    a = unit * v - unit // 2 - p  # each edge v - 1/2 - p / unit, in units of 1 / unit
    i = ((np.abs(a) << _ARG_SHIFT) + s // 2) // s
    e = EXP_TABLE[np.minimum(i, _IMAX)]
    twice_f = np.where(a < 0, e, 2 * _ONE - e)  # 2 F(edge) in units of 2^-30
    mass = np.diff(twice_f)
    if t < bound:
        mass = np.append(mass, 2 * _ONE - (twice_f[-1] - twice_f[0]))
    n = mass.size
    f = 1 + (mass * (_M - n)) // (2 * _ONE)
    f[int(np.argmax(f))] += _M - int(f.sum())
    return f.astype(np.uint32)


@lru_cache(maxsize=16)
def tables(bound: int) -> TableSet:
    """The tables of symbol bound ``bound`` (built once per process)."""
    return TableSet(bound)


def checksum(bound: int) -> int:
    """A CRC of every frequency of a bound's tables (a test pins it for a few bounds)."""
    ts = tables(bound)
    return zlib.crc32(ts.freq.tobytes() + ts.span.tobytes())


@jit
def _table_id(c, scale_bits, floor_class):  # pragma: no cover - compiled
    """The table of a value with centre ``c`` and a scale of float64 bits ``scale_bits``: the one
    rule both ends apply (its symbol is mirrored where ``c < 0``)."""
    k = min(max((scale_bits >> CLASS_SHIFT) - floor_class, 0), CLASSES - 1)
    p = min(PHASES - 1, max(0, int(math.floor(abs(c) * _PHASE_UNIT + 0.5))))
    return k * PHASES + p


@jit
def _table_ids(centre, scale_bits, floor_class, ids, mirrored):  # pragma: no cover - compiled
    for i in range(centre.size):
        ids[i] = _table_id(centre[i], scale_bits[i], floor_class)
        mirrored[i] = centre[i] < 0


def table_ids(centre: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's table id and whether its symbol is mirrored, from float64 centres and scales."""
    centre = np.ascontiguousarray(centre, dtype=np.float64)
    scale = np.ascontiguousarray(scale, dtype=np.float64)
    ids = np.empty(centre.size, dtype=np.int32)
    mirrored = np.empty(centre.size, dtype=np.bool_)
    _table_ids(centre, scale.view(np.int64), _FLOOR_CLASS, ids, mirrored)
    return ids, mirrored


@jit
def _decode(state, words, pos, centre, scale_bits, floor_class,  # pragma: no cover - compiled
            freq, cum, count, span, bucket, out, escaped):
    """Decode out.size symbols (signed, mirrored back); escapes flagged. Returns (state, pos, ok)."""
    x = np.uint32(state)
    n_words = words.size
    for i in range(out.size):
        c = centre[i]
        t = _table_id(c, scale_bits[i], floor_class)
        slot = x & np.uint32(_M - 1)
        s = np.int64(bucket[t, slot >> (PRECISION - 8)])
        last = count[t] - 1
        while s < last and cum[t, s + 1] <= slot:
            s += 1
        x = np.uint32(freq[t, s]) * (x >> np.uint32(PRECISION)) + slot - np.uint32(cum[t, s])
        if x < np.uint32(_LOW):
            if pos >= n_words:
                return x, pos, False
            x = (x << np.uint32(16)) | np.uint32(words[pos])
            pos += 1
        sp = span[t]
        if s == 2 * sp + 1:
            escaped[i] = True
            out[i] = 0
        else:
            escaped[i] = False
            v = s - sp
            out[i] = -v if c < 0 else v
    return x, pos, True


class TableEncoder:
    """The symbols of one chunk, gathered call by call, rANS-coded when the payload is made."""

    def __init__(self) -> None:
        self._sym: list[np.ndarray] = []
        self._tid: list[np.ndarray] = []
        self._bounds: list[int] = []

    def add(self, q: np.ndarray, bound: int, centre: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Take symbols ``q`` in -bound..bound with their centres and scales; return which are escaped
        (their values go to the range coder, in order)."""
        ts = tables(bound)
        tid, mirrored = table_ids(centre, scale)
        t = ts.span[tid]
        signed = np.where(mirrored, -q, q).astype(np.int32)
        escaped = np.abs(signed) > t
        self._sym.append(np.where(escaped, 2 * t + 1, signed + t).astype(np.int16))  # at most 2 * 255 + 1
        self._tid.append(tid.astype(np.int16))  # fewer than CLASSES * PHASES = 990
        self._bounds.append(bound)
        return escaped

    def finish(self) -> bytes:
        """The rANS part of the payload: the final state (u32), then the words in decoding order
        (u16, big-endian), padded to whole 32-bit words."""
        if not self._sym:
            return b""
        # a call's symbols index its bound's tables: code each bound's calls with their own arrays, in
        # reverse call order, one state throughout (what the decoder undoes call by call)
        x = np.uint64(_LOW)
        chunks: list[np.ndarray] = []
        for sym, tid, bound in zip(reversed(self._sym), reversed(self._tid), reversed(self._bounds)):
            ts = tables(bound)
            out = np.empty(sym.size + 2, dtype=np.uint16)
            x, n = _encode_from(x, sym, tid, ts.freq, ts.cum, out)
            chunks.append(out[:n])
        words = np.concatenate(chunks)[::-1]
        if words.size % 2:
            words = np.append(words, np.uint16(0))
        return np.array([int(x)], dtype=">u4").tobytes() + words.astype(">u2").tobytes()


@jit
def _encode_from(x, sym, tid, freq, cum, out):  # pragma: no cover - compiled
    """Code symbols in reverse from state ``x``; the words in the order they are emitted.
    Returns (state, words)."""
    n = 0
    for i in range(sym.size - 1, -1, -1):
        t = tid[i]
        s = sym[i]
        f = np.uint64(freq[t, s])
        if x >= np.uint64((_LOW >> PRECISION) << 16) * f:
            out[n] = np.uint16(x & np.uint64(0xFFFF))
            n += 1
            x >>= np.uint64(16)
        x = ((x // f) << np.uint64(PRECISION)) + x % f + np.uint64(cum[t, s])
    return x, n


class TableDecoder:
    """Reads the symbols a ``TableEncoder`` coded, call by call."""

    def __init__(self, part: bytes) -> None:
        if part and len(part) < 4:
            raise ValueError("a table part shorter than its state")
        self._state = int(np.frombuffer(part[:4], dtype=">u4")[0]) if part else None
        self._words = np.frombuffer(part[4:], dtype=">u2").astype(np.uint16)
        self._pos = 0

    def take(self, bound: int, centre: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(symbols int64, escaped bool) of as many values as ``centre`` has; ValueError where the
        part has no state or runs out of words (a corrupted stream)."""
        if self._state is None:
            raise ValueError("the payload has no table-coded part")
        ts = tables(bound)
        out = np.empty(centre.size, dtype=np.int64)
        escaped = np.empty(centre.size, dtype=np.bool_)
        x, pos, ok = _decode(np.uint32(self._state), self._words, self._pos,
                             np.ascontiguousarray(centre, dtype=np.float64),
                             np.ascontiguousarray(scale, dtype=np.float64).view(np.int64), _FLOOR_CLASS,
                             ts.freq, ts.cum, ts.count, ts.span, ts.bucket, out, escaped)
        if not ok:
            raise ValueError("the table-coded part ends before its symbols")
        self._state, self._pos = int(x), int(pos)
        return out, escaped


def warm_up() -> None:
    """Compile (or load from numba's cache) every loop of this module: about a second the first
    time on a machine, 0.3 s in later processes; a server pays it at start-up, not its first viewer."""
    q, c, s = np.array([0, 3, -40]), np.array([0.1, -0.2, 0.0]), np.array([1.0, 2.0, 0.5])
    enc = TableEncoder()
    enc.add(q, 255, c, s)
    TableDecoder(enc.finish()).take(255, c, s)
