"""The encode/decode/info command line, through ``main(argv)``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from hidenet_core.cli import EXIT_BROKEN_PIPE, commands, main
from hidenet_core.codec.versions import VERSION
from tests.conftest import smooth_image


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(smooth_image(70, 90, 3)).save(path)
    return path


def size_of(path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(code, err, fragment):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hidenet: error: "), err
    assert fragment in lines[0]
    assert "Traceback" not in err


def test_encode_decode_info_round_trip(tmp_path, photo, capsys):
    hdn, png = tmp_path / "photo.hdn", tmp_path / "out.png"
    code, out, _ = run(capsys, "encode", photo, hdn, "--model", "interp")
    assert code == 0 and "bpp" in out
    code, out, _ = run(capsys, "decode", hdn, png, "--model", "interp")
    assert code == 0
    assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(photo)))
    code, out, _ = run(capsys, "info", hdn, "--json")
    info = json.loads(out)
    assert (info["width"], info["height"], info["channels"]) == (90, 70, 3)
    chunks = info["chunks"]
    assert info["format_version"] == VERSION and info["complete"] and len(info["layers"]) == 3
    assert info["layers"] == [[16, 8, 0], [8, 4, 0], [0, 0, 0]]
    assert info["colour_layers"] == [[64, 32, 0], [32, 16, 0], [0, 0, 0]]
    assert [(c["layer"], c["level"]) for c in chunks] == [(0, 2), (0, 1), (0, 0), (1, 1), (1, 0), (2, 1), (2, 0)]
    assert [c["max_error"] for c in chunks] == [None, None, 64, 64, 32, 32, 0]
    assert chunks[-1] == {"layer": 2, "level": 0, "part": 0, "parts": 1, "max_error": 0, "width": 90, "height": 70,
                          "payload_bytes": chunks[-1]["payload_bytes"], "total_bytes": hdn.stat().st_size}
    code, out, _ = run(capsys, "info", hdn)
    assert code == 0 and "90x70 RGB" in out


def test_format_version_option_writes_every_version(tmp_path, capsys):
    path = tmp_path / "big.png"
    Image.fromarray(smooth_image(150, 140, 3)).save(path)  # level 0 is large enough to be calibrated
    sizes = {}
    for flag, version in (([], VERSION), *((["--format-version", str(v)], v) for v in range(VERSION - 1, 0, -1))):
        out = tmp_path / f"v{version}.hdn"
        assert run(capsys, "encode", path, out, "--model", "interp", *flag)[0] == 0
        code, text, _ = run(capsys, "info", out, "--json")
        assert code == 0 and json.loads(text)["format_version"] == version
        assert run(capsys, "decode", out, tmp_path / f"v{version}.png", "--model", "interp")[0] == 0
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"v{version}.png")), np.asarray(Image.open(path)))
        sizes[version] = out.stat().st_size
    assert sizes[3] < sizes[2] < sizes[1]


def test_decode_level_and_preview(tmp_path, photo, capsys):
    hdn = tmp_path / "p.hdn"
    run(capsys, "encode", photo, hdn, "--model", "interp", "--max-error", "1", "--generative-levels", "1")
    code, _, _ = run(capsys, "decode", hdn, tmp_path / "l1.png", "--level", "1", "--model", "interp")
    assert code == 0 and size_of(tmp_path / "l1.png") == (45, 35)
    code, out, _ = run(capsys, "decode", hdn, tmp_path / "pv.png", "--level", "2", "--preview", "--model", "interp")
    assert code == 0 and size_of(tmp_path / "pv.png") == (90, 70) and "preview" in out


def test_decode_prefix_notes_missing_levels(tmp_path, photo, capsys):
    hdn = tmp_path / "p.hdn"
    run(capsys, "encode", photo, hdn, "--model", "interp")
    run(capsys, "info", hdn, "--json")
    code, out, _ = run(capsys, "info", hdn, "--json")
    base_end = json.loads(out)["chunks"][0]["total_bytes"]
    prefix = tmp_path / "prefix.hdn"
    prefix.write_bytes(hdn.read_bytes()[:base_end])
    code, out, err = run(capsys, "decode", prefix, tmp_path / "o.png", "--model", "interp")
    assert code == 0 and "stream ends after level 2" in err


def test_decode_mid_layer_writes_the_reconstruction_and_preview_the_estimate(tmp_path, capsys):
    """A prefix cut inside the last layer: ``decode`` writes the reconstruction the prefix
    guarantees (within its max error), ``--preview`` what the viewer shows (the levels below
    the refinement under way estimated inside their intervals: within twice it)."""
    source = tmp_path / "smooth.png"
    original = smooth_image(120, 160, 3, seed=3)
    Image.fromarray(original).save(source)
    hdn = tmp_path / "s.hdn"
    run(capsys, "encode", source, hdn, "--model", "interp")
    _, out, _ = run(capsys, "info", hdn, "--json")
    chunks = json.loads(out)["chunks"]
    # the first chunk of the last layer that leaves level 0 to a later chunk of it
    cut = next(c for c in chunks if c["layer"] == chunks[-1]["layer"] and c["level"] > 0)
    bound = cut["max_error"]
    prefix = tmp_path / "prefix.hdn"
    prefix.write_bytes(hdn.read_bytes()[: cut["total_bytes"]])
    code, out, _ = run(capsys, "decode", prefix, tmp_path / "rec.png", "--model", "interp")
    assert code == 0 and "+ preview" not in out
    code, out, _ = run(capsys, "decode", prefix, tmp_path / "shown.png", "--model", "interp", "--preview")
    assert code == 0 and "+ preview" in out
    rec = np.asarray(Image.open(tmp_path / "rec.png")).astype(int)
    shown = np.asarray(Image.open(tmp_path / "shown.png")).astype(int)
    assert np.abs(rec - original).max() <= bound
    assert not np.array_equal(rec, shown) and np.abs(shown - original).max() <= 2 * bound
    assert ((shown - original) ** 2).mean() < ((rec - original) ** 2).mean()

def test_per_level_max_error(tmp_path, photo, capsys):
    hdn = tmp_path / "p.hdn"
    code, _, _ = run(capsys, "encode", photo, hdn, "--model", "interp", "--max-error", "0,1,2")
    assert code == 0
    code, out, _ = run(capsys, "info", hdn, "--json")
    assert json.loads(out)["max_error"] == [0, 1, 2]


def test_palette_image_is_converted_with_a_note(tmp_path, capsys):
    path = tmp_path / "pal.png"
    Image.fromarray(smooth_image(20, 20, 3)).convert("P").save(path)
    code, _, err = run(capsys, "encode", path, tmp_path / "o.hdn", "--model", "interp")
    assert code == 0 and "converted palette image to RGB" in err


def test_sixteen_bit_image_is_refused(tmp_path, capsys):
    path = tmp_path / "deep.png"
    Image.fromarray((np.arange(400).reshape(20, 20) * 100).astype(np.uint16)).save(path)
    code, _, err = run(capsys, "encode", path, tmp_path / "o.hdn", "--model", "interp")
    assert_clean_error(code, err, "16-bit")


def test_missing_input(tmp_path, capsys):
    code, _, err = run(capsys, "encode", tmp_path / "nope.png", tmp_path / "o.hdn")
    assert_clean_error(code, err, "cannot read")


def test_not_an_image(tmp_path, capsys):
    path = tmp_path / "notes.png"
    path.write_text("hello")
    code, _, err = run(capsys, "encode", path, tmp_path / "o.hdn", "--model", "interp")
    assert_clean_error(code, err, "not an image")


def test_decode_garbage(tmp_path, capsys):
    path = tmp_path / "bad.hdn"
    path.write_bytes(b"garbage" * 10)
    code, _, err = run(capsys, "decode", path, tmp_path / "o.png", "--model", "interp")
    assert_clean_error(code, err, "not a .hdn stream")


def test_unknown_model(photo, tmp_path, capsys):
    code, _, err = run(capsys, "encode", photo, tmp_path / "o.hdn", "--model", "nonesuch")
    assert_clean_error(code, err, "unknown model 'nonesuch'")


def test_decode_with_the_wrong_model(tmp_path, photo, capsys):
    hdn = tmp_path / "p.hdn"
    run(capsys, "encode", photo, hdn, "--model", "interp")
    from hidenet_core.predictors import load_model

    if load_model("default").name == "interp":
        pytest.skip("no learned default model shipped")
    code, _, err = run(capsys, "decode", hdn, tmp_path / "o.png")
    assert_clean_error(code, err, "encoded with model 'interp'")


def test_bad_option_values(photo, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["encode", str(photo), str(tmp_path / "o.hdn"), "--max-error", "300"])
    assert exc.value.code == 2
    assert "max-error values must be in 0..127" in capsys.readouterr().err
    code, _, err = run(capsys, "encode", photo, tmp_path / "o.hdn", "--model", "interp", "--levels", "12")
    assert_clean_error(code, err, "--levels 12 is outside")


def test_output_is_written_atomically(tmp_path, photo, capsys):
    hdn = tmp_path / "p.hdn"
    run(capsys, "encode", photo, hdn, "--model", "interp")
    assert not list(tmp_path.glob("*.part"))


class EndlessPipe:
    """A named pipe fed by a thread with ``head`` and then zeros, up to ``limit`` bytes: the bytes
    the command read before it stopped are ``written`` (minus the pipe's buffer)."""

    def __init__(self, path, head: bytes = b"", limit: int = 256 * 1024 * 1024) -> None:
        import os
        import threading

        os.mkfifo(path)
        self.path, self.head, self.limit, self.written = path, head, limit, 0
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()

    def _feed(self) -> None:
        block = bytes(64 * 1024)
        try:
            with open(self.path, "wb") as f:
                f.write(self.head)
                self.written = len(self.head)
                while self.written < self.limit:
                    f.write(block)
                    self.written += len(block)
        except BrokenPipeError:  # the reader stopped: what we want
            pass


@pytest.mark.parametrize("command", ["info", "decode"])
def test_an_endless_input_is_refused_after_a_few_bytes(tmp_path, capsys, command):
    pipe = EndlessPipe(tmp_path / "zeros.hdn")  # like /dev/zero
    argv = [command, pipe.path] + ([tmp_path / "out.png", "--model", "interp"] if command == "decode" else [])
    code, _, err = run(capsys, *argv)
    pipe.thread.join(10)
    assert_clean_error(code, err, "not a .hdn stream")
    assert pipe.written < 4 * 1024 * 1024  # the pipe's buffer, not the whole stream


def test_a_valid_header_followed_by_endless_bytes_is_refused_at_the_bound(tmp_path, capsys, photo):
    from hidenet_core.codec.container import parse_header

    assert main(["encode", str(photo), str(tmp_path / "p.hdn"), "--model", "interp"]) == 0
    data = (tmp_path / "p.hdn").read_bytes()
    head = data[: parse_header(data)[1]]
    pipe = EndlessPipe(tmp_path / "padded.hdn", head)
    code, _, err = run(capsys, "info", pipe.path)
    pipe.thread.join(10)
    assert_clean_error(code, err, "longer than any stream of a 90x70 RGB image")
    assert pipe.written < 64 * 1024 * 1024


class _ClosedPipe:
    """A stdout whose reader has gone, as ``| head`` leaves it once head has its lines."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("argv", [["info", "{hdn}", "--json"], ["info", "{hdn}"], ["decode", "{hdn}", "{png}"]])
def test_a_reader_that_stops_early_ends_every_command_quietly(tmp_path, photo, capsys, monkeypatch, argv):
    hdn, png = tmp_path / "p.hdn", tmp_path / "o.png"
    run(capsys, "encode", photo, hdn, "--model", "interp")
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    code = main([a.format(hdn=hdn, png=png) for a in argv] + (["--model", "interp"] if argv[0] == "decode" else []))
    assert code == EXIT_BROKEN_PIPE == 141
    assert capsys.readouterr().err == ""


def test_info_into_a_closed_pipe_prints_nothing(tmp_path, photo, capsys):
    """The real thing: a pipe whose read end is closed before the command writes, so the
    interpreter's final flush is covered too (no "Exception ignored ... BrokenPipeError")."""
    hdn = tmp_path / "p.hdn"
    run(capsys, "encode", photo, hdn, "--model", "interp")
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "hidenet_core.cli", "info", str(hdn), "--json"],
                              stdout=write, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write)
    assert proc.returncode == EXIT_BROKEN_PIPE and proc.stderr == b""


@pytest.mark.parametrize("command", sorted(commands()))
def test_every_command_help_renders_its_text(command, capsys):
    """argparse formats help with ``%``: a bare ``%`` in a help text (as in "0.2% larger") once
    printed the option's whole internal dict in ``hidenet encode --help``."""
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    out, _ = capsys.readouterr()
    assert exit_.value.code == 0
    assert "option_strings" not in out and "{'" not in out, out
    if command == "encode":
        assert "0.2% larger" in " ".join(out.split())


def test_colour_layers_option_codes_the_colours_coarser(tmp_path, photo, capsys):
    hdn, png = tmp_path / "c.hdn", tmp_path / "c.png"
    code, _, _ = run(capsys, "encode", photo, hdn, "--model", "interp", "--layers", "32,16,0/8,4,0",
                     "--colour-layers", "96,48,0/96,48,0")
    assert code == 0
    info = json.loads(run(capsys, "info", hdn, "--json")[1])
    assert info["colour_layers"] == [[96, 48, 0], [96, 48, 0], [0, 0, 0]]
    assert info["layers"] == [[32, 16, 0], [8, 4, 0], [0, 0, 0]]
    assert [c["max_error"] for c in info["chunks"] if c["max_error"] is not None][:2] == [96, 96]
    assert run(capsys, "decode", hdn, png, "--model", "interp")[0] == 0
    assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(photo)))


@pytest.mark.parametrize("flags, fragment", [
    (["--no-layers", "--colour-layers", "64"], "--colour-layers needs layers in format version 10"),
    (["--format-version", "9", "--colour-layers", "64"], "--colour-layers needs layers in format version 10"),
    (["--colour-layers", "64"], "the colours' max errors need the layers they belong to"),
    (["--layers", "32,16,0", "--colour-layers", "64,32,0/64,32,0"], "2 rows of the colours"),
    (["--layers", "32,16,0", "--colour-layers", "64,32,5"], "the base's colours are coded with the lead"),
])
def test_bad_colour_layers_are_refused_with_a_reason(tmp_path, photo, capsys, flags, fragment):
    code, _, err = run(capsys, "encode", photo, tmp_path / "o.hdn", "--model", "interp", "--levels", "2", *flags)
    assert_clean_error(code, err, fragment)
    assert not (tmp_path / "o.hdn").exists()
