"""``hidenet encode``: an image file to a .hdn stream."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..codec.encoder import DEFAULT_EFFORT, EFFORTS, EncodeSettings, encode_chunks
from ..codec.versions import VERSION, VERSIONS, format_version
from ..imageio import load_image
from ..predictors import load_model
from .options import add_files, add_model_option, int_range, layers_arg, level_arg, max_error_list, progress_bar

HELP = "encode an image into a progressive .hdn stream"


def configure(p: argparse.ArgumentParser) -> None:
    add_files(p, "image file (8-bit L, RGB or RGBA; other modes are converted)", "the .hdn file to write")
    p.add_argument("--max-error", type=max_error_list, default=0, metavar="D",
                   help="largest error per pixel where the stream ends (0 = lossless, the default), or one value "
                        "per level from 0 (full image) to L")
    p.add_argument("--no-layers", action="store_true",
                   help="one pass over the levels, base first (resolution only): every level exact (or at its max "
                        "error) before the next; 1 to 2%% smaller, but the picture sharpens only level by level")
    p.add_argument("--layers", type=layers_arg, default=None, metavar="D/D/...",
                   help="the max error of each layer before the last, first layer first; each one value or one "
                        "per level, level 0 first (default, format version 10: green within 16 and then 8 at "
                        "level 0, each halved at every coarser level, the base exact, a level seen only at 1:1 "
                        "skipping the second; versions 6 to 9: one layer of 32; docs/format.md)")
    p.add_argument("--colour-layers", type=layers_arg, default=None, metavar="D/D/...",
                   help="the max error of the colours other than green in each layer before the last, as "
                        "--layers (one per layer of it; format version 10): coarser than green, or unchanged, "
                        "costs far fewer bytes, the viewer estimating them from green's detail; with --layers only "
                        "(default: green's; without --layers, the default schedule's: 64 then 32 at level 0, each "
                        "halved at every coarser level; docs/format.md)")
    p.add_argument("--effort", type=int_range(min(EFFORTS), max(EFFORTS)), default=DEFAULT_EFFORT, metavar="E",
                   help=f"{min(EFFORTS)} (fastest) .. {max(EFFORTS)} (smallest), default {DEFAULT_EFFORT}: "
                        + "; ".join(f"{k}: {v}" for k, v in EFFORTS.items()).replace("%", "%%"))
    p.add_argument("--generative-levels", type=level_arg, default=0, metavar="G",
                   help="the finest G levels send no residual: the decoder shows the prediction")
    p.add_argument("--levels", type=level_arg, default=None, metavar="L",
                   help="number of levels below the full image (default: base at most 32 px)")
    p.add_argument("--format-version", type=int_range(min(VERSIONS), max(VERSIONS)), default=VERSION, metavar="N",
                   help=f"the .hdn format version to write (default {VERSION}: quality layers, the learned model "
                        f"evaluated exactly so that the stream decodes on every machine; older ones are for "
                        f"decoders that read only those): 7 has the float32 model (machine-dependent; for a model "
                        f"without an exact evaluation), 6 also codes its values with constriction alone, 5 is "
                        f"resolution only, 4 also has no preview filters, 3 also no scale context, 2 also no "
                        f"linear prediction, 1 no per-image calibration at all (docs/format.md)")
    add_model_option(p)


def run(args: argparse.Namespace) -> int:
    image = load_image(args.input)
    if image.note:
        print(f"hidenet: note: {image.note}", file=sys.stderr)
    model = load_model(args.model)
    if args.no_layers and args.layers is not None:
        raise ValueError("give --no-layers or --layers, not both")
    if (args.no_layers or args.layers is not None) and not format_version(args.format_version).layered:
        raise ValueError(f"--layers and --no-layers need a layered format version (6), not {args.format_version}")
    if args.effort != DEFAULT_EFFORT and not format_version(args.format_version).layered:
        raise ValueError(f"--effort needs a layered format version (6), not {args.format_version}")
    if args.colour_layers is not None and (args.no_layers or not format_version(args.format_version).colour_layers):
        raise ValueError("--colour-layers needs layers in format version 10 (not --no-layers, not an older version)")
    settings = EncodeSettings(args.max_error, args.generative_levels, args.levels, args.format_version,
                              () if args.no_layers else args.layers, args.effort, args.colour_layers)
    t0 = time.perf_counter()
    pieces = []
    bar = None
    for chunk in encode_chunks(image.pixels, model, settings):
        if bar is None:
            bar = progress_bar(chunk.chunks, "encoding")
        else:
            bar.set_postfix_str(f"layer {chunk.spec.layer}, level {chunk.spec.level}")
            bar.update()
        pieces.append(chunk.data)
    if bar is not None:
        bar.close()
    data = b"".join(pieces)
    seconds = time.perf_counter() - t0
    out = Path(args.output)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(out)
    h, w, c = image.pixels.shape
    print(f"{args.output}: {w}x{h} {image.mode}, {len(data)} bytes, {len(data) * 8 / (w * h):.3f} bpp, "
          f"encoded in {seconds:.2f} s with model {model.name!r}")
    return 0
