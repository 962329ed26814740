"""The server freezes what start-up loaded, so that a full collection never walks it again."""

from __future__ import annotations

import gc

import pytest

from server import collector, create_app

pytestmark = pytest.mark.asyncio


async def test_start_up_is_collected_and_frozen_once_per_process(aiohttp_client, config, clock, monkeypatch):
    monkeypatch.setattr(collector, "_frozen", False)
    gc.unfreeze()
    before = gc.get_freeze_count()
    try:
        client = await aiohttp_client(create_app(config, clock=clock))
        assert (await client.get("/api/images")).status == 200
        frozen = gc.get_freeze_count()
        assert frozen > before and frozen > 10_000  # torch, numpy, the model, the app: all of it
        assert collector.freeze_start_up() is False  # once per process: a second app freezes nothing more
        await aiohttp_client(create_app(config, clock=clock))
        assert gc.get_freeze_count() <= frozen  # (frozen objects freed since are no longer counted)
    finally:
        gc.unfreeze()  # the other tests' objects stay collectable
