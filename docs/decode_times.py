"""The decode call alone, timed: what docs/bench.md and the README quote for .hdn streams.

    .venv/bin/python docs/decode_times.py STREAM.hdn [STREAM.hdn ...] [--threads 2] [--repeats 2]

``hidenet decode`` also starts Python and torch and writes a PNG (at 12 MP, seconds of its own);
``hidenet bench --scaling`` times the call alone but encodes at the current format version only.
This decodes streams written by ``hidenet encode ... --format-version N`` (any version, effort or
layering) in memory, each ``--repeats`` times after one untimed run (which loads numba's compiled
loops), and prints the fastest, with the megapixels per second.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from hidenet_core import decode_image, load_model, read_header  # noqa: E402
from hidenet_core.memory import fast_allocator  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("streams", nargs="+", type=Path)
    p.add_argument("--model", default="default")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs, the fastest is printed (default 2)")
    args = p.parse_args(argv)
    fast_allocator()  # as ``hidenet decode`` (memory.py)
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    for path in args.streams:
        data = path.read_bytes()
        header = read_header(data)
        decode_image(data, model)  # untimed: compiled loops loaded, caches warm
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            decode_image(data, model)
            best = min(best, time.perf_counter() - t0)
        mp = header.width * header.height / 1e6
        print(f"{path.name}: format version {header.version}, {len(data):,} bytes, {best:.2f} s "
              f"({mp / best:.2f} MP/s, {args.threads} threads)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
