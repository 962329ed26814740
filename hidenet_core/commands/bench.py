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
    p.add_argument("--scaling", action="store_true",
                   help="run only the Scaling section: hideNet at each effort against JPEG XL e7 and WebP "
                        "lossless at 0.4 to 40 MP, time and peak memory, each run in a process of its own "
                        "(hours at 40 MP; docs/bench.md)")
    p.add_argument("--scaling-images", default=None, metavar="DIR",
                   help="photographs to cut the scaling sizes from (default: the bundled samples, scaled up)")
    p.add_argument("--scaling-sizes", type=_floats, default=None, metavar="MP,MP,...",
                   help="the sizes in megapixels (default 0.4,1,3,12,40)")
    p.add_argument("--scaling-efforts", type=_ints, default=None, metavar="E,E,...",
                   help="hideNet's efforts to measure (default: every one)")
    p.add_argument("--scaling-contenders", type=_names, default=None, metavar="NAME,...",
                   help="jpegxl and/or webp (default both; 'none' for neither)")
    p.add_argument("--scaling-timeout", type=int_range(10, 86_400), default=3600, metavar="S",
                   help="give up on one encode or decode after S seconds (default 3600)")
    add_model_option(p)


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes in MP like 0.4,1,3, got {text!r}") from None
    if not values or any(not 0.001 <= v <= 40 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be in 0.001..40 MP, got {text!r}")
    return values


def _ints(text: str) -> tuple[int, ...]:
    from ..codec.encoder import EFFORTS

    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected efforts like 1,4, got {text!r}") from None
    if any(v not in EFFORTS for v in values):
        raise argparse.ArgumentTypeError(f"efforts are {min(EFFORTS)}..{max(EFFORTS)}, got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    from ..tools.bench.scaling import CONTENDERS

    if text == "none":
        return ()
    values = tuple(text.split(","))
    if any(v not in CONTENDERS for v in values):
        raise argparse.ArgumentTypeError(f"contenders are {', '.join(CONTENDERS)} (or none), got {text!r}")
    return values


def _scaling_command(args: argparse.Namespace) -> str:
    words = ["hidenet", "bench", "--scaling", "--out", args.out]
    if args.scaling_images is not None:
        words += ["--scaling-images", args.scaling_images]
    if args.scaling_sizes is not None:
        words += ["--scaling-sizes", ",".join(f"{v:g}" for v in args.scaling_sizes)]
    if args.scaling_efforts is not None:
        words += ["--scaling-efforts", ",".join(map(str, args.scaling_efforts))]
    if args.scaling_contenders is not None:
        words += ["--scaling-contenders", ",".join(args.scaling_contenders) or "none"]
    for opt, value, default in (("--threads", args.threads, 1), ("--scaling-timeout", args.scaling_timeout, 3600),
                                ("--model", args.model, "default")):
        if value != default:
            words += [opt, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def _run_scaling(args: argparse.Namespace) -> int:
    import json

    from ..imageio import image_files
    from ..samples import sample_paths
    from ..tools.bench.scaling import CONTENDERS, SIZES_MP, run_scaling, scaling_markdown
    from ..tools.bench.timing import machine_info

    if args.scaling_images is not None and not Path(args.scaling_images).is_dir():
        raise ValueError(f"--scaling-images {args.scaling_images!r} is not a folder")
    paths = sample_paths() if args.scaling_images is None else image_files(Path(args.scaling_images))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    def write(results: dict) -> str:
        results["machine"] = machine_info()
        results["command"] = _scaling_command(args)
        (out / "scaling.json").write_text(json.dumps(results, indent=1) + "\n")
        text = f"## Scaling\n\n`{results['command']}`\n\n" + scaling_markdown(results)
        (out / "scaling.md").write_text(text)
        return text

    results = run_scaling(paths, out / "scaling-work", args.scaling_sizes or SIZES_MP, args.scaling_efforts,
                          tuple(CONTENDERS) if args.scaling_contenders is None else args.scaling_contenders,
                          args.model, args.threads, args.scaling_timeout, on_row=write)
    print(write(results))
    print(f"wrote {out / 'scaling.json'}, {out / 'scaling.md'}")
    return 0


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
    if args.scaling:
        return _run_scaling(args)
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
