"""``hidenet encode``: an image file to a .hdn stream."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..codec.encoder import EncodeSettings, encode
from ..codec.versions import VERSION, VERSIONS
from ..imageio import load_image
from ..predictors import load_model
from .options import add_files, add_model_option, int_range, level_arg, max_error_list

HELP = "encode an image into a progressive .hdn stream"


def configure(p: argparse.ArgumentParser) -> None:
    add_files(p, "image file (8-bit L, RGB or RGBA; other modes are converted)", "the .hdn file to write")
    p.add_argument("--max-error", type=max_error_list, default=0, metavar="D",
                   help="largest error per pixel (0 = lossless), or one value per level from 0 (full image) to L")
    p.add_argument("--generative-levels", type=level_arg, default=0, metavar="G",
                   help="the finest G levels send no residual: the decoder shows the prediction")
    p.add_argument("--levels", type=level_arg, default=None, metavar="L",
                   help="number of levels below the full image (default: base at most 32 px)")
    p.add_argument("--format-version", type=int_range(min(VERSIONS), max(VERSIONS)), default=VERSION, metavar="N",
                   help=f"the .hdn format version to write (default {VERSION}; older ones are larger, for decoders "
                        f"that read only those): 4 has no preview filters, 3 also no scale context, 2 also no "
                        f"linear prediction, 1 no per-image calibration at all (docs/format.md)")
    add_model_option(p)


def run(args: argparse.Namespace) -> int:
    image = load_image(args.input)
    if image.note:
        print(f"hidenet: note: {image.note}", file=sys.stderr)
    model = load_model(args.model)
    settings = EncodeSettings(args.max_error, args.generative_levels, args.levels, args.format_version)
    t0 = time.perf_counter()
    data = encode(image.pixels, model, settings)
    seconds = time.perf_counter() - t0
    out = Path(args.output)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(out)
    h, w, c = image.pixels.shape
    print(f"{args.output}: {w}x{h} {image.mode}, {len(data)} bytes, {len(data) * 8 / (w * h):.3f} bpp, "
          f"encoded in {seconds:.2f} s with model {model.name!r}")
    return 0
