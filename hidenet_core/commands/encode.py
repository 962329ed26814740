"""``hidenet encode``: an image file to a .hdn stream."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..codec import EncodeSettings, encode
from ..imageio import load_image
from ..predictors import load_model
from .options import add_model_option, int_range, max_error_list


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="image file (8-bit L, RGB or RGBA; other modes are converted)")
    p.add_argument("output", help="the .hdn file to write")
    p.add_argument("--max-error", type=max_error_list, default=0, metavar="D",
                   help="largest error per pixel (0 = lossless), or one value per level from 0 (full image) to L")
    p.add_argument("--generative-levels", type=int_range(0, 16), default=0, metavar="G",
                   help="the finest G levels send no residual: the decoder shows the prediction")
    p.add_argument("--levels", type=int_range(0, 16), default=None, metavar="L",
                   help="number of levels below the full image (default: base at most 32 px)")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                   help="skip the per-image calibration and write a format-version-1 stream (larger)")
    p.add_argument("--no-linear", dest="linear", action="store_false",
                   help="skip the per-image linear prediction and write a format-version-2 stream "
                        "(larger, for decoders that read only versions 1 and 2; encodes faster)")
    p.add_argument("--no-scale-context", dest="scale_context", action="store_false",
                   help="skip the per-image scale context and write a format-version-3 stream "
                        "(larger, for decoders that read only versions 1 to 3)")
    p.add_argument("--no-preview-filter", dest="preview_filter", action="store_false",
                   help="skip the per-image preview filters and write a format-version-4 stream "
                        "(about 100 bytes smaller per level of 32x32+ positions; plainer previews and "
                        "generative levels; for decoders that read only versions 1 to 4)")
    add_model_option(p)


def run(args: argparse.Namespace) -> int:
    image = load_image(args.input)
    if image.note:
        print(f"hidenet: note: {image.note}", file=sys.stderr)
    model = load_model(args.model)
    settings = EncodeSettings(args.max_error, args.generative_levels, args.levels, args.calibrate, args.linear,
                              args.scale_context, args.preview_filter)
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
