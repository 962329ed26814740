"""The ``.hdn`` container: header and per-level chunks (specified in docs/format.md).

All integers are big-endian. Parsing never trusts a length: every field is checked
against hard limits before anything is allocated, and every failure raises
``HdnFormatError`` with a message naming what is wrong.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from .pyramid import level_shapes
from .versions import VERSION, VERSIONS

__all__ = [
    "MAGIC",
    "VERSION",
    "VERSIONS",
    "MODE_OF_CHANNELS",
    "MAX_ERROR",
    "MAX_SIDE",
    "MAX_PIXELS",
    "MAX_LEVELS",
    "HdnFormatError",
    "ModelMismatchError",
    "Header",
    "ChunkHeader",
    "CHUNK_HEADER_SIZE",
    "PREAMBLE_SIZE",
    "pack_header",
    "parse_preamble",
    "parse_header",
    "pack_chunk",
    "parse_chunk_header",
    "Chunk",
    "StreamLayout",
    "scan_stream",
    "stream_info",
]

MAGIC = b"\x89HDN\r\n\x1a\n"
#: channel count (the header's mode byte) -> the image mode's name
MODE_OF_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}
#: the largest max error d of a level (its header byte holds 0..127)
MAX_ERROR = 127
MAX_SIDE = 65535
MAX_PIXELS = 64 * 1024 * 1024
MAX_LEVELS = 16
MAX_MODEL_NAME = 64
HASH_SIZE = 16

# magic, version (B), header body length (H)
_PREAMBLE = struct.Struct(">8sBH")
PREAMBLE_SIZE = _PREAMBLE.size
# width (I), height (I), channels (B), levels (B)
_FIXED = struct.Struct(">IIBB")
# level (B), payload length (I), payload crc32 (I), reconstruction crc32 (I)
_CHUNK = struct.Struct(">BIII")
CHUNK_HEADER_SIZE = _CHUNK.size


class HdnFormatError(ValueError):
    """The one error raised for a truncated, corrupted, hostile or mismatched stream."""


class ModelMismatchError(HdnFormatError):
    """The stream was encoded with other predictor weights than the decoder has."""


@dataclass(frozen=True)
class Header:
    """What a decoder must know before the first chunk."""

    width: int
    height: int
    channels: int  # 1 (L), 3 (RGB) or 4 (RGBA)
    levels: int  # L: level 0 is the full image, level L the base
    max_error: tuple[int, ...]  # d per level, index 0 (full image) .. L (base)
    generative_levels: int  # the finest g levels carry no residual
    model_name: str
    model_hash: bytes  # 16 bytes
    version: int = VERSION  # the format version (versions.py: what each one contains)

    @property
    def mode(self) -> str:
        return MODE_OF_CHANNELS[self.channels]

    def validate(self) -> None:
        """Raise HdnFormatError if any field is out of range."""
        _check_version(self.version)
        if not (1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE):
            raise HdnFormatError(f"image size {self.width}x{self.height} is outside 1..{MAX_SIDE} per side")
        if self.width * self.height > MAX_PIXELS:
            raise HdnFormatError(f"image of {self.width * self.height} pixels exceeds the limit of {MAX_PIXELS}")
        if self.channels not in MODE_OF_CHANNELS:
            raise HdnFormatError(f"channel count {self.channels} is not 1 (L), 3 (RGB) or 4 (RGBA)")
        if not 0 <= self.levels <= MAX_LEVELS:
            raise HdnFormatError(f"level count {self.levels} is outside 0..{MAX_LEVELS}")
        side = max(self.width, self.height)
        if self.levels > 0 and (side + (1 << (self.levels - 1)) - 1) >> (self.levels - 1) <= 1:
            raise HdnFormatError(f"{self.levels} levels is too many for a {self.width}x{self.height} image")
        if len(self.max_error) != self.levels + 1:
            raise HdnFormatError(f"{len(self.max_error)} max-error values for {self.levels + 1} levels")
        if any(not 0 <= d <= MAX_ERROR for d in self.max_error):
            raise HdnFormatError(f"max-error values {list(self.max_error)} are outside 0..{MAX_ERROR}")
        if not 0 <= self.generative_levels <= self.levels:
            raise HdnFormatError(f"generative level count {self.generative_levels} is outside 0..{self.levels}")
        if not self.model_name or len(self.model_name.encode()) > MAX_MODEL_NAME:
            raise HdnFormatError(f"model name {self.model_name!r} is empty or longer than {MAX_MODEL_NAME} bytes")
        if len(self.model_hash) != HASH_SIZE:
            raise HdnFormatError(f"model hash has {len(self.model_hash)} bytes, expected {HASH_SIZE}")


@dataclass(frozen=True)
class ChunkHeader:
    level: int
    payload_length: int
    payload_crc: int
    recon_crc: int


def _check_version(version: int) -> None:
    if version not in VERSIONS:
        raise HdnFormatError(f"unsupported .hdn format version {version}; this decoder reads versions {list(VERSIONS)}")


def pack_header(h: Header) -> bytes:
    h.validate()
    name = h.model_name.encode()
    body = (
        _FIXED.pack(h.width, h.height, h.channels, h.levels)
        + bytes(h.max_error)
        + bytes([h.generative_levels, len(name)])
        + name
        + h.model_hash
    )
    head = _PREAMBLE.pack(MAGIC, h.version, len(body) + 4)
    return head + body + struct.pack(">I", zlib.crc32(head + body))


def parse_preamble(data: bytes) -> int:
    """Check magic and version; return the length of the header body that follows (the version is byte 8)."""
    if len(data) < PREAMBLE_SIZE:
        raise HdnFormatError(f"truncated header: {len(data)} bytes, the preamble alone needs {PREAMBLE_SIZE}")
    magic, version, body_len = _PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise HdnFormatError(f"not a .hdn stream: magic bytes are {magic!r}, expected {MAGIC!r}")
    _check_version(version)
    max_body = _FIXED.size + MAX_LEVELS + 1 + 2 + MAX_MODEL_NAME + HASH_SIZE + 4
    if not _FIXED.size + 1 + 2 + HASH_SIZE + 4 <= body_len <= max_body:
        raise HdnFormatError(f"header length {body_len} is outside the possible range")
    return body_len


def parse_header(data: bytes) -> tuple[Header, int]:
    """Parse the header at the start of ``data``; return it and its size in bytes."""
    body_len = parse_preamble(data)
    end = PREAMBLE_SIZE + body_len
    if len(data) < end:
        raise HdnFormatError(f"truncated header: {len(data)} of {end} bytes")
    (crc,) = struct.unpack_from(">I", data, end - 4)
    if zlib.crc32(data[: end - 4]) != crc:
        raise HdnFormatError("header CRC mismatch: the header is corrupted")
    pos = PREAMBLE_SIZE
    width, height, channels, levels = _FIXED.unpack_from(data, pos)
    pos += _FIXED.size
    if levels > MAX_LEVELS:
        raise HdnFormatError(f"level count {levels} is outside 0..{MAX_LEVELS}")
    need = levels + 1 + 2
    if pos + need > end - 4:
        raise HdnFormatError("header too short for its level count")
    max_error = tuple(data[pos : pos + levels + 1])
    pos += levels + 1
    generative, name_len = data[pos], data[pos + 1]
    pos += 2
    if pos + name_len + HASH_SIZE != end - 4:
        raise HdnFormatError("header length does not match its model name length")
    try:
        name = bytes(data[pos : pos + name_len]).decode()
    except UnicodeDecodeError:
        raise HdnFormatError("model name in the header is not UTF-8") from None
    pos += name_len
    header = Header(width, height, channels, levels, max_error, generative, name, bytes(data[pos : pos + HASH_SIZE]),
                    version=data[len(MAGIC)])
    header.validate()
    return header, end


def pack_chunk(level: int, payload: bytes, recon_crc: int) -> bytes:
    return _CHUNK.pack(level, len(payload), zlib.crc32(payload), recon_crc) + payload


def parse_chunk_header(data: bytes, pos: int = 0) -> ChunkHeader:
    if len(data) - pos < CHUNK_HEADER_SIZE:
        raise HdnFormatError(f"truncated chunk header: {len(data) - pos} of {CHUNK_HEADER_SIZE} bytes")
    return ChunkHeader(*_CHUNK.unpack_from(data, pos))


@dataclass(frozen=True)
class Chunk:
    """Where one level's chunk lies in a stream."""

    level: int
    start: int  # offset of its chunk header
    end: int  # offset just past its payload: the stream bytes up to and including this level
    payload_bytes: int


@dataclass(frozen=True)
class StreamLayout:
    """A stream's header and its chunks, base first."""

    header: Header
    header_bytes: int
    chunks: tuple[Chunk, ...]

    @property
    def total_bytes(self) -> int:
        return self.chunks[-1].end if self.chunks else self.header_bytes

    @property
    def payload_bytes(self) -> int:
        return sum(c.payload_bytes for c in self.chunks)

    @property
    def complete(self) -> bool:
        return bool(self.chunks) and self.chunks[-1].level == 0


def scan_stream(data: bytes, *, prefix: bool = False) -> StreamLayout:
    """Check a stream's structure and payload CRCs (without decoding); return where each chunk is.

    With ``prefix`` the stream may stop after any chunk; otherwise it must hold every level.
    """
    header, pos = parse_header(data)
    chunks: list[Chunk] = []
    for level in range(header.levels, -1, -1):
        if prefix and pos == len(data):
            break
        ch = parse_chunk_header(data, pos)
        if ch.level != level:
            raise HdnFormatError(f"chunk for level {ch.level} where level {level} was expected")
        end = pos + CHUNK_HEADER_SIZE + ch.payload_length
        if end > len(data):
            raise HdnFormatError(
                f"truncated stream: the chunk for level {level} ends at {end}, the stream at {len(data)}"
            )
        if zlib.crc32(data[pos + CHUNK_HEADER_SIZE : end]) != ch.payload_crc:
            raise HdnFormatError(f"payload CRC mismatch in the chunk for level {level}: the stream is corrupted")
        chunks.append(Chunk(level, pos, end, ch.payload_length))
        pos = end
    if pos != len(data):
        raise HdnFormatError(f"unexpected {len(data) - pos} bytes after the last chunk")
    header_bytes = chunks[0].start if chunks else pos
    return StreamLayout(header, header_bytes, tuple(chunks))


def stream_info(data: bytes) -> dict:
    """Header fields and, from the base to the full image, each level's sizes (a prefix is fine)."""
    layout = scan_stream(data, prefix=True)
    header = layout.header
    shapes = level_shapes(header.height, header.width, header.levels)
    levels = [
        {"level": c.level, "width": shapes[c.level][1], "height": shapes[c.level][0],
         "payload_bytes": c.payload_bytes, "total_bytes": c.end}
        for c in layout.chunks
    ]
    return {
        "format_version": header.version,
        "width": header.width,
        "height": header.height,
        "channels": header.channels,
        "mode": header.mode,
        "max_error": list(header.max_error),
        "generative_levels": header.generative_levels,
        "model": header.model_name,
        "model_hash": header.model_hash.hex(),
        "header_bytes": layout.header_bytes,
        "complete": layout.complete,
        "levels": levels,
    }
