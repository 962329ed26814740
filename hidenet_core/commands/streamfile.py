"""Reading a ``.hdn`` file from the command line with a bound on its size.

A stream's header says how large the stream can be (its image size, channels and
levels bound every chunk), so the file is read header first and then never beyond that
bound: ``hidenet info /dev/zero`` or a file padded with gigabytes ends in one line
``hidenet: error: ...``, not in a read that runs out of memory.
"""

from __future__ import annotations

from pathlib import Path

from ..codec.container import PREAMBLE_SIZE, HdnFormatError, Header, parse_header, parse_preamble
from ..codec.plan import stream_plan
from ..codec.pyramid import level_shapes

__all__ = ["read_stream", "stream_size_bound"]

#: side information per chunk (calibration, linear weights, preview filter) is at most a few
#: kilobytes; this is many times that
_SIDE_INFO_BYTES = 1 << 20
#: bytes per coded value: the range coder spends under 32 bits per symbol; this is twice that
_BYTES_PER_VALUE = 8


def stream_size_bound(header: Header, header_bytes: int) -> int:
    """A generous bound on the bytes of any stream with this header (every chunk present; a
    layered stream codes each value at most once per layer)."""
    shapes = level_shapes(header.height, header.width, header.levels)
    values = header.channels * sum(h * w for h, w in shapes)
    chunks = len(stream_plan(header))
    passes = max(1, len(header.layers))
    return (header_bytes + chunks * (header.chunk_header_size + _SIDE_INFO_BYTES)
            + _BYTES_PER_VALUE * values * passes)


def read_stream(path: str | Path) -> bytes:
    """The bytes of a ``.hdn`` file (or a prefix of one); HdnFormatError if it does not start
    with a valid header or is longer than any stream with that header can be."""
    with open(path, "rb") as f:
        head = f.read(PREAMBLE_SIZE)
        body_len = parse_preamble(head)  # not a .hdn stream: fails here, after a few bytes
        head += f.read(body_len)
        header, header_bytes = parse_header(head)
        bound = stream_size_bound(header, header_bytes)
        data = head + f.read(bound - len(head) + 1)
    if len(data) > bound:
        raise HdnFormatError(
            f"{str(path)!r} is longer than any stream of a {header.width}x{header.height} {header.mode} image "
            f"can be ({bound} bytes at most): it is not a .hdn stream, or has data appended"
        )
    return data
