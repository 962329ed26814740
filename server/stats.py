"""Counters for ``/api/stats`` and the server's own memory use (for the load test)."""

from __future__ import annotations

import resource
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["ServerStats", "memory_bytes"]


def memory_bytes() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process in bytes."""
    rss = peak = 0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    except OSError:  # not Linux: the peak from getrusage (kB on Linux, bytes on macOS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return rss, max(peak, rss)


@dataclass
class ServerStats:
    """What the server has done since it started."""

    streams_running: int = 0
    streams_started: int = 0
    streams_completed: int = 0
    streams_cancelled: int = 0
    streams_failed: int = 0
    streams_refused: int = 0  # start messages answered "busy"
    sockets_refused: int = 0  # handshakes refused for too many open sockets
    cache_hits: int = 0
    cache_misses: int = 0
    cache_corrupt: int = 0  # cache files that failed their check and were re-encoded
    encodes_cancelled: int = 0  # encodes stopped because nobody waited for them any more
    encodes_refused: int = 0  # first views answered "busy": every encode slot was taken
    frame_hits: int = 0
    frame_misses: int = 0
    frames_superseded: int = 0  # chunks of a viewer's stream whose frame a later chunk's stood in for
    regions_decoding: int = 0  # 1:1 regions being answered by decoding the stream (``max_region_decodes``)
    regions_refused: int = 0  # 1:1 regions answered "region_busy": every region decode slot was taken

    def to_json(self) -> dict:
        rss, peak = memory_bytes()
        return {**asdict(self), "rss_bytes": rss, "peak_rss_bytes": peak}
