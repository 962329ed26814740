"""Argument types shared by the sub-commands: range-checked, with clear messages."""

from __future__ import annotations

import argparse

from ..codec.container import MAX_ERROR, MAX_LEVELS, MAX_SIDE

__all__ = ["int_range", "max_error_list", "layers_arg", "level_arg", "max_error_arg", "add_files", "add_model_option",
           "size_arg", "progress_bar"]


def int_range(lo: int, hi: int):
    """An argparse type accepting integers in lo..hi."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside {lo}..{hi}")
        return value

    return parse


def max_error_list(text: str) -> int | tuple[int, ...]:
    """``D`` or ``D0,D1,...,DL`` (one per level, level 0 = full image first)."""
    parts = text.split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer or a comma-separated list of integers") from None
    if any(not 0 <= v <= MAX_ERROR for v in values):
        raise argparse.ArgumentTypeError(f"max-error values must be in 0..{MAX_ERROR}, got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def layers_arg(text: str) -> tuple[int | tuple[int, ...], ...]:
    """``D/D/...`` or ``D0,D1,.../...``: the max errors of the layers before the last one, each
    one value or one per level (level 0 first), the first layer first."""
    return tuple(max_error_list(part) for part in text.split("/"))


def progress_bar(total: int, desc: str):
    """A progress bar on stderr when it is a terminal (stdout stays clean for --json and pipes)."""
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="chunk", file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=not sys.stderr.isatty())


#: a level index or count: 0..MAX_LEVELS
level_arg = int_range(0, MAX_LEVELS)
#: a single max error d: 0..MAX_ERROR
max_error_arg = int_range(0, MAX_ERROR)


def size_arg(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (e.g. 768x512) as (width, height), each 1..MAX_SIDE."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size WIDTHxHEIGHT, e.g. 768x512") from None
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise argparse.ArgumentTypeError(f"crop size {text!r} is outside 1..{MAX_SIDE} per side")
    return w, h


def add_files(parser: argparse.ArgumentParser, input_help: str, output_help: str) -> None:
    """The two positional arguments of a conversion: the file read and the file written."""
    parser.add_argument("input", help=input_help)
    parser.add_argument("output", help=output_help)


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="default",
        metavar="NAME_OR_PATH",
        help="predictor: 'default' (the shipped weights), 'interp' (non-learned) or a checkpoint path",
    )
