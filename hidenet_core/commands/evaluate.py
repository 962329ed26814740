"""``hidenet eval``: per-level prediction PSNR against bicubic, preview SSIM and lossless bpp."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..predictors import load_model
from ..tools.evaluate import ImageScore, as_json, evaluate_folder, totals
from .options import add_model_option, size_arg

HELP = "evaluate a predictor on a folder of images: per-level PSNR vs bicubic, preview SSIM, lossless bpp"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="folder of images (PNG, JPEG, ...)")
    add_model_option(p)
    p.add_argument("--json", metavar="OUT", help="also write all figures as JSON to this file")
    p.add_argument("--crop", type=size_arg, metavar="WxH", help="evaluate the central WxH crop of each image")
    p.add_argument("--no-verify", action="store_true", help="skip decoding the stream (no decode time, no check)")


def _line(s: ImageScore) -> str:
    lv = " ".join(f"L{x.level}:{x.psnr_model:.2f}/{x.psnr_filtered:.2f}/{x.psnr_bicubic:.2f}" for x in s.levels)
    dec = "" if math.isnan(s.decode_seconds) else f" dec {s.decode_seconds:.2f}s"
    return (f"{s.name}: {s.width}x{s.height} bpp {s.bpp:.3f} preview-ssim {s.preview_ssim:.4f} "
            f"enc {s.encode_seconds:.2f}s{dec} | psnr model/filtered/bicubic {lv}")


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    scores = evaluate_folder(args.folder, model, args.crop, not args.no_verify, lambda s: print(_line(s), flush=True))
    t = totals(scores)
    print(f"total: {t['images']} images, {t['bpp']:.3f} bpp (mean per image {t['mean_image_bpp']:.3f}), "
          f"preview SSIM {t['preview_ssim']:.4f}, model {model.name!r}")
    for lv in t["levels"]:
        print(f"  level {lv['level']}: PSNR model {lv['psnr_model']:.2f} dB, "
              f"with preview filter {lv['psnr_filtered']:.2f} dB, bicubic {lv['psnr_bicubic']:.2f} dB, "
              f"gain {lv['gain_db']:+.2f} / {lv['filtered_gain_db']:+.2f} dB")
    if args.json:
        out = Path(args.json)
        tmp = out.with_name(out.name + ".part")
        tmp.write_text(json.dumps(as_json(scores, model), indent=1, allow_nan=True))
        tmp.replace(out)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
