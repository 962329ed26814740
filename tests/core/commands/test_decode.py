"""``hidenet decode`` through ``main([...])``: prefixes cut inside a chunk, levels not in the stream."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from hidenet_core.cli import main
from tests.conftest import smooth_image


@pytest.fixture(params=["6", "5"], ids=["layered", "v5"])
def hdn(request, tmp_path, capsys):
    """A lossless stream of a 90x70 image (levels 0 to 2), layered (the default) or version 5
    (one chunk per level), and where each of its chunks ends."""
    photo, path = tmp_path / "photo.png", tmp_path / "photo.hdn"
    Image.fromarray(smooth_image(70, 90, 3)).save(photo)
    assert main(["encode", str(photo), str(path), "--model", "interp", "--format-version", request.param]) == 0
    capsys.readouterr()
    assert main(["info", str(path), "--json"]) == 0
    ends = [c["total_bytes"] for c in json.loads(capsys.readouterr().out)["chunks"]]
    return path, ends


def decode(capsys, *argv):
    code = main(["decode", *map(str, argv), "--model", "interp"])
    out, err = capsys.readouterr()
    return code, out, err


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


@pytest.mark.parametrize("preview", [True, False])
def test_a_stream_cut_inside_a_chunk_decodes_its_complete_chunks(tmp_path, capsys, hdn, preview):
    path, ends = hdn
    data = path.read_bytes()
    cut, whole = tmp_path / "cut.hdn", tmp_path / "whole.hdn"
    cut.write_bytes(data[: ends[-2] + 100])  # every chunk but the last, and 100 bytes of it
    whole.write_bytes(data[: ends[-2]])
    flag = ["--preview"] if preview else []
    code, out, err = decode(capsys, cut, tmp_path / "cut.png", *flag)
    assert code == 0, err
    assert "the stream is cut inside a chunk: its last 100 bytes were ignored" in err
    assert f"{ends[-2]} bytes read" in out
    assert decode(capsys, whole, tmp_path / "whole.png", *flag)[0] == 0
    assert np.array_equal(pixels(tmp_path / "cut.png"), pixels(tmp_path / "whole.png"))
    layered = len(ends) > 3  # its first layer reaches level 0 (within a max error) before the last chunk
    assert ("stream ends after level 1" in err) != layered
    assert pixels(tmp_path / "cut.png").shape[:2] == ((70, 90) if preview or layered else (35, 45))


def test_a_stream_cut_inside_its_first_chunk_is_refused(tmp_path, capsys, hdn):
    path, ends = hdn
    cut = tmp_path / "cut.hdn"
    cut.write_bytes(path.read_bytes()[: ends[0] - 1])
    code, _, err = decode(capsys, cut, tmp_path / "o.png", "--preview")
    assert code == 2 and err.startswith("hidenet: error: ") and "no complete chunk" in err


def test_bytes_after_the_last_chunk_are_still_an_error(tmp_path, capsys, hdn):
    path, _ = hdn
    longer = tmp_path / "longer.hdn"
    longer.write_bytes(path.read_bytes() + b"extra")
    code, _, err = decode(capsys, longer, tmp_path / "o.png")
    assert code == 2 and "unexpected 5 bytes after the last chunk" in err


def test_a_level_beyond_the_base_is_refused(tmp_path, capsys, hdn):
    path, _ = hdn
    code, out, err = decode(capsys, path, tmp_path / "o.png", "--level", "9")
    assert code == 2 and out == ""
    assert err.strip() == ("hidenet: error: --level 9 is not in this stream: "
                           "its levels are 0 (the full image, 90x70) to 2 (the base, 23x18)")
    assert not (tmp_path / "o.png").exists()
    assert decode(capsys, path, tmp_path / "o.png", "--level", "2")[0] == 0
    assert pixels(tmp_path / "o.png").shape == (18, 23, 3)


def test_preview_is_shown_with_the_display_filter(tmp_path, capsys):
    """Two generative levels leave the exact pixels of level 2 (every 4th row and column)
    among predictions: --preview softens that grid as the viewer does; a plain decode keeps
    the decoder's image, which the stream's CRCs are about."""
    from hidenet_core.display import display_filter

    photo, path = tmp_path / "photo.png", tmp_path / "gen.hdn"
    Image.fromarray(smooth_image(70, 90, 3)).save(photo)
    assert main(["encode", str(photo), str(path), "--model", "interp", "--generative-levels", "2"]) == 0
    assert decode(capsys, path, tmp_path / "raw.png")[0] == 0
    assert decode(capsys, path, tmp_path / "shown.png", "--preview")[0] == 0
    raw, shown = pixels(tmp_path / "raw.png"), pixels(tmp_path / "shown.png")
    assert np.array_equal(shown, display_filter(raw, 2))
    grid = np.zeros(raw.shape[:2], bool)
    grid[::4, ::4] = True
    assert np.array_equal(shown[~grid], raw[~grid]) and not np.array_equal(shown[grid], raw[grid])


def test_a_level_of_a_layered_stream_is_as_its_last_pass_left_it(tmp_path, capsys, hdn):
    """--level 1 of a lossless stream is exact: a layered stream's first pass over level 1 is
    within a max error, and its last layer refines it after its first pass over level 0."""
    path, _ = hdn
    code, out, err = decode(capsys, path, tmp_path / "o.png", "--level", "1")
    assert code == 0, err
    assert np.array_equal(pixels(tmp_path / "o.png"), smooth_image(70, 90, 3)[::2, ::2])
