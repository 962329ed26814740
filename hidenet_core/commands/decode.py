"""``hidenet decode``: a .hdn stream (or a prefix of one) to a PNG."""

from __future__ import annotations

import argparse
import sys
import time

from ..cli import CliError
from ..codec.container import parse_chunk_header, parse_header
from ..codec.decoder import decode_until
from ..codec.plan import stream_plan
from ..codec.pyramid import level_shapes
from ..display import display_frame
from ..imageio import save_png
from ..predictors import load_model
from .options import add_files, add_model_option, level_arg, progress_bar
from .streamfile import read_stream

HELP = "decode a .hdn stream (or any prefix of it) into a PNG"


def configure(p: argparse.ArgumentParser) -> None:
    add_files(p, "the .hdn file", "the PNG file to write")
    p.add_argument("--level", type=level_arg, default=0, metavar="K",
                   help="decode levels down to K only (0 = the full image, up to the stream's base level): "
                        "level K as the stream's last pass over it left it (exact in a lossless stream); "
                        "the finer levels' chunks are checked, not decoded")
    p.add_argument("--preview", action="store_true",
                   help="fill the levels not decoded by prediction: a full-size image from any prefix, as the "
                        "viewer shows it (with the display filter of docs/viewer.md)")
    add_model_option(p)


def _tick(bar, chunk) -> None:
    bar.total = chunk.chunks
    bar.set_postfix_str(f"layer {chunk.layer}, level {chunk.level}")
    bar.update()


def complete_prefix(data: bytes) -> int:
    """The length of the longest prefix of ``data`` that ends on a chunk boundary (a stream
    cut inside a chunk, as a download stopped short leaves it, decodes up to there).

    Walks the chunk headers along the stream's plan, as ``container.scan_stream(prefix=True)``
    does; a bad header still raises ``HdnFormatError``, and the decoder checks the rest."""
    header, pos = parse_header(data)
    size = header.chunk_header_size
    for _ in stream_plan(header):
        if len(data) - pos < size:
            return pos
        end = pos + size + parse_chunk_header(data, pos, header.layered).payload_length
        if end > len(data):
            return pos
        pos = end
    return len(data)  # every chunk is complete: bytes after them are the decoder's error to report


def run(args: argparse.Namespace) -> int:
    data = read_stream(args.input)
    end = complete_prefix(data)
    ignored, data = len(data) - end, data[:end]
    header = parse_header(data)[0]
    if args.level > header.levels:
        shapes = level_shapes(header.height, header.width, header.levels)
        raise CliError(f"--level {args.level} is not in this stream: its levels are 0 (the full image, "
                       f"{header.width}x{header.height}) to {header.levels} (the base, "
                       f"{shapes[-1][1]}x{shapes[-1][0]})")
    model = load_model(args.model)
    t0 = time.perf_counter()
    bar = progress_bar(0, "decoding")
    try:
        decoder = decode_until(data, model, stop_level=args.level, on_chunk=lambda c: _tick(bar, c), images=False)
    finally:
        bar.close()
    # the finest level decoded: a layered stream's last chunks may refine coarser levels again
    level = decoder.current_level
    # a preview predicts the levels below ``level``, or mid-layer estimates those below a refinement
    # under way, or the colours a layer left coarser than the lead (docs/format.md); else the decoded
    # level as it stands
    rec = decoder.reconstruction
    previewed = args.preview and (level > 0 or rec.estimated_below() is not None or bool(rec.coarse_colours))
    image = decoder.preview() if previewed else decoder.level_image(level)
    if args.preview:
        image = display_frame(image, level, header.generative_levels, full_size=True)
    seconds = time.perf_counter() - t0
    save_png(image, args.output)
    if ignored:
        print(f"hidenet: note: the stream is cut inside a chunk: its last {ignored} bytes were ignored",
              file=sys.stderr)
    if level > args.level:
        print(f"hidenet: note: the stream ends after level {level}; level {args.level} is not in it",
              file=sys.stderr)
    h, w = image.shape[:2]
    print(f"{args.output}: level {level}{' + preview' if previewed else ''}, {w}x{h}, "
          f"{decoder.levels[-1].bytes_consumed} bytes read, decoded in {seconds:.2f} s")
    return 0
