"""``hidenet info``: the header and per-level chunk sizes of a .hdn stream."""

from __future__ import annotations

import argparse
import json

from ..codec.container import stream_info
from .streamfile import read_stream

HELP = "show the header and per-level chunk sizes of a .hdn stream"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="the .hdn file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    info = stream_info(read_stream(args.input))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{args.input}: {info['width']}x{info['height']} {info['mode']}, {len(info['levels'])} of "
          f"{len(info['max_error'])} levels, model {info['model']} ({info['model_hash']})")
    print(f"format version {info['format_version']}, max error per level (0..L): {info['max_error']}, "
          f"generative levels: {info['generative_levels']}")
    print(f"{'level':>5} {'size':>11} {'payload':>10} {'total':>10}")
    for lv in info["levels"]:
        print(f"{lv['level']:>5} {lv['width']:>5}x{lv['height']:<5} {lv['payload_bytes']:>10} {lv['total_bytes']:>10}")
    return 0
