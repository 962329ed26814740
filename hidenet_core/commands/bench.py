"""``hidenet bench``: measure hideNet against PNG, WebP, JPEG 2000, JPEG-LS, JPEG XL and progressive JPEG."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from .options import add_model_option, int_range, max_error_arg, size_arg

HELP = "benchmark hideNet against standard codecs (lossless size, quality after N bytes, speed, serving)"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="?", default=None, metavar="DIR",
                   help="folder of images to measure (default: the bundled sample photographs)")
    p.add_argument("--out", default="bench-out", metavar="DIR",
                   help="where results.json, results.md and the plots go (default: bench-out)")
    p.add_argument("--quick", action="store_true",
                   help="short run (under a minute): 2 images cropped to 256 px, one timing run, 1 and 8 streams")
    p.add_argument("--no-serving", dest="serving", action="store_false",
                   help="skip the server load test")
    p.add_argument("--max-images", type=int_range(1, 10_000), default=None, metavar="N",
                   help="measure only the first N images (sorted by name)")
    p.add_argument("--crop", type=size_arg, default=None, metavar="WxH",
                   help="measure the central WxH crop of each image (e.g. 768x512)")
    p.add_argument("--repeats", type=int_range(1, 20), default=3, metavar="N",
                   help="timing runs per codec and image; the fastest counts (default 3; 1 with --quick)")
    p.add_argument("--threads", type=int_range(1, 256), default=1, metavar="N",
                   help="torch threads for hideNet (default 1: every codec runs single-threaded)")
    p.add_argument("--extra-max-error", type=max_error_arg, default=4, metavar="D",
                   help="also show a near-lossless hideNet stream (max error D) against bytes received; 0: don't")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_model_option(p)


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (options at their defaults left out)."""
    words = ["hidenet", "bench"]
    if args.images is not None:
        words.append(args.images)
    words += ["--out", args.out]
    if args.quick:
        words.append("--quick")
    if not args.serving:
        words.append("--no-serving")
    if args.crop is not None:
        words += ["--crop", f"{args.crop[0]}x{args.crop[1]}"]
    for opt, value, default in (("--max-images", args.max_images, None), ("--repeats", args.repeats, 3),
                                ("--threads", args.threads, 1), ("--extra-max-error", args.extra_max_error, 4),
                                ("--model", args.model, "default")):
        if value != default:
            words += [opt, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def run(args: argparse.Namespace) -> int:
    try:
        from ..tools.bench import BenchConfig, run_bench, write_outputs
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "matplotlib":
            raise ValueError("hidenet bench draws its plots with matplotlib, which is not installed: "
                             "pip install 'hidenet[bench]'") from None
        raise

    images = Path(args.images) if args.images is not None else None
    if images is not None and not images.is_dir():
        raise ValueError(
            f"{args.images!r} is not a folder of images; give a folder, or nothing for the bundled samples"
        )
    config = BenchConfig(images_dir=images, quick=args.quick, model=args.model, serving=args.serving,
                         repeats=args.repeats, threads=args.threads, max_images=args.max_images, crop=args.crop,
                         extra_max_error=args.extra_max_error)
    results = run_bench(config, progress=args.progress)
    results["meta"]["command"] = _command(args)
    paths = write_outputs(results, Path(args.out))
    mean = results["progressive"]["mean"]
    print(f"wrote {', '.join(str(p) for p in paths)}")
    lead = ", ".join(f"{kb} KB {d:+.1f} dB" if d is not None else f"{kb} KB hideNet exact" if ahead else f"{kb} KB n/a"
                     for kb, d, ahead in zip(results["progressive"]["budgets_kb"], mean["hidenet_minus_jpeg_db"],
                                             mean["hidenet_ahead"]))
    ll = results["lossless"]["mean"]
    print("lossless bpp: " + ", ".join(f"{results['lossless']['codecs'][k]['label']} {v['bpp']:.3f}"
                                        for k, v in ll.items() if v["bpp"] is not None))
    print(f"hideNet preview PSNR minus progressive JPEG (PSNR of the images' pooled squared errors): {lead}")
    print(f"total {results['meta']['seconds']['total']:.0f} s")
    return 0
