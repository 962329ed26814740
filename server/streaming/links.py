"""Simulated network links: the published presets, custom links, and the arrival schedule.

The schedule (docs/protocol.md, "Link schedule"): the request leaves at t = 0; the
first byte of the response arrives one round trip later; from then on bytes arrive at
the link's downstream rate. A piece of the stream is released when its *last* byte has
arrived::

    arrival_ms(n bytes) = rtt_ms + n * 8 / down_kbps        (kbps = 1000 bit/s)

``unlimited`` has no latency and no rate limit: every byte arrives at t = 0.

A stream that is still being encoded cannot send bytes before they exist: ``LinkSchedule``
delays the ideal schedule by as much as the encoder is late. A chunk made at ``made_ms``
whose first byte is byte ``start`` arrives no sooner than ``made_ms + rtt_ms + its size *
8 / down_kbps``, and never before the chunk ahead of it; for a stream read from the cache
(every chunk made at t <= 0) the schedule is exactly ``arrival_ms``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

__all__ = ["Link", "LinkError", "PRESETS", "UNLIMITED", "parse_link", "arrival_ms", "LinkSchedule", "presets_json",
           "CUSTOM_LIMITS"]

WEBPAGETEST = "WebPageTest"
DEVTOOLS = "Chrome DevTools"

#: allowed ranges of a custom link
CUSTOM_LIMITS = {"down_kbps": (1.0, 10_000_000.0), "rtt_ms": (0.0, 60_000.0)}


class LinkError(ValueError):
    """A link that is neither a preset id nor a valid custom link; the message says why."""


@dataclass(frozen=True)
class Link:
    """A simulated downstream link."""

    id: str  # preset id, or "custom"
    name: str  # display name
    down_kbps: float | None  # downstream rate in kbit/s (1000 bit/s); None: unlimited
    rtt_ms: float  # round-trip time in ms
    source: str | None  # where the numbers come from ("WebPageTest", "Chrome DevTools"), None if ours

    def to_json(self) -> dict:
        return asdict(self)


UNLIMITED = Link("unlimited", "Unlimited", None, 0.0, None)

PRESETS: dict[str, Link] = {
    link.id: link
    for link in (
        Link("2g", "2G", 280, 800, WEBPAGETEST),
        Link("3g-slow", "3G Slow", 400, 400, WEBPAGETEST),
        Link("3g", "3G", 1600, 300, WEBPAGETEST),
        Link("4g", "4G", 9000, 170, WEBPAGETEST),
        Link("dsl", "DSL", 1500, 50, WEBPAGETEST),
        Link("cable", "Cable", 5000, 28, WEBPAGETEST),
        Link("devtools-3g", "3G (DevTools)", 400, 2000, DEVTOOLS),
        Link("devtools-slow-4g", "Slow 4G (DevTools)", 1440, 562.5, DEVTOOLS),
        Link("devtools-fast-4g", "Fast 4G (DevTools)", 8100, 165, DEVTOOLS),
        UNLIMITED,
    )
}


def presets_json() -> list[dict]:
    """Every preset as JSON, in menu order (``/api/links`` and the viewer's link menu)."""
    return [link.to_json() for link in PRESETS.values()]


def _number(value: object, key: str) -> float:
    lo, hi = CUSTOM_LIMITS[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LinkError(f"custom link {key} must be a number in {lo:g}..{hi:g}, got {value!r}")
    if not lo <= value <= hi:
        raise LinkError(f"custom link {key} {value!r} is outside {lo:g}..{hi:g}")
    return float(value)


def parse_link(value: object) -> Link:
    """A preset id (``"3g"``) or a custom ``{"down_kbps": N, "rtt_ms": N}``."""
    if isinstance(value, str):
        try:
            return PRESETS[value]
        except KeyError:
            raise LinkError(
                f"unknown link {value!r}; use one of {sorted(PRESETS)} or {{\"down_kbps\", \"rtt_ms\"}}"
            ) from None
    if isinstance(value, Mapping):
        extra = set(value) - set(CUSTOM_LIMITS)
        if extra or set(value) != set(CUSTOM_LIMITS):
            raise LinkError(f"a custom link has exactly the keys down_kbps and rtt_ms, got {sorted(value)}")
        down, rtt = _number(value["down_kbps"], "down_kbps"), _number(value["rtt_ms"], "rtt_ms")
        return Link("custom", f"Custom {down:g} kbit/s, {rtt:g} ms", down, rtt, None)
    raise LinkError(f"link must be a preset id or an object {{\"down_kbps\", \"rtt_ms\"}}, got {value!r}")


def arrival_ms(link: Link, nbytes: int) -> float:
    """When the last of the first ``nbytes`` bytes of a response has arrived, in ms after the request."""
    if link.down_kbps is None:
        return 0.0
    return link.rtt_ms + nbytes * 8.0 / link.down_kbps


@dataclass
class LinkSchedule:
    """When each chunk of a stream arrives, the chunks being made over time (a live encode).

    ``delay_ms`` is how far the link lags its ideal schedule because a chunk was not made
    yet when the link could have sent it; it only grows, as on a real link.
    """

    link: Link
    delay_ms: float = 0.0

    def arrive(self, start: int, end: int, made_ms: float) -> float:
        """The arrival (ms after t = 0) of the bytes ``start``..``end`` of the response, made at ``made_ms``."""
        rate = 0.0 if self.link.down_kbps is None else 8.0 / self.link.down_kbps
        # made_ms + rtt + (end - start) * rate - arrival_ms(end) simplifies to made_ms - start * rate
        self.delay_ms = max(self.delay_ms, made_ms - start * rate)
        return arrival_ms(self.link, end) + self.delay_ms
