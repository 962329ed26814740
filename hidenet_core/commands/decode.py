"""``hidenet decode``: a .hdn stream (or a prefix of one) to a PNG."""

from __future__ import annotations

import argparse
import sys
import time

from ..codec.decoder import decode_until
from ..imageio import save_png
from ..predictors import load_model
from .options import add_files, add_model_option, level_arg, progress_bar
from .streamfile import read_stream

HELP = "decode a .hdn stream (or any prefix of it) into a PNG"


def configure(p: argparse.ArgumentParser) -> None:
    add_files(p, "the .hdn file", "the PNG file to write")
    p.add_argument("--level", type=level_arg, default=0, metavar="K",
                   help="stop after level K (0 = the full image)")
    p.add_argument("--preview", action="store_true",
                   help="fill the levels not decoded by prediction: a full-size image from any prefix")
    add_model_option(p)


def _tick(bar, chunk) -> None:
    bar.total = chunk.chunks
    bar.set_postfix_str(f"layer {chunk.layer}, level {chunk.level}")
    bar.update()


def run(args: argparse.Namespace) -> int:
    data = read_stream(args.input)
    model = load_model(args.model)
    t0 = time.perf_counter()
    bar = progress_bar(0, "decoding")
    try:
        decoder = decode_until(data, model, stop_level=args.level, on_chunk=lambda c: _tick(bar, c))
    finally:
        bar.close()
    last = decoder.levels[-1]
    image = decoder.preview() if args.preview and last.level > 0 else last.image
    seconds = time.perf_counter() - t0
    save_png(image, args.output)
    if last.level > args.level:
        print(f"hidenet: note: the stream ends after level {last.level}; level {args.level} is not in it",
              file=sys.stderr)
    h, w = image.shape[:2]
    print(f"{args.output}: level {last.level}{' + preview' if args.preview and last.level else ''}, {w}x{h}, "
          f"{last.bytes_consumed} bytes read, decoded in {seconds:.2f} s")
    return 0
