"""The process's open-file limit: every connection, also one that never finishes its request, holds a
descriptor until the server drops it (aiohttp: after about 90 s), so a low soft limit is a cap that
anyone can fill.

Linux starts many processes with a soft limit of 1024 under a hard limit a thousand times higher:
on such a machine 1,000 connections that send half a request and wait (a "slowloris") left the
server unable to accept anyone else, from a single client, a few connections a second. The server
raises its soft limit toward ``WANTED`` at start (never past the hard limit, which only the
administrator can raise). A public deployment still belongs behind the README's nginx, which
limits connections per client and header time (``limit_conn``, ``client_header_timeout``).
"""

from __future__ import annotations

import logging

__all__ = ["WANTED", "raise_open_files"]

log = logging.getLogger(__name__)

#: the soft limit on open files the server asks for (a connection each, plus files and pipes)
WANTED = 65536


def raise_open_files(wanted: int = WANTED) -> tuple[int, int]:
    """Raise this process's soft limit on open files to ``wanted``, or to the hard limit if that is
    lower; never lower it. Returns the soft limit (before, after); both the same where the
    platform has no such limit."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return (0, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return (soft, soft)
    error: Exception | None = None
    while target > soft:  # a kernel may cap it below the hard limit (macOS: kern.maxfilesperproc): halve
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            error, target = exc, max(soft, target // 2)
            continue
        log.info("open-file limit raised from %d to %d", soft, target)
        return (soft, target)
    log.warning("could not raise the open-file limit from %d: %s", soft, error)  # a sandbox may refuse
    return (soft, soft)
