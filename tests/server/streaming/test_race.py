"""The race timelines: one frame per repaint of each contender, measured against the original at full size."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from PIL import Image

from hidenet_core import psnr
from hidenet_core.tools.contenders import CONTENDERS, BuildCancelled, parse_spec
from server.streaming.race import RaceCache, build_race
from tests.conftest import smooth_image
from tests.server.conftest import frame_pixels


def test_quality_grows_scan_by_scan():
    timeline = build_race(smooth_image(64, 80, 3), parse_spec("pjpeg:90"))
    psnrs = [f.psnr for f in timeline.frames]
    assert psnrs[-1] > psnrs[0] + 3 and timeline.frames[-1].bytes == timeline.file_bytes
    assert [f.label for f in timeline.frames][:2] == [f"scan 1 of {len(psnrs)}", f"scan 2 of {len(psnrs)}"]


@pytest.mark.parametrize("key", list(CONTENDERS))
def test_frames_are_full_size_and_transparent_where_nothing_is_painted(key):
    pixels = smooth_image(48, 40, 3, seed=4)
    timeline = build_race(pixels, parse_spec(key))
    for frame in timeline.frames:
        image = frame_pixels(frame.data)
        assert image.shape[:2] == (48, 40)
        if frame.rows < 48:  # a top-down format, part-way: RGBA, the rest transparent
            assert image.shape[2] == 4 and (image[frame.rows :, :, 3] == 0).all()
            assert (image[: frame.rows, :, 3] == 255).all()
    final = frame_pixels(timeline.frames[-1].data)
    if timeline.lossless:
        assert np.array_equal(final, pixels) and timeline.frames[-1].psnr is None


def test_grey_and_alpha_images_race_too():
    assert build_race(smooth_image(20, 24, 1), parse_spec("pjpeg")).frames[-1].psnr > 30
    rgba = smooth_image(20, 24, 4)
    assert build_race(rgba, parse_spec("pjpeg")).frames[-1].psnr > 30  # compared on RGB: JPEG has no alpha
    grey_webp = build_race(smooth_image(20, 24, 1), parse_spec("webp-lossless"))
    assert grey_webp.frames[-1].psnr is None  # sent as RGB, compared as grey: exact


@pytest.mark.asyncio
async def test_the_cache_builds_each_timeline_once_however_many_ask():
    cache, calls = RaceCache(10_000_000), []

    async def build():
        calls.append(1)
        await asyncio.sleep(0.01)
        return build_race(smooth_image(16, 16, 3), parse_spec("png"))

    first, second = await asyncio.gather(cache.get("img", "png", build), cache.get("img", "png", build))
    assert first is second and len(calls) == 1 and cache.cached("img", "png") is first
    assert cache.cached("img", "pjpeg:90") is None


def test_a_build_asked_to_stop_stops_between_repaints():
    seen = []

    def cancelled() -> bool:
        seen.append(1)
        return len(seen) > 2  # wanted for two repaints, then no more

    with pytest.raises(BuildCancelled):
        build_race(smooth_image(64, 80, 3), parse_spec("pjpeg:90"), cancelled)
    assert len(seen) == 3


@pytest.mark.asyncio
async def test_a_race_nobody_waits_for_stops_its_build_in_the_worker(monkeypatch):
    """A viewer leaves (or the server stops) while a contender's timeline is being built on a
    worker thread: the flight is cancelled and the build under way stops at its next repaint,
    instead of running for minutes on a large photograph."""
    from types import SimpleNamespace

    from server.streaming import race as race_module
    from server.worker import Worker

    started, stopped = threading.Event(), threading.Event()

    def slow_build(spec, pixels, cancelled, *measure):
        started.set()
        while not cancelled():
            time.sleep(0.01)
        stopped.set()
        raise BuildCancelled("stopped")

    monkeypatch.setattr(race_module, "build_timeline", slow_build)
    worker = Worker(1, 1)
    store = SimpleNamespace(pixels=lambda image_id: smooth_image(16, 16, 3))
    progress = SimpleNamespace(say=lambda *args: asyncio.sleep(0))
    racer = race_module.Racer(parse_spec("pjpeg:90"), 1)
    races = RaceCache(10_000_000)
    try:
        preparing = asyncio.create_task(racer.prepare(races, worker, store, SimpleNamespace(id="img"), progress))
        assert await asyncio.to_thread(started.wait, 10)
        preparing.cancel()  # its only viewer left
        assert await asyncio.to_thread(stopped.wait, 10)
        assert races.cached("img", "pjpeg:90") is None and len(races._flights) == 0
    finally:
        await asyncio.to_thread(worker.close)


@pytest.mark.asyncio
async def test_a_timeline_larger_than_the_whole_cache_is_used_but_not_kept():
    small = build_race(smooth_image(16, 16, 3), parse_spec("png"))
    cache = RaceCache(small.weight + 10)
    kept = await cache.get("a", "png", lambda: asyncio.sleep(0, small))
    big = build_race(smooth_image(64, 64, 3), parse_spec("png"))
    assert big.weight > cache.max_bytes
    assert await cache.get("b", "png", lambda: asyncio.sleep(0, big)) is big
    assert cache.cached("b", "png") is None and cache.cached("a", "png") is kept  # it evicted nothing


@pytest.mark.parametrize("key", ["pjpeg:90", "jpeg", "webp-lossless"])
def test_frames_for_a_display_are_shrunk_to_fit_and_measured_at_full_size(key):
    """A viewer showing a 40x30 picture of a 96x80 image gets each repaint shrunk to fit (a JPEG,
    a PNG where a top-down format has painted only its first rows); the quality is still the
    full-size repaint's, the same as a client asking full-size frames gets."""
    from server.streaming.frames import shown_size

    pixels = smooth_image(80, 96, 3, seed=5)
    full = build_race(pixels, parse_spec(key))
    shown = build_race(pixels, parse_spec(key), size=shown_size(80, 96, (40, 30)))
    assert [(f.psnr, f.ssim, f.rows, f.bytes) for f in shown.frames] == [(f.psnr, f.ssim, f.rows, f.bytes)
                                                                         for f in full.frames]
    for frame, whole in zip(shown.frames, full.frames, strict=True):
        assert (frame.width, frame.height) == (36, 30) and (whole.width, whole.height) == (96, 80)
        image = frame_pixels(frame.data)
        assert image.shape[:2] == (30, 36)
        if frame.rows < 80:  # painted down to a row: transparent below it, so a PNG with alpha
            assert frame.data.startswith(b"\x89PNG") and image.shape[2] == 4 and image[-1, :, 3].max() == 0
        else:
            assert frame.data.startswith(b"\xff\xd8")
            reference = np.asarray(Image.fromarray(frame_pixels(whole.data)).resize((36, 30), Image.Resampling.LANCZOS))
            assert psnr(image, reference) > 35
    assert sum(len(f.data) for f in shown.frames) < sum(len(f.data) for f in full.frames)


@pytest.mark.asyncio
async def test_the_cache_keeps_a_timeline_per_frame_size():
    cache, built = RaceCache(10_000_000), []

    async def build(size):
        built.append(size)
        return build_race(smooth_image(40, 48, 3), parse_spec("pjpeg"), size=size)

    small = await cache.get("img", "pjpeg:90", lambda: build((24, 20)), (24, 20))
    full = await cache.get("img", "pjpeg:90", lambda: build(None))
    assert await cache.get("img", "pjpeg:90", lambda: build((24, 20)), (24, 20)) is small
    assert cache.cached("img", "pjpeg:90") is full and built == [(24, 20), None]


def test_repaints_are_shrunk_to_exactly_the_box_of_hidenets_frames():
    """Fitting an image into the box it was fitted to may round a row away (20x31 in a 30x30
    stage: 19x30, fitted again 19x29); every racer's frames have the same size."""
    from server.streaming.frames import shown_size

    pixels = smooth_image(31, 20, 3, seed=2)
    box = shown_size(31, 20, (30, 30))
    assert box == (19, 30)
    timeline = build_race(pixels, parse_spec("pjpeg"), size=box)
    assert {(f.width, f.height) for f in timeline.frames} == {box}
    assert {frame_pixels(f.data).shape[:2] for f in timeline.frames} == {(30, 19)}
