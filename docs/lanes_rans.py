"""Prototype for issue 14's speed: the codec's values coded by interleaved rANS over many lanes.

    .venv/bin/python docs/lanes_rans.py [IMAGE ...] [--effort 1] [--full] [--lanes-per 4096]

Decoding spends about 95 ns a value in constriction's range decoder (the quantized Laplace of
every value has its own mean and scale), which holds the GIL: that alone keeps a 12 MP
photograph's fastest stream (one pass, ``--effort 1``) near 3.5 MP/s on one core, with nothing
else counted (docs/bench.md, "The entropy coder"). This measures an alternative before any
format change. For each image (by default the validation photographs of
``../shared/data/val``, their central 768x512; ``--full`` as they are: a large photograph shows
the per-value cost best) it encodes the one-pass lossless stream at ``--effort`` while
recording every call that codes values (their symbols, and the centre and scale the codec
codes them with), then codes the same symbols two ways and checks that each decodes them
exactly:

* **constriction**, as the codec does: a quantized Laplace per value, one range coder;
* **tables and lanes**: each value's Laplace quantized to one of a fixed set of tables (its
  scale to eighths of an octave, its centre to a quarter of a step, mirrored), 14-bit
  frequencies; the values of a call dealt to ``n // lanes-per`` lanes (at most 8192), one
  32-bit rANS state each, that numpy advances together: one symbol per lane per vector step,
  the words a step's lanes renormalise with read in lane order from one stream.

It prints, per image and in all, the bytes and the decode time of each (the symbols only:
the predictions, stages and everything else of a decode are the same for both). docs/bench.md
quotes it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import constriction
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from hidenet_core.codec import entropy  # noqa: E402
from hidenet_core.codec.encoder import EncodeSettings, encode  # noqa: E402
from hidenet_core.imageio import center_crop, load_image  # noqa: E402
from hidenet_core.predictors import load_model  # noqa: E402

BITS = 14  # table precision: frequencies sum to 2^14
M = 1 << BITS
LOW = 1 << 16  # a lane's state lies in [LOW, LOW << 16): 16-bit words in and out
CLASSES_PER_OCTAVE = 8
PHASES = 4  # the centre (in [-1/2, 1/2]) to a quarter: 0, 1/8, 2/8, 3/8, 4/8 after mirroring
MAX_LANES = 8192


#: a table spans the symbols within this many of its scales of 0 (at least ``MIN_SPAN``); the
#: rest share one escape symbol (the last), and an escaped value is sent as it is (9 bits): a table
#: of all 511 symbols gave each improbable one a share of the 2^14 (0.9% more bytes on a smooth photo)
SPAN_SCALES, MIN_SPAN = 14, 12


def span(bound: int, scale: float) -> int:
    return min(bound, max(MIN_SPAN, int(np.ceil(SPAN_SCALES * scale))))


def _table(bound: int, scale: float, centre: float) -> np.ndarray:
    """The frequencies (sum M, each at least 1) of symbols -t..t under a Laplace, then the escape
    (everything beyond; t = ``span``)."""
    t = span(bound, scale)
    q = np.arange(-t, t + 1, dtype=np.float64)

    def cdf(t: np.ndarray) -> np.ndarray:
        z = (t - centre) / scale
        return np.where(z < 0, 0.5 * np.exp(np.minimum(z, 0)), 1 - 0.5 * np.exp(-np.maximum(z, 0)))

    p = np.maximum(cdf(q + 0.5) - cdf(q - 0.5), 0)
    p = np.append(p, max(0.0, 1 - p.sum()))  # the escape
    p /= p.sum()
    f = np.maximum(1, np.floor(p * (M - p.size)).astype(np.int64))
    f[np.argmax(f)] += M - f.sum()
    return f


class Tables:
    """Every (class, phase) table of one symbol bound, built as the values ask for them."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.freq: list[np.ndarray] = []
        self.spans: list[int] = []
        self.index: dict[int, int] = {}

    def ids(self, centre: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each value's table id and whether its symbol is mirrored (a centre below 0)."""
        k = np.maximum(0, np.round(np.log2(scale / entropy.SCALE_FLOOR) * CLASSES_PER_OCTAVE)).astype(np.int64)
        mirrored = centre < 0
        p = np.round(np.abs(centre) * 2 * PHASES).astype(np.int64)
        keys = k * (PHASES + 1) + p
        out = np.empty(keys.shape, np.int64)
        for key in np.unique(keys):
            if int(key) not in self.index:
                kk, pp = divmod(int(key), PHASES + 1)
                self.index[int(key)] = len(self.freq)
                scale = entropy.SCALE_FLOOR * 2 ** (kk / CLASSES_PER_OCTAVE)
                self.freq.append(_table(self.bound, scale, pp / (2 * PHASES)))
                self.spans.append(span(self.bound, scale))
            out[keys == key] = self.index[int(key)]
        return out, mirrored

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """freq (T, S), cum (T, S), slot -> symbol (T, M) and each table's span t (its symbols
        are -t..t as 0..2t, and 2t + 1 the escape): uint32, uint32, int16, int64."""
        width = max(f.size for f in self.freq)
        freq = np.zeros((len(self.freq), width), np.uint32)
        for i, f in enumerate(self.freq):
            freq[i, : f.size] = f
        cum = np.zeros_like(freq)
        cum[:, 1:] = np.cumsum(freq, axis=1)[:, :-1]
        slots = np.stack([np.repeat(np.arange(f.size), f) for f in self.freq]).astype(np.int16)
        return freq, cum, slots, np.array(self.spans, np.int64)


def lanes_for(n: int, per: int) -> int:
    return max(1, min(MAX_LANES, n // per))


def rans_encode(sym: np.ndarray, table: np.ndarray, freq: np.ndarray, cum: np.ndarray,
                lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """(states, words): value i goes to lane i % lanes, step i // lanes; the words in the order the
    decoder reads them (step by step, lanes in order within a step)."""
    steps = -(-sym.size // lanes)
    pad = steps * lanes - sym.size
    sym = np.concatenate([sym, np.zeros(pad, sym.dtype)]).reshape(steps, lanes)
    table = np.concatenate([table, np.zeros(pad, table.dtype)]).reshape(steps, lanes)
    live = np.concatenate([np.ones(sym.size - pad, bool), np.zeros(pad, bool)]).reshape(steps, lanes)
    x = np.full(lanes, LOW, np.uint64)
    emitted: list[np.ndarray] = [np.zeros(0, np.uint16)] * steps
    for t in range(steps - 1, -1, -1):
        on = np.flatnonzero(live[t])
        s, g = sym[t, on], table[t, on]
        f, c = freq[g, s].astype(np.uint64), cum[g, s].astype(np.uint64)
        xs = x[on]
        out = xs >= ((LOW >> BITS) << 16) * f
        emitted[t] = (xs[out] & 0xFFFF).astype(np.uint16)  # read by the decoder after step t, in lane order
        xs[out] >>= 16
        x[on] = ((xs // f) << BITS) + (xs % f) + c
    return x.astype(np.uint32), np.concatenate(emitted)


def rans_decode(states: np.ndarray, words: np.ndarray, table: np.ndarray, freq: np.ndarray, cum: np.ndarray,
                slots: np.ndarray, n: int) -> np.ndarray:
    lanes = states.size
    steps = -(-n // lanes)
    x = states.astype(np.uint32)
    w = words.astype(np.uint32)
    out = np.empty(steps * lanes, np.int16)
    pos = 0
    mask = np.uint32(M - 1)
    for t in range(steps):
        a, b = t * lanes, min(n, (t + 1) * lanes)
        xs = x[: b - a]
        g = table[a:b]
        slot = xs & mask
        s = slots[g, slot]
        out[a:b] = s
        xs = freq[g, s] * (xs >> BITS) + slot - cum[g, s]
        low = np.flatnonzero(xs < LOW)
        if low.size:
            xs[low] = (xs[low] << 16) | w[pos : pos + low.size]
            pos += low.size
        x[: b - a] = xs
    return out[:n]


def recorded_calls(pixels: np.ndarray, model, effort: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """(symbols, centre, scale, bound) of every call that codes values, in a one-pass lossless encode."""
    calls = []
    original = entropy.LevelEncoder.encode

    def recording(self, x, mean, scale, d):
        if x.size:
            rmean, centre, sc = entropy._params(mean, scale, d)
            calls.append((entropy.quantize(x, rmean, d), centre, sc, entropy.symbol_bound(d)))
        return original(self, x, mean, scale, d)

    entropy.LevelEncoder.encode = recording
    try:
        encode(pixels, model, EncodeSettings(layers=(), effort=effort))
    finally:
        entropy.LevelEncoder.encode = original
    return calls


def compare(calls, per: int) -> dict[str, float]:
    """Bytes and decode seconds of both ways, over every call. The lanes carry on from one call to
    the next (all the calls of one bound, as one chunk's would): a call of its own, with lanes
    enough for vector steps of thousands of values, has too few values per lane for its states."""
    r = {"values": 0, "constriction_bytes": 0, "constriction_s": 0.0, "lanes_bytes": 0, "lanes_s": 0.0}
    tables: dict[int, Tables] = {}
    merged: dict[int, list] = {}
    for q, centre, sc, bound in calls:
        merged.setdefault(bound, []).append((q, centre, sc))
    for bound, parts in merged.items():
        q, centre, sc = (np.concatenate([part[i] for part in parts]) for i in range(3))
        family = constriction.stream.model.QuantizedLaplace(-bound, bound)
        enc = constriction.stream.queue.RangeEncoder()
        enc.encode(q, family, centre, sc)
        words = enc.get_compressed()
        t0 = time.perf_counter()
        got = constriction.stream.queue.RangeDecoder(words).decode(family, centre, sc)
        r["constriction_s"] += time.perf_counter() - t0
        assert np.array_equal(got, q)
        r["constriction_bytes"] += words.size * 4
        tab = tables.setdefault(bound, Tables(bound))
        ids, mirrored = tab.ids(centre, sc)  # (the decoder computes these from the predictions it has)
        freq, cum, slots, spans = tab.arrays()
        t = spans[ids].astype(np.int32)
        signed = np.where(mirrored, -q, q).astype(np.int32)
        escaped = np.abs(signed) > t
        sym = np.where(escaped, 2 * t + 1, signed + t)
        lanes = lanes_for(q.size, per)
        states, rwords = rans_encode(sym, ids, freq, cum, lanes)
        raw = signed[escaped]  # sent as they are, 9 bits each, in a stream of their own
        t0 = time.perf_counter()
        back = rans_decode(states, rwords, ids, freq, cum, slots, q.size)
        got = back - t  # int32
        got[np.flatnonzero(back == 2 * t + 1)] = raw
        np.negative(got, out=got, where=mirrored)
        r["lanes_s"] += time.perf_counter() - t0
        assert np.array_equal(got, q)
        r["lanes_bytes"] += states.size * 4 + rwords.size * 2 + (9 * raw.size + 7) // 8
        r["escaped"] = r.get("escaped", 0) + raw.size
        r["values"] += q.size
    return r


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "val"
    p.add_argument("images", nargs="*", type=Path, help=f"images (default: {default}/*.png)")
    p.add_argument("--effort", type=int, default=1, help="hidenet encode --effort (default 1, the fastest)")
    p.add_argument("--full", action="store_true", help="the images as they are, not their central 768x512")
    p.add_argument("--lanes-per", type=int, default=4096, help="values per lane (default 4096)")
    args = p.parse_args(argv)
    model = load_model("default")
    total: dict[str, float] = {}
    print("| image | values | constriction bytes | lanes bytes | constriction decode | lanes decode |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for path in args.images or sorted(default.glob("*.png")):
        pixels = load_image(path).pixels
        if not args.full:
            pixels = center_crop(pixels, 768, 512)
        r = compare(recorded_calls(pixels, model, args.effort), args.lanes_per)
        for k, v in r.items():
            total[k] = total.get(k, 0) + v
        print(_row(path.name, r), flush=True)
    print(_row("all", total))
    return 0


def _row(name: str, r: dict[str, float]) -> str:
    n = r["values"]
    return (f"| {name} | {n:,.0f} | {r['constriction_bytes']:,.0f} | {r['lanes_bytes']:,.0f} "
            f"({100 * (r['lanes_bytes'] / r['constriction_bytes'] - 1):+.2f}%) | {r['constriction_s']:.2f} s "
            f"({1e9 * r['constriction_s'] / n:.0f} ns a value) | {r['lanes_s']:.2f} s "
            f"({1e9 * r['lanes_s'] / n:.0f} ns) |")


if __name__ == "__main__":
    sys.exit(main())
