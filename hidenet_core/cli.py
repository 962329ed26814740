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

#: sub-command -> module with ``HELP``, ``configure(parser)`` and ``run(args) -> int``
COMMANDS: dict[str, str] = {
    "encode": "hidenet_core.commands.encode",
    "decode": "hidenet_core.commands.decode",
    "info": "hidenet_core.commands.info",
    "demo": "hidenet_core.commands.demo",
    "train": "hidenet_core.commands.train",
    "eval": "hidenet_core.commands.evaluate",
    "bench": "hidenet_core.commands.bench",
    "serve": "server.cli",
    "fetch": "server.fetch",
}


class CliError(Exception):
    """A user error: printed as ``hidenet: error: <message>`` with exit status 2."""


def _available() -> dict[str, object]:
    mods = {}
    for name, path in COMMANDS.items():
        try:
            mods[name] = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            if exc.name != path:  # the module exists but an import inside it failed
                raise
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hidenet", description="hideNet: hierarchical learned image codec and progressive streaming server"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, mod in _available().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.configure(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .format import HdnFormatError
    from .imageio import ImageError
    from .predictors import ModelLoadError

    parser = build_parser()
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
