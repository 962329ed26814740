"""The ``hidenet`` command line: one sub-command per module, each with ``HELP``, ``configure`` and ``run``.

Sub-commands are found through the ``hidenet.commands`` entry-point group (pyproject.toml):
the core's own and the server's (``serve``, ``fetch``) alike, so the core imports nothing
from the server. ``main(argv)`` is the testable entry point: user errors print one line
``hidenet: error: ...`` on stderr and return a non-zero status, never a traceback. A reader
that stops early (``hidenet info --json | head``) ends the command quietly, as it ends a Unix
tool: no message, status 141 (128 + SIGPIPE, the status a shell reports for such a tool).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

__all__ = ["main", "CliError", "GROUP", "EXIT_BROKEN_PIPE", "commands"]

#: the entry-point group of sub-commands: name -> module with ``HELP``, ``configure(parser)`` and ``run(args) -> int``
GROUP = "hidenet.commands"
#: commands that keep glibc's default allocator (a server's peak memory is a target; memory.py)
_GLIBC_DEFAULT = frozenset({"serve"})
#: the exit status when the reader of stdout has gone: 128 + SIGPIPE, as a shell reports for ``cat big | head``
EXIT_BROKEN_PIPE = 141


class CliError(Exception):
    """A user error: printed as ``hidenet: error: <message>`` with exit status 2."""


def commands() -> dict[str, str]:
    """Sub-command name -> its module, sorted by name."""
    return {ep.name: ep.value for ep in sorted(entry_points(group=GROUP), key=lambda ep: ep.name)}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser. Given a known ``command``, only its module is imported (fast start-up);
    otherwise every module is, for the list of commands."""
    parser = argparse.ArgumentParser(
        prog="hidenet", description="hideNet: hierarchical learned image codec and progressive streaming server"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    found = commands()
    for name, module in found.items():
        if command in found and name != command:
            sub.add_parser(name)
            continue
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.configure(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .codec.container import HdnFormatError
    from .imageio import ImageError
    from .predictors import ModelLoadError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in _GLIBC_DEFAULT:
        from .memory import fast_allocator

        fast_allocator()
    try:
        parser = build_parser(argv[0] if argv else None)
        args = parser.parse_args(argv)
        return int(args._run(args) or 0)
    except BrokenPipeError:  # before OSError: the reader of our output stopped reading
        _silence_stdout()
        return EXIT_BROKEN_PIPE
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


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush of what is still
    buffered does not fail a second time (and print "Exception ignored ...")."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture): nothing to flush
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
