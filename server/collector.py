"""Python's garbage collector and the event loop: a full collection scans only what came after start-up.

A full (generation 2) collection walks every container object alive: in a server process,
torch's and numpy's modules, the model and the caches' structures, loaded once and alive for
the process's life. It runs on whichever thread allocates when the threshold is crossed, often
the event loop, and stalls every stream meanwhile: measured 100 to 120 ms per collection after
start-up (``gc.callbacks``), which was the whole first level's wait of a burst of 32 viewers
(146 to 215 ms at p50 on a fresh server, 27 to 46 ms once that collection had happened). So once
the server has started (model, warm-up, stores), what is alive is collected once and then
frozen (``gc.freeze``: moved to a permanent generation that collections skip); later garbage is
collected as always.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_start_up"]

_frozen = False


def freeze_start_up() -> bool:
    """Collect, then freeze what is alive; once per process (a second app in the same process, as in
    the tests, freezes nothing more). Whether it froze now."""
    global _frozen
    if _frozen:
        return False
    gc.collect()
    gc.freeze()
    _frozen = True
    return True
