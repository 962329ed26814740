"""The ``hidenet`` command line: one sub-command per module, each with ``configure`` and ``run``.

``main(argv)`` is the testable entry point: user errors print one line
``hidenet: error: ...`` on stderr and return a non-zero status, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main", "CliError", "COMMANDS"]

#: sub-command -> (module with ``configure(parser)`` and ``run(args) -> int``, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "encode": ("hidenet_core.commands.encode", "encode an image into a progressive .hdn stream"),
    "decode": ("hidenet_core.commands.decode", "decode a .hdn stream (or any prefix of it) into a PNG"),
    "info": ("hidenet_core.commands.info", "show the header and per-level chunk sizes of a .hdn stream"),
    "demo": ("hidenet_core.commands.demo", "encode and decode the bundled samples; print sizes and timings"),
    "train": ("hidenet_core.commands.train", "train a learned predictor"),
    "eval": ("hidenet_core.commands.evaluate", "evaluate a predictor per level against bicubic interpolation"),
    "bench": ("hidenet_core.commands.bench", "benchmark hideNet against PNG, WebP, JPEG 2000, JPEG-LS, JPEG XL"),
    "serve": ("server.cli", "run the progressive streaming server and web viewer"),
    "fetch": ("server.fetch", "stream an image from a running server and print the timeline"),
}


class CliError(Exception):
    """A user error: printed as ``hidenet: error: <message>`` with exit status 2."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported and configured (fast start-up)."""
    parser = argparse.ArgumentParser(
        prog="hidenet", description="hideNet: hierarchical learned image codec and progressive streaming server"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            mod = importlib.import_module(module)
            mod.configure(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .format import HdnFormatError
    from .imageio import ImageError
    from .predictors import ModelLoadError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (CliError, HdnFormatError, ImageError, ModelLoadError, ValueError) as exc:
        print(f"hidenet: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        print(f"hidenet: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hidenet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
