"""A small thread-safe least-recently-used map, bounded by the total weight of its values."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["LRU"]


class LRU:
    """A least-recently-used map, bounded by the total weight of its values (default: their count)."""

    def __init__(self, capacity: int, weigh: Callable[[object], int] = lambda value: 1) -> None:
        self._capacity = capacity
        self._weigh = weigh
        self._weight = 0
        self._data: OrderedDict[object, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: object) -> object | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            self._data.move_to_end(key)
            return item[0]

    def put(self, key: object, value: object) -> None:
        weight = self._weigh(value)
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._weight -= old[1]
            self._data[key] = (value, weight)
            self._weight += weight
            while self._weight > self._capacity and len(self._data) > 1:
                _, (_, w) = self._data.popitem(last=False)
                self._weight -= w

    def discard(self, key: object) -> None:
        """Drop a key if it is there."""
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._weight -= old[1]
