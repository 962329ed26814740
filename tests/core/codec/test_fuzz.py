"""Fuzzing the decoder: truncated and mutated streams decode or raise HdnFormatError.

Part of the mutants get their CRCs recomputed, so that garbage reaches the entropy
decoder and the predictor instead of being stopped by the first checksum.
"""

from __future__ import annotations

import resource
import struct
import time
import zlib

import numpy as np
import pytest

from hidenet_core import EncodeSettings, HdnFormatError, decode, encode
from hidenet_core.codec.container import parse_header
from tests.conftest import smooth_image

N_STREAMS = 2400
PER_STREAM_SECONDS = 2.0
RSS_GROWTH_MB = 300


def _fix_crcs(data: bytearray) -> None:
    """Recompute header and payload CRCs where the structure still parses."""
    try:
        header, pos = parse_header(bytes(data))
    except HdnFormatError:
        return
    size = header.chunk_header_size
    at = 4 if header.layered else 1  # where the payload length is (its CRC follows)
    while pos + size <= len(data):
        (length,) = struct.unpack_from(">I", data, pos + at)
        end = pos + size + length
        if end > len(data):
            return
        struct.pack_into(">I", data, pos + at + 4, zlib.crc32(bytes(data[pos + size : end])))
        pos = end


def _mutants(streams: list[bytes], rng: np.random.Generator):
    for i in range(N_STREAMS):
        data = bytearray(streams[i % len(streams)])
        kind = (i // len(streams)) % 6  # every stream meets every kind
        if kind == 0:  # truncation anywhere
            del data[int(rng.integers(0, len(data))) :]
        elif kind == 1:  # flip a few random bits
            for _ in range(int(rng.integers(1, 4))):
                data[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
        elif kind == 2:  # overwrite a run with random bytes
            at = int(rng.integers(0, len(data)))
            n = int(rng.integers(1, 16))
            data[at : at + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        elif kind == 3:  # insert or delete bytes
            at = int(rng.integers(0, len(data)))
            if rng.random() < 0.5:
                data[at:at] = rng.integers(0, 256, int(rng.integers(1, 8)), dtype=np.uint8).tobytes()
            else:
                del data[at : at + int(rng.integers(1, 8))]
        else:  # payload garbage behind valid checksums (kinds 4 and 5)
            start = parse_header(bytes(data))[1]
            for _ in range(int(rng.integers(1, 6))):
                at = int(rng.integers(start, len(data)))
                data[at] = int(rng.integers(0, 256))
            _fix_crcs(data)
        yield bytes(data)


@pytest.mark.slow
def test_fuzzed_streams_decode_or_raise_the_format_error(interp):
    streams = [
        # version 6 (layered): two layers, refinement chunks, a generative level after the layers
        encode(smooth_image(24, 20, 3), interp, EncodeSettings(levels=2)),
        encode(smooth_image(17, 33, 1, seed=3), interp, EncodeSettings(levels=2, max_error=2, layers=((9, 5, 2),))),
        encode(smooth_image(16, 16, 4, seed=5), interp, EncodeSettings(levels=1, generative_levels=1)),
        # level 0 has 35 x 32 positions: the last pass over level 1 carries level 0's preview filter
        encode(smooth_image(70, 64, 3, seed=7), interp, EncodeSettings(levels=2, generative_levels=1)),
        # version 5 (resolution only), where the generative chunk of level 1 carries level 0's filter
        encode(smooth_image(24, 20, 3), interp, EncodeSettings(levels=2, version=5)),
        encode(smooth_image(70, 64, 3, seed=7), interp, EncodeSettings(levels=2, generative_levels=1, version=5)),
    ]
    rng = np.random.default_rng(2026)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    outcomes = {"decoded": 0, "rejected": 0}
    messages = set()
    for mutant in _mutants(streams, rng):
        t0 = time.perf_counter()
        try:
            decode(mutant, interp)
            outcomes["decoded"] += 1
        except HdnFormatError as exc:
            assert str(exc), "the error must carry a message"
            messages.add(str(exc).split(":")[0])
            outcomes["rejected"] += 1
        assert time.perf_counter() - t0 < PER_STREAM_SECONDS
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert sum(outcomes.values()) == N_STREAMS
    assert outcomes["rejected"] > N_STREAMS // 2
    assert rss_after - rss_before < RSS_GROWTH_MB
    assert len(messages) >= 5, messages
