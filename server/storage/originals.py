"""The PNG of each served image's original pixels: made once, shared, kept while there is room."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .lru import LRU
from .singleflight import SingleFlight

__all__ = ["OriginalPNGs"]


class OriginalPNGs:
    """``original.png`` of the images the server was started with (an upload's is its stored
    file, served as it is): a PNG made from the pixels on a worker thread, seconds for a
    photograph of several megapixels. Concurrent requests for one image share one encode and
    the result is kept (least recently used first out beyond ``max_bytes``): eight clients
    asking for a 3 MP photograph's original over and over held both worker threads with eight
    encodes at a time, and other viewers' frames waited for them."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._kept = LRU(max_bytes, weigh=len)
        self._flights: SingleFlight[bytes] = SingleFlight()

    async def get(self, image_id: str, make: Callable[[], Awaitable[bytes]]) -> bytes:
        """The PNG of ``image_id``: kept, being made for another request, or made now by ``make()``
        (cancelled if every request waiting for it leaves)."""
        body = self._kept.get(image_id)
        if body is not None:
            return body

        async def fill() -> bytes:
            made = await make()
            if len(made) <= self._max_bytes:  # one larger than the bound is served, not kept
                self._kept.put(image_id, made)
            return made

        return await self._flights.run(image_id, fill)

    async def close(self) -> None:
        """Stop the encodes still waiting for a worker thread."""
        await self._flights.close()
