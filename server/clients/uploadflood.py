"""Upload flood: many large uploads sent at once, and what they cost the server's memory.

``python -m server.clients.uploadflood N MB [--clients]`` starts a real ``hidenet serve`` on
a free loopback port and sends N uploads of MB megabytes of random bytes at once (not
images: each is refused with 415 once decoded, the worst case, since every one is read
whole). With ``--clients`` each comes from a client of its own (the server trusts this
machine as a proxy and each upload names its client in ``X-Forwarded-For``), else all from
one client. It prints the answers' status codes and the server's peak memory
(``/api/stats``: ``peak_rss_bytes``). README, "Security notes", quotes it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from .process import start_server, stop_server

__all__ = ["flood", "main"]


async def _upload(session: aiohttp.ClientSession, url: str, data: bytes, i: int, own_client: bool) -> int:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=f"flood-{i}.png", content_type="image/png")
    headers = {"X-Forwarded-For": f"198.51.{100 + i // 250}.{i % 250 + 1}"} if own_client else {}
    async with session.post(f"{url}/api/images", data=form, headers=headers) as response:
        await response.read()
        return response.status


async def flood(url: str, uploads: int, megabytes: float, own_clients: bool) -> dict:
    """Send the uploads at once to the server at ``url``; the status counts, the time and its peak memory."""
    data = os.urandom(int(megabytes * 1024 * 1024))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
        t0 = time.perf_counter()
        statuses = await asyncio.gather(*(_upload(session, url, data, i, own_clients) for i in range(uploads)))
        seconds = time.perf_counter() - t0
        async with session.get(f"{url}/api/stats") as response:
            stats = await response.json()
    return {"statuses": dict(sorted(collections.Counter(statuses).items())), "seconds": round(seconds, 1),
            "peak_rss_bytes": stats["peak_rss_bytes"]}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m server.clients.uploadflood", description=__doc__.split("\n\n")[0])
    p.add_argument("uploads", type=int, help="how many uploads to send at once")
    p.add_argument("megabytes", type=float, help="the size of each, in MB")
    p.add_argument("--clients", action="store_true", help="each upload from a client of its own (else all from one)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hidenet-uploadflood-") as tmp:
        extra = ["--forwarded-allow-ips", "127.0.0.1"] if args.clients else []
        server = start_server(Path(tmp) / "data", "interp", extra=extra)
        try:
            result = asyncio.run(flood(server.url, args.uploads, args.megabytes, args.clients))
        finally:
            stop_server(server)
    who = f"{args.uploads} clients" if args.clients else "one client"
    print(f"{args.uploads} uploads of {args.megabytes:g} MB at once from {who}: answers {result['statuses']} in "
          f"{result['seconds']} s; server peak memory {result['peak_rss_bytes'] / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
