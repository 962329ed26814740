"""``hidenet serve``: the streaming server with the bundled samples and the default model."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from aiohttp import web

from hidenet_core.cli import CliError
from hidenet_core.codec.encoder import DEFAULT_EFFORT
from hidenet_core.commands.options import add_model_option, int_range

from .config import ServerConfig, default_data_dir
from .peers import ANY_PROXY, normalized

HELP = "serve the gallery, the viewer and the streaming API (http://127.0.0.1:8080/ by default)"


def address_list(text: str) -> tuple[str, ...]:
    """``--forwarded-allow-ips``: IP addresses, comma-separated, or '*'."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected IP addresses separated by commas, or '*'")
    out = []
    for item in items:
        if item == ANY_PROXY:
            out.append(item)
            continue
        address = normalized(item)
        if address is None:
            raise argparse.ArgumentTypeError(f"{item!r} is not an IP address (give addresses, not names or "
                                             "networks, separated by commas; or '*')")
        out.append(address)
    return tuple(out)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int_range(0, 65535), default=8080, help="TCP port (default 8080; 0 picks a free one)")
    p.add_argument("--images", type=Path, default=None, metavar="DIR",
                   help="serve the images in DIR instead of the bundled sample photographs")
    p.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                   help=f"where uploads and the stream cache are kept (default {default_data_dir()})")
    p.add_argument("--max-streams", type=int_range(1, 10_000), default=48, metavar="N",
                   help="streams running at once; more are answered 'busy' (default 48)")
    p.add_argument("--max-client-streams", type=int_range(1, 10_000), default=8, metavar="N",
                   help="streams one client (address) runs at once; more are answered 'busy' (default 8)")
    p.add_argument("--max-client-encodes", type=int_range(1, 64), default=1, metavar="N",
                   help="new streams one client (address) has encoded at once, by first views and downloads; "
                        "more are answered 'busy' (default 1; --max-encodes is the whole process's)")
    p.add_argument("--max-client-uploads", type=int_range(1, 1000), default=2, metavar="N",
                   help="uploads one client (address) sends at once; more are refused with 429 (default 2)")
    p.add_argument("--max-region-decodes", type=int_range(1, 64), default=1, metavar="N",
                   help="1:1 regions answered at once by decoding a stream (a generative or unfinished stream's "
                        "exact pixels: seconds to a minute for a large photo); more are answered 'region_busy' "
                        "and the viewer asks again; keep it below --workers (default 1)")
    p.add_argument("--max-client-region-decodes", type=int_range(1, 64), default=1, metavar="N",
                   help="of those, what one client (address) may have at once (default 1)")
    p.add_argument("--max-client-sockets", type=int_range(1, 10_000), default=32, metavar="N",
                   help="websockets one client (address) keeps open; more are refused with 429 (default 32)")
    p.add_argument("--forwarded-allow-ips", type=address_list, default=(), metavar="IPS",
                   help="comma-separated addresses of the proxies in front (e.g. 127.0.0.1 for a local nginx): "
                        "a request from one of them is counted for the client its X-Forwarded-For names; '*' "
                        "trusts every peer (only where nobody can reach the server but through the proxy)")
    p.add_argument("--workers", type=int_range(1, 64), default=2, metavar="N",
                   help="decoder threads (default 2)")
    p.add_argument("--max-encodes", type=int_range(1, 64), default=2, metavar="N",
                   help="streams encoded at once, each on a thread of its own; a first view that would start "
                        "one more is answered 'busy' (default 2)")
    p.add_argument("--cache-mb", type=int_range(1, 10_000_000), default=4096, metavar="MB",
                   help="disk space for encoded streams; the least recently used go first (default 4096)")
    p.add_argument("--effort", type=int_range(1, 5), default=DEFAULT_EFFORT, metavar="E",
                   help=f"encoder effort 1 (fastest) to 5 (smallest), as hidenet encode --effort "
                        f"(default {DEFAULT_EFFORT})")
    p.add_argument("--no-encode-uploads", dest="encode_uploads", action="store_false",
                   help="do not start encoding an upload as soon as it is stored (its first view encodes it)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="also accept websockets from this origin (e.g. http://localhost:3000); repeatable")
    p.add_argument("--processes", type=int_range(1, 64), default=None, metavar="N",
                   help="run N server processes on the port under gunicorn, sharing --data-dir; a process "
                        "that dies is replaced (default: one process, no gunicorn)")
    add_model_option(p)


def build_config(args: argparse.Namespace) -> ServerConfig:
    if args.images is not None and not args.images.is_dir():
        raise CliError(f"--images {str(args.images)!r} is not a directory")
    data_dir = args.data_dir or default_data_dir()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create the data directory {str(data_dir)!r}: {exc.strerror or exc}") from None
    return ServerConfig(
        host=args.host, port=args.port, model=args.model, data_dir=data_dir, images_dir=args.images,
        max_streams=args.max_streams, workers=args.workers, allowed_origins=tuple(args.allow_origin),
        max_client_streams=args.max_client_streams, max_client_sockets=args.max_client_sockets,
        max_client_encodes=args.max_client_encodes, max_client_uploads=args.max_client_uploads,
        max_region_decodes=args.max_region_decodes, max_client_region_decodes=args.max_client_region_decodes,
        forwarded_allow_ips=args.forwarded_allow_ips,
        max_encodes=args.max_encodes, cache_mb=args.cache_mb, effort=args.effort, encode_uploads=args.encode_uploads,
    )


def _check_model_name(model: str) -> None:
    """A cheap check of --model before gunicorn forks (the workers load it: torch must not start
    its threads in the parent of a fork)."""
    from hidenet_core.predictors import model_names

    if model not in model_names() and not Path(model).is_file():
        raise CliError(f"unknown model {model!r}: use one of {model_names()} or a checkpoint file")


def run(args: argparse.Namespace) -> int:
    from hidenet_core import load_model

    from .app import create_app

    config = build_config(args)
    if args.processes is not None:
        from .processes import serve_processes

        _check_model_name(config.model)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        print(f"hideNet: {args.processes} processes under gunicorn, model {config.model!r}, data in "
              f"{config.data_dir}, on http://{config.host}:{config.port}/", file=sys.stderr, flush=True)
        return serve_processes(config, args.processes)
    model = load_model(config.model)  # a bad --model is a clean error before anything starts
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    app = create_app(config, model=model)

    def announce(text: str) -> None:
        print(f"hideNet: model {model.name!r}, data in {config.data_dir}", file=sys.stderr)
        print(text.replace("(Press CTRL+C to quit)", "(Ctrl+C to stop)"), file=sys.stderr, flush=True)

    web.run_app(app, host=config.host, port=config.port, print=announce, shutdown_timeout=5.0,
                handle_signals=True)
    return 0
