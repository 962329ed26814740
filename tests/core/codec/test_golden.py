"""Golden streams: every format version the decoder reads still decodes to the same pixels,
and today's encoder still writes the same bytes.

The fixtures in ``tests/golden/`` are frozen (see its ``__init__``): when one of these
tests fails, a change to a normative module (the codec, a per-image stage, a predictor
or its weights) changed the bytes of a stream that users may have stored. Either undo
it, or make it a new format version with new fixtures; never edit a fixture.

Streams of a learned model are machine-dependent (docs/format.md, "Streams and machines"):
their means come from float32 convolutions whose sums depend on the CPU's kernels, and a
mean within a rounding of the codec's grid lands on the other side on another CPU. A learned
fixture written on a machine whose kernels differ from this one's is refused here with a
format error (never decoded to other pixels): that is an expected failure (xfail), and so is
re-encoding it. Where the fixture decodes, both tests are strict.
"""

from __future__ import annotations

import pytest

from hidenet_core import HdnFormatError, decode, encode, load_model, read_header
from hidenet_core.codec.container import VERSIONS
from tests.golden import DIR, MODELS, encode_settings, manifest, pixels_sha256, sha256, source_pixels

#: the versions today's encoder writes (all that the decoder reads)
ENCODER_VERSIONS = VERSIONS


def _fixtures() -> list[dict]:
    return manifest()["fixtures"]


def _id(entry: dict) -> str:
    return entry["file"].removesuffix(".hdn")


def test_every_version_and_model_has_fixtures():
    have = {(f["version"], f["model"]) for f in _fixtures()}
    missing = [(v, m) for v in VERSIONS for m in MODELS if (v, m) not in have]
    assert not missing, f"no golden stream for (version, model) {missing}: run python -m tests.golden.generate"
    assert len({f["file"] for f in _fixtures()}) == len(_fixtures())


@pytest.mark.parametrize("entry", _fixtures(), ids=_id)
def test_golden_stream_decodes_to_the_same_pixels(entry):
    data = (DIR / entry["file"]).read_bytes()
    assert sha256(data) == entry["stream_sha256"], "a golden fixture was edited: fixtures are frozen"
    header = read_header(data)
    assert (header.version, header.model_name) == (entry["version"], load_model(entry["model"]).name)
    image = _decoded(entry, data)
    assert pixels_sha256(image) == entry["pixels_sha256"], (
        f"{entry['file']} (format version {entry['version']}) decodes to other pixels than when it was written"
    )


@pytest.mark.parametrize("entry", [f for f in _fixtures() if f["version"] in ENCODER_VERSIONS], ids=_id)
def test_encoder_writes_the_golden_bytes(entry):
    source = source_pixels(entry["source"])
    assert pixels_sha256(source) == entry["source_sha256"], "the bundled sample the fixture is cut from changed"
    data = encode(source, load_model(entry["model"]), encode_settings(entry))
    if sha256(data) != entry["stream_sha256"]:
        _decoded(entry, (DIR / entry["file"]).read_bytes())  # an expected failure where the machine differs
    assert sha256(data) == entry["stream_sha256"], (
        f"today's encoder writes other bytes for {entry['file']} (format version {entry['version']}, "
        f"{len(data)} bytes, {entry['stream_bytes']} in the fixture)"
    )


def _decoded(entry: dict, data: bytes):
    """The fixture's decoded image; an expected failure (xfail) for a learned model's fixture that
    this machine's float32 kernels cannot decode, a failure for any other."""
    try:
        return decode(data, load_model(entry["model"]))[-1].image
    except HdnFormatError as exc:
        if entry["model"] == "interp":
            raise
        pytest.xfail(f"{entry['file']} was written on a machine whose float32 network gives other means "
                     f"than this one's (refused cleanly: {exc})")
