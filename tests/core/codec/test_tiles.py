"""The predictor run in tiles of rows (``loop._tiled``) gives exactly what one run over the
window gives: bounded memory changes no prediction, so no stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hidenet_core import EncodeSettings, decode, encode, load_model
from hidenet_core.codec import loop
from hidenet_core.codec.pyramid import split
from hidenet_core.predictors import build
from tests.conftest import smooth_image


def _models():
    torch.manual_seed(0)
    unet, cnnp = build("UNetLikeLite"), build("CNNP", kernels=[1, 3, 7], blocks=3)
    for model in (unet, cnnp):  # random heads: a zero head would hide the trunk
        for p in model.parameters():
            p.data.normal_(0, 0.3)
    return {"interp": load_model("interp"), "default": load_model("default"), "unet": unet.eval(),
            "cnnp-wide": cnnp.eval()}


MODELS = _models()


@pytest.mark.parametrize("channels", [3, 1, 4])
@pytest.mark.parametrize("name", list(MODELS))
def test_tiles_give_what_one_run_gives(name, channels, monkeypatch):
    model = MODELS[name]
    image = smooth_image(230, 90, channels, seed=3).transpose(2, 0, 1)
    even, odd = split(image)  # (C, 115, 45), (3C, 115, 45): every odd value known (any step)
    h = even.shape[1]
    with torch.no_grad():
        for step in range(len(model.steps(channels))):
            whole = loop._tiled(model, even, odd, step, 0, 3, h, loop.Memos())
            monkeypatch.setattr(loop, "TILE_POSITIONS", 40 * even.shape[2])  # tiles of 40 rows
            assert loop.tile_rows(h - 3, even.shape[2]) == 40
            tiled = loop._tiled(model, even, odd, step, 0, 3, h, loop.Memos())
            monkeypatch.undo()
            same = torch.equal(whole.mean, tiled.mean) and torch.equal(whole.scale, tiled.scale)
            if not same and name == "unet":
                pytest.xfail("on this CPU the float32 kernels of the U-Net's strided and transposed convolutions sum "
                             "in an order that depends on the tile's height (docs/format.md, 'Streams and "
                             "machines'); UNetLikeLite is not a shipped model")
            assert same, (name, step)
            assert (whole.context is None) == (tiled.context is None)
            if whole.context is not None:
                assert torch.equal(whole.context, tiled.context), (name, step)


def test_streams_do_not_depend_on_the_tiles(monkeypatch):
    model = load_model("default")
    image = smooth_image(150, 140, 3, seed=5)
    settings = EncodeSettings(max_error=(0, 1, 0, 0))
    data = encode(image, model, settings)
    monkeypatch.setattr(loop, "TILE_POSITIONS", 32 * 70)  # level 0's 75 x 70 grid in tiles of 32 rows
    assert encode(image, model, settings) == data
    decoded = decode(data, model)[-1].image  # with the tiles: every chunk's CRC is checked
    assert np.abs(decoded.astype(int) - image).max() <= 1


@pytest.mark.parametrize("limit", [0, 48 * 70])
def test_streams_do_not_depend_on_the_memo_limit(limit, monkeypatch):
    """Windows beyond the memos' limit run without one (none at all, or the first tile's
    only): the same predictions, so the same stream, decoded the same."""
    model = load_model("default")
    image = smooth_image(150, 140, 3, seed=5)
    settings = EncodeSettings(max_error=(0, 1, 0, 0))
    monkeypatch.setattr(loop, "TILE_POSITIONS", 32 * 70)  # level 0's 75 x 70 grid in tiles of 32 rows
    data = encode(image, model, settings)
    monkeypatch.setattr(loop, "MEMO_POSITIONS", limit)
    memos = loop.Memos()
    assert memos.get((0, 48), 70) == ({} if limit else None) and memos.get((16, 64), 70) is None
    assert encode(image, model, settings) == data
    decoded = decode(data, model)[-1].image  # every chunk's CRC is checked
    assert np.abs(decoded.astype(int) - image).max() <= 1


@pytest.mark.parametrize("channels", [3, 4])
def test_the_memo_of_earlier_steps_changes_no_input(channels):
    """``step_inputs`` with the memo (each step's interpolation kept for later steps) builds the
    same network inputs as without it."""
    from hidenet_core.predictors.features import step_inputs, view_plan, view_tensors

    image = torch.from_numpy(smooth_image(60, 50, channels, seed=1).transpose(2, 0, 1).copy()).float()
    even, odd = split(image[None])
    memo: dict = {}
    for step, tasks in enumerate(view_plan(channels)):
        for task in tasks:
            e, o = view_tensors(even, odd, task.colours)
            with_memo = step_inputs(e, o, task.rgb_step, memo.setdefault(task.colours, {}))
            plain = step_inputs(e, o, task.rgb_step)
            assert torch.equal(with_memo.x, plain.x), step
            assert torch.equal(with_memo.mean, plain.mean) and torch.equal(with_memo.scale, plain.scale)


def test_a_decoder_without_images_gives_the_same_result():
    from hidenet_core.codec.decoder import decode_until

    model = load_model("interp")
    image = smooth_image(70, 90, 3, seed=2)
    data = encode(image, model)
    plain = decode_until(data, model, images=False)
    assert all(level.image.size == 0 for level in plain.levels)
    assert np.array_equal(plain.current_image(), image)
    partial = data[: decode_until(data, model).levels[-3].bytes_consumed]
    assert np.array_equal(decode_until(partial, model, images=False).current_image(),
                          decode_until(partial, model).levels[-1].image)


@pytest.mark.parametrize("name", ["interp", "default", "cnnp-wide"])
def test_a_predictor_reads_exactly_its_context_rows(name):
    """``context_rows`` (the tiles' halo, rounded up to even) is the rows a prediction reads:
    a change on one row moves predictions that many rows above and below it, no further."""
    from hidenet_core.codec.loop import to_tensor

    model = MODELS[name]
    rng = np.random.default_rng(0)
    even = rng.integers(0, 256, (3, 64, 24)).astype(np.uint8)
    odd = rng.integers(0, 256, (9, 64, 24)).astype(np.uint8)
    changed_even, changed_odd = even.copy(), odd.copy()
    changed_even[:, 32] ^= 77
    changed_odd[:, 32] ^= 77
    reach = []
    with torch.no_grad():
        for step in range(len(model.steps(3))):
            base = model(to_tensor(even), to_tensor(odd), step, 0)
            moved = model(to_tensor(changed_even), to_tensor(changed_odd), step, 0)
            rows = torch.nonzero((moved.mean != base.mean).any(-1).any(1).any(0)).flatten()
            reach.append(max(32 - int(rows.min()), int(rows.max()) - 32))
    assert max(reach) == model.context_rows
    assert loop.tile_halo(model) == max(2, model.context_rows + (model.context_rows & 1)) < loop.TILE_HALO
    assert loop.tile_halo(MODELS["unet"]) == loop.TILE_HALO  # no bound known: the widest halo
