"""The .hdn container: each way a stream can be wrong has its own clear error."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from hidenet_core import EncodeSettings, HdnFormatError, ModelMismatchError, ProgressiveDecoder, decode, encode
from hidenet_core.codec.container import CHUNK_HEADER_SIZE, MAGIC, Header, pack_header, parse_header
from hidenet_core.predictors import Interp
from tests.conftest import smooth_image


@pytest.fixture(scope="module")
def stream(interp):
    return encode(smooth_image(40, 36, 3), interp, EncodeSettings(levels=2, version=5))


def header_size(data: bytes) -> int:
    return parse_header(data)[1]


def test_header_round_trip():
    h = Header(640, 480, 4, 4, (0, 1, 2, 3, 4), 2, "unet-lite", bytes(range(16)), version=5)
    assert parse_header(pack_header(h)) == (h, len(pack_header(h)))


def test_not_a_stream(interp):
    with pytest.raises(HdnFormatError, match="not a .hdn stream"):
        decode(b"\x89PNG\r\n\x1a\n" + b"\0" * 40, interp)


def test_partial_garbage_is_rejected_before_the_preamble_completes(interp):
    with pytest.raises(HdnFormatError, match="not a .hdn stream"):
        ProgressiveDecoder(interp).feed(b"GIF8")


def test_empty_stream(interp):
    with pytest.raises(HdnFormatError, match="empty stream"):
        decode(b"", interp)


def test_unsupported_version(interp, stream):
    bad = bytearray(stream)
    bad[8] = 11
    with pytest.raises(HdnFormatError, match="unsupported .hdn format version 11"):
        decode(bytes(bad), interp)


def test_header_crc(interp, stream):
    bad = bytearray(stream)
    bad[12] ^= 0xFF  # width
    with pytest.raises(HdnFormatError, match="header CRC mismatch"):
        decode(bytes(bad), interp)


def test_truncated_header(interp, stream):
    with pytest.raises(HdnFormatError, match="truncated header"):
        decode(stream[:20], interp)


def test_header_only_has_no_level(interp, stream):
    with pytest.raises(HdnFormatError, match="no complete chunk"):
        decode(stream[: header_size(stream)], interp)


def test_truncated_chunk(interp, stream):
    with pytest.raises(HdnFormatError, match="truncated stream"):
        decode(stream[:-3], interp)


def test_trailing_bytes(interp, stream):
    with pytest.raises(HdnFormatError, match="unexpected 2 bytes after the last chunk"):
        decode(stream + b"xx", interp)


def test_payload_crc(interp, stream):
    bad = bytearray(stream)
    bad[header_size(stream) + CHUNK_HEADER_SIZE + 1] ^= 0x10
    with pytest.raises(HdnFormatError, match="payload CRC mismatch in the chunk for level 2"):
        decode(bytes(bad), interp)


def test_chunk_out_of_order(interp, stream):
    bad = bytearray(stream)
    bad[header_size(stream)] = 0
    with pytest.raises(HdnFormatError, match="chunk for level 0 where level 2 was expected"):
        decode(bytes(bad), interp)


def test_hostile_payload_length(interp, stream):
    bad = bytearray(stream)
    struct.pack_into(">I", bad, header_size(stream) + 1, 2**31)
    with pytest.raises(HdnFormatError, match="declares 2147483648 payload bytes"):
        ProgressiveDecoder(interp).feed(bytes(bad))


def test_reconstruction_crc_mismatch(interp, stream):
    bad = bytearray(stream)
    pos = header_size(stream)
    struct.pack_into(">I", bad, pos + 9, 12345)  # the reconstruction CRC of the base
    with pytest.raises(HdnFormatError, match="CRC does not match"):
        decode(bytes(bad), interp)


@pytest.mark.parametrize(
    "field, value, message",
    [
        (12, (0).to_bytes(4, "big"), "image size"),
        (20, bytes([2]), "channel count 2"),
        (21, bytes([40]), "level count 40"),
    ],
)
def test_hostile_header_fields_with_valid_crc(interp, stream, field, value, message):
    bad = bytearray(stream)
    size = header_size(stream)
    bad[field - 1 : field - 1 + len(value)] = value
    struct.pack_into(">I", bad, size - 4, zlib.crc32(bytes(bad[: size - 4])))
    with pytest.raises(HdnFormatError, match=message):
        decode(bytes(bad), interp)


def test_huge_image_claim_is_refused(interp):
    body = struct.pack(">IIBB", 65535, 65535, 3, 0) + bytes([0, 0, 6]) + b"interp" + bytes(16)
    head = MAGIC + bytes([1]) + struct.pack(">H", len(body) + 4)
    data = head + body + struct.pack(">I", zlib.crc32(head + body))
    with pytest.raises(HdnFormatError, match="exceeds the limit"):
        decode(data, interp)


class OtherInterp(Interp):
    name = "other"


def test_model_mismatch_names_both_models(interp, stream):
    with pytest.raises(ModelMismatchError, match=r"encoded with model 'interp'.*decoder has 'other'"):
        decode(stream, OtherInterp())
    assert issubclass(ModelMismatchError, HdnFormatError)


def test_feed_after_done(interp, stream):
    dec = ProgressiveDecoder(interp)
    dec.feed(stream)
    with pytest.raises(HdnFormatError, match="after the last chunk"):
        dec.feed(b"\0")


def test_preview_before_any_level(interp):
    with pytest.raises(HdnFormatError, match="nothing to preview"):
        ProgressiveDecoder(interp).preview()


def test_random_bytes_never_decode(interp):
    rng = np.random.default_rng(0)
    for _ in range(50):
        with pytest.raises(HdnFormatError):
            decode(bytes(rng.integers(0, 256, rng.integers(0, 200), dtype=np.uint8)), interp)


def test_scan_stream_layout_and_prefixes(stream):
    from hidenet_core.codec.container import scan_stream

    layout = scan_stream(stream)
    assert [c.level for c in layout.chunks] == [2, 1, 0] and layout.complete
    assert layout.total_bytes == len(stream) and layout.header_bytes == header_size(stream)
    base_end = layout.chunks[0].end
    partial = scan_stream(stream[:base_end], prefix=True)
    assert [c.level for c in partial.chunks] == [2] and not partial.complete
    with pytest.raises(HdnFormatError, match="truncated chunk header"):
        scan_stream(stream[:base_end])  # a whole stream was expected
    with pytest.raises(HdnFormatError, match="truncated stream: the chunk for level 1"):
        scan_stream(stream[: base_end + 20], prefix=True)
    with pytest.raises(HdnFormatError, match="unexpected 1 bytes"):
        scan_stream(stream + b"!")
