"""The ``.hdn`` container: header and per-level chunks (specified in docs/format.md).

All integers are big-endian. Parsing never trusts a length: every field is checked
against hard limits before anything is allocated, and every failure raises
``HdnFormatError`` with a message naming what is wrong.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from .plan import ChunkSpec, PassMode, guarantees, stream_plan
from .pyramid import level_shapes
from .schedule import MAX_LAYERS, schedule_problem
from .versions import VERSION, VERSIONS, format_version

__all__ = [
    "MAGIC",
    "VERSION",
    "VERSIONS",
    "MODE_OF_CHANNELS",
    "MAX_ERROR",
    "MAX_SIDE",
    "MAX_PIXELS",
    "MAX_LEVELS",
    "MAX_LAYERS",
    "check_chunk",
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
# layered streams (version 6): layer (B), level (B), part (H), payload length (I), payload crc32 (I), values crc32 (I)
_LAYERED_CHUNK = struct.Struct(">BBHIII")


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
    #: layered versions: d per level of every layer, the first pass first (the last equals max_error)
    layers: tuple[tuple[int, ...], ...] = ()
    #: layered versions: each pass's mode byte (plan.PassMode bits) per layer and level
    modes: tuple[tuple[int, ...], ...] = ()
    #: version 10: the max error per level of every layer for the colours other than the lead (green;
    #: ``predictors.interp.lead_channel``), which may be larger than the lead's; () : as ``layers``
    other_layers: tuple[tuple[int, ...], ...] = ()

    @property
    def mode(self) -> str:
        return MODE_OF_CHANNELS[self.channels]

    @property
    def layered(self) -> bool:
        return format_version(self.version).layered

    @property
    def colours(self) -> tuple[tuple[int, ...], ...]:
        """The max error per level of every layer for the colours other than the lead (for a stream
        without ``other_layers``, or with a single channel: the lead's, ``layers``)."""
        return self.other_layers or self.layers

    @property
    def chunk_header_size(self) -> int:
        return _LAYERED_CHUNK.size if self.layered else CHUNK_HEADER_SIZE

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
        self._validate_layers()
        if not self.model_name or len(self.model_name.encode()) > MAX_MODEL_NAME:
            raise HdnFormatError(f"model name {self.model_name!r} is empty or longer than {MAX_MODEL_NAME} bytes")
        if len(self.model_hash) != HASH_SIZE:
            raise HdnFormatError(f"model hash has {len(self.model_hash)} bytes, expected {HASH_SIZE}")


    def _validate_layers(self) -> None:
        if not self.layered:
            if self.layers or self.modes or self.other_layers:
                raise HdnFormatError(f"format version {self.version} has no layers")
            return
        if self.other_layers and not format_version(self.version).colour_layers:
            raise HdnFormatError(f"format version {self.version} has no max errors of the colours of their own")
        n = len(self.layers)
        if not 1 <= n <= MAX_LAYERS:
            raise HdnFormatError(f"layer count {n} is outside 1..{MAX_LAYERS}")
        if len(self.modes) != n or any(len(row) != self.levels + 1 for row in (*self.layers, *self.modes)):
            raise HdnFormatError("the layer schedule does not hold one max error and one mode per level and layer")
        if any(not 0 <= d <= MAX_ERROR for row in self.layers for d in row):
            raise HdnFormatError(f"layer max errors {[list(r) for r in self.layers]} are outside 0..{MAX_ERROR}")
        defined = PassMode.defined(format_version(self.version))
        if any(m & ~defined for row in self.modes for m in row):
            raise HdnFormatError(f"pass modes {[list(r) for r in self.modes]} set bits undefined in format version "
                                 f"{self.version}")
        if tuple(self.layers[-1]) != tuple(self.max_error):
            raise HdnFormatError("the last layer's max errors are not the stream's")
        if self.other_layers:
            self._validate_colours()
        if problem := schedule_problem(self.layers, self.other_layers, self.generative_levels):
            raise HdnFormatError(problem)

    def _validate_colours(self) -> None:
        """The shape of version 10's second schedule: one row per layer, each max error in range, the last
        the stream's, a single-channel image's the lead's (``schedule_problem`` checks the rest)."""
        others = self.other_layers
        if len(others) != len(self.layers) or any(len(row) != self.levels + 1 for row in others):
            raise HdnFormatError("the colours' schedule does not hold one max error per level and layer")
        if any(not 0 <= d <= MAX_ERROR for row in others for d in row):
            raise HdnFormatError(f"the colours' max errors {[list(r) for r in others]} are outside 0..{MAX_ERROR}")
        if tuple(others[-1]) != tuple(self.max_error):
            raise HdnFormatError("the last layer's max errors of the colours are not the stream's")
        if self.channels == 1 and others != self.layers:
            raise HdnFormatError("a single-channel stream has no colours besides the lead: their max errors must be "
                                 "the lead's")


@dataclass(frozen=True)
class ChunkHeader:
    level: int
    payload_length: int
    payload_crc: int
    recon_crc: int  # versions 1-5: the level's reconstruction; 6: the values the chunk codes (loop.part_crc)
    layer: int = 0  # layered streams only
    part: int = 0  # layered streams only


def _check_version(version: int) -> None:
    if version not in VERSIONS:
        raise HdnFormatError(f"unsupported .hdn format version {version}; this decoder reads versions {list(VERSIONS)}")


def pack_header(h: Header) -> bytes:
    h.validate()
    name = h.model_name.encode()
    if h.layered:
        schedule = bytes([len(h.layers)]) + b"".join(bytes(r) for r in h.layers) + b"".join(bytes(r) for r in h.modes)
        if format_version(h.version).colour_layers:
            schedule += b"".join(bytes(r) for r in h.colours)
    else:
        schedule = bytes(h.max_error)
    body = (
        _FIXED.pack(h.width, h.height, h.channels, h.levels)
        + schedule
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
    fmt = format_version(version)
    rows = 3 if fmt.colour_layers else 2  # the schedule's rows per layer: max errors, modes (and the colours')
    schedule = 1 + rows * MAX_LAYERS * (MAX_LEVELS + 1) if fmt.layered else MAX_LEVELS + 1
    max_body = _FIXED.size + schedule + 2 + MAX_MODEL_NAME + HASH_SIZE + 4
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
    version = data[len(MAGIC)]
    layers: tuple[tuple[int, ...], ...] = ()
    modes: tuple[tuple[int, ...], ...] = ()
    others: tuple[tuple[int, ...], ...] = ()
    fmt = format_version(version)
    if fmt.layered:
        if pos + 1 > end - 4:
            raise HdnFormatError("header too short for its layer count")
        n = data[pos]
        pos += 1
        if not 1 <= n <= MAX_LAYERS:
            raise HdnFormatError(f"layer count {n} is outside 1..{MAX_LAYERS}")
        per_layer = 3 if fmt.colour_layers else 2
        if pos + per_layer * n * (levels + 1) + 2 > end - 4:
            raise HdnFormatError("header too short for its layer schedule")
        rows = [tuple(data[pos + i * (levels + 1) : pos + (i + 1) * (levels + 1)]) for i in range(per_layer * n)]
        layers, modes, others = tuple(rows[:n]), tuple(rows[n : 2 * n]), tuple(rows[2 * n :])
        pos += per_layer * n * (levels + 1)
        max_error = layers[-1]
    else:
        if pos + levels + 1 + 2 > end - 4:
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
                    version=version, layers=layers, modes=modes,
                    other_layers=() if others == layers else others)
    header.validate()
    return header, end


def pack_chunk(level: int, payload: bytes, recon_crc: int, layered: bool = False, layer: int = 0,
               part: int = 0) -> bytes:
    if layered:
        return _LAYERED_CHUNK.pack(layer, level, part, len(payload), zlib.crc32(payload), recon_crc) + payload
    return _CHUNK.pack(level, len(payload), zlib.crc32(payload), recon_crc) + payload


def parse_chunk_header(data: bytes, pos: int = 0, layered: bool = False) -> ChunkHeader:
    size = _LAYERED_CHUNK.size if layered else CHUNK_HEADER_SIZE
    if len(data) - pos < size:
        raise HdnFormatError(f"truncated chunk header: {len(data) - pos} of {size} bytes")
    if layered:
        layer, level, part, length, payload_crc, crc = _LAYERED_CHUNK.unpack_from(data, pos)
        return ChunkHeader(level, length, payload_crc, crc, layer, part)
    return ChunkHeader(*_CHUNK.unpack_from(data, pos))


def check_chunk(ch: ChunkHeader, spec: ChunkSpec) -> None:
    """Raise unless the chunk header is the one the plan expects next."""
    if (ch.layer, ch.level, ch.part) != (spec.layer, spec.level, spec.part):
        raise HdnFormatError(
            f"chunk for layer {ch.layer}, level {ch.level}, part {ch.part} where layer {spec.layer}, level "
            f"{spec.level}, part {spec.part} was expected (levels go base to full, layer by layer)"
        )


@dataclass(frozen=True)
class Chunk:
    """Where one chunk lies in a stream."""

    level: int
    start: int  # offset of its chunk header
    end: int  # offset just past its payload: the stream bytes up to and including this chunk
    payload_bytes: int
    layer: int = 0  # its pass's layer (layered streams; generative chunks: the layer count)
    part: int = 0  # its part in the pass
    parts: int = 1  # the pass's part count
    max_error: int | None = None  # the largest error any pixel can have after it (None: unbounded)


@dataclass(frozen=True)
class StreamLayout:
    """A stream's header and its chunks, in stream order."""

    header: Header
    header_bytes: int
    chunks: tuple[Chunk, ...]
    planned: int  # the chunk count of the whole stream

    @property
    def total_bytes(self) -> int:
        return self.chunks[-1].end if self.chunks else self.header_bytes

    @property
    def payload_bytes(self) -> int:
        return sum(c.payload_bytes for c in self.chunks)

    @property
    def complete(self) -> bool:
        return len(self.chunks) == self.planned


def _chunk_name(header: Header, spec: ChunkSpec) -> str:
    if not header.layered:
        return f"the chunk for level {spec.level}"
    return f"the chunk for layer {spec.layer}, level {spec.level}, part {spec.part}"


def scan_stream(data: bytes, *, prefix: bool = False) -> StreamLayout:
    """Check a stream's structure and payload CRCs (without decoding); return where each chunk is.

    With ``prefix`` the stream may stop after any chunk; otherwise it must hold every chunk.
    """
    header, pos = parse_header(data)
    plan = stream_plan(header)
    bounds = guarantees(header, plan)
    chunks: list[Chunk] = []
    for spec, bound in zip(plan, bounds):
        if prefix and pos == len(data):
            break
        ch = parse_chunk_header(data, pos, header.layered)
        if header.layered:
            check_chunk(ch, spec)
        elif ch.level != spec.level:
            raise HdnFormatError(f"chunk for level {ch.level} where level {spec.level} was expected")
        end = pos + header.chunk_header_size + ch.payload_length
        name = _chunk_name(header, spec)
        if end > len(data):
            raise HdnFormatError(f"truncated stream: {name} ends at {end}, the stream at {len(data)}")
        if zlib.crc32(data[pos + header.chunk_header_size : end]) != ch.payload_crc:
            raise HdnFormatError(f"payload CRC mismatch in {name}: the stream is corrupted")
        parts = len(spec.pass_.parts) if spec.pass_ is not None else 1
        chunks.append(Chunk(spec.level, pos, end, ch.payload_length, spec.layer, spec.part, parts, bound))
        pos = end
    if pos != len(data):
        raise HdnFormatError(f"unexpected {len(data) - pos} bytes after the last chunk")
    header_bytes = chunks[0].start if chunks else pos
    return StreamLayout(header, header_bytes, tuple(chunks), len(plan))


def stream_info(data: bytes) -> dict:
    """Header fields and every chunk in stream order, with its level's size (a prefix is fine)."""
    layout = scan_stream(data, prefix=True)
    header = layout.header
    shapes = level_shapes(header.height, header.width, header.levels)
    chunks = [
        {"layer": c.layer, "level": c.level, "part": c.part, "parts": c.parts, "max_error": c.max_error,
         "width": shapes[c.level][1], "height": shapes[c.level][0],
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
        "layers": [list(r) for r in header.layers] or [list(header.max_error)],
        "colour_layers": [list(r) for r in header.colours] or [list(header.max_error)],
        "generative_levels": header.generative_levels,
        "model": header.model_name,
        "model_hash": header.model_hash.hex(),
        "header_bytes": layout.header_bytes,
        "complete": layout.complete,
        "chunks": chunks,
    }
