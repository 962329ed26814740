"""``hidenet info``: the header and per-level chunk sizes of a .hdn stream."""

from __future__ import annotations

import argparse
import json

from ..codec.container import stream_info
from .streamfile import read_stream

HELP = "show the header and every chunk (layer, level, max error, sizes) of a .hdn stream"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="the .hdn file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    info = stream_info(read_stream(args.input))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    chunks = info["chunks"]
    state = "complete" if info["complete"] else "a prefix"
    print(f"{args.input}: {info['width']}x{info['height']} {info['mode']}, {len(chunks)} chunks ({state}), "
          f"model {info['model']} ({info['model_hash']})")
    layers = " then ".join(str(r) for r in info["layers"])
    print(f"format version {info['format_version']}, max error per level (0..L) by layer: {layers}, "
          f"generative levels: {info['generative_levels']}")
    print(f"{'layer':>5} {'level':>5} {'part':>7} {'size':>11} {'max err':>7} {'payload':>10} {'total':>10}")
    for c in chunks:
        bound = "-" if c["max_error"] is None else c["max_error"]
        part = f"{c['part'] + 1}/{c['parts']}"
        print(f"{c['layer']:>5} {c['level']:>5} {part:>7} {c['width']:>5}x{c['height']:<5} {bound:>7} "
              f"{c['payload_bytes']:>10} {c['total_bytes']:>10}")
    return 0
