"""JPEG 2000 with quality layers: each layer sharpens the whole picture, the last is lossless.

Pillow (OpenJPEG) writes a raw codestream with the reversible 5/3 wavelet and quality
layers at compression ratios 320:1, 160:1, ... 2.5:1 and a last lossless layer, in
layer-resolution-component-position order (every packet of layer k before any of layer
k + 1), with PLT markers: the length of every packet in the header, so the end of each
layer is known before it arrives. A prefix that ends on a layer is decoded by OpenJPEG
(through Pillow) with the tile-part's length set to the bytes received and an EOC
marker after them: what a streaming JPEG 2000 decoder shows from those bytes, and,
as the tests check, the same picture as OpenJPEG's own decoding of the complete file
limited to those layers. No mainstream browser shows JPEG 2000 today: this is the
format's own progression, not a browser's.
"""

from __future__ import annotations

import io
import math
import struct

import numpy as np
from PIL import Image

from ...imageio import to_pil
from .base import Contender, Cut, Shown, visible

__all__ = ["Jpeg2000", "RATES", "layer_ends", "decode_layers"]

#: compression ratio of each quality layer (raw bytes / coded bytes); 0: lossless
RATES = (320, 160, 80, 40, 20, 10, 5, 2.5, 0)
MAX_RESOLUTIONS = 6  # 5 wavelet decompositions, OpenJPEG's default
SOC, SIZ, COD, SOT, SOD, PLT, EOC = 0x4F, 0x51, 0x52, 0x90, 0x93, 0x58, b"\xff\xd9"


class _Header:
    """The main and tile-part headers of a single-tile, single-tile-part codestream."""

    def __init__(self, data: bytes) -> None:
        if data[:2] != b"\xff\x4f":
            raise ValueError("not a JPEG 2000 codestream (no SOC marker)")
        pos, plt, self.sot = 2, bytearray(), None
        while pos + 4 <= len(data):
            marker = data[pos + 1]
            if marker == SOD:
                self.sod_end = pos + 2
                break
            length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
            body = data[pos + 4 : pos + 2 + length]
            if marker == SIZ:
                self.components = struct.unpack(">H", body[34:36])[0]
            elif marker == COD:
                self.layers = struct.unpack(">H", body[2:4])[0]
                self.resolutions = body[5] + 1
                if body[0] & 1:
                    raise ValueError("precincts other than the default one per resolution are not supported")
                if body[1] != 0:
                    raise ValueError(f"progression order {body[1]} is not layer-resolution-component-position")
            elif marker == SOT:
                if self.sot is not None:
                    raise ValueError("more than one tile-part is not supported")
                self.sot = pos
            elif marker == PLT:
                plt += body[1:]  # Zplt, then the packet lengths
            pos += 2 + length
        else:
            raise ValueError("no SOD marker: the codestream has no tile data")
        self.packets = _packet_lengths(bytes(plt))

    def layer_ends(self) -> list[int]:
        per_layer = self.resolutions * self.components
        if len(self.packets) != per_layer * self.layers:
            raise ValueError(f"{len(self.packets)} packet lengths for {self.layers} layers of {per_layer} packets")
        ends, at = [], self.sod_end
        for k in range(self.layers):
            at += sum(self.packets[k * per_layer : (k + 1) * per_layer])
            ends.append(at)
        return ends


def _packet_lengths(plt: bytes) -> list[int]:
    """PLT's Iplt values: 7 bits a byte, high bit set on all but the last byte of a value."""
    out, value = [], 0
    for byte in plt:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            out.append(value)
            value = 0
    return out


def layer_ends(data: bytes) -> list[int]:
    """The length of the codestream up to the end of each quality layer."""
    return _Header(data).layer_ends()


def _decode(data: bytes, layers: int = 0) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        if layers:  # Pillow applies ``layers`` only together with ``reduce``: set it on the tile itself
            tile = img.tile[0]
            args = (tile.args[0], 0, layers, *tile.args[3:])
            img.tile = [tile._replace(args=args)]
        arr = np.asarray(img)
    return arr[:, :, None] if arr.ndim == 2 else arr


def decode_layers(data: bytes, layers: int) -> np.ndarray:
    """OpenJPEG's decoding of the complete codestream limited to its first ``layers`` quality layers."""
    return _decode(data, layers)


class Jpeg2000(Contender):
    max_side = 32768  # one precinct per resolution: the packet lengths this reader parses
    id = "j2k"
    name = "JPEG 2000"
    lossless = True
    repaints = (f"after each of its {len(RATES)} quality layers (no browser shows JPEG 2000: "
                "this is OpenJPEG's decoding of the layers received)")

    def encode(self, pixels: np.ndarray, quality: int | None) -> bytes:
        image = visible(pixels)
        h, w = image.shape[:2]
        resolutions = max(1, min(MAX_RESOLUTIONS, 1 + int(math.log2(max(1, min(h, w))))))
        buf = io.BytesIO()
        to_pil(image).save(buf, "JPEG2000", no_jp2=True, irreversible=False, quality_mode="rates",
                           quality_layers=list(RATES), progression="LRCP", num_resolutions=resolutions, plt=True)
        return buf.getvalue()

    def cuts(self, data: bytes) -> list[Cut]:
        ends = layer_ends(data)
        ends[-1] = len(data)  # the last layer ends with the EOC marker
        cuts: dict[int, Cut] = {}
        for k, end in enumerate(ends, 1):
            cuts.setdefault(end, Cut(end, f"layer {k} of {len(ends)}"))  # an empty layer adds no repaint
        return list(cuts.values())

    def shown(self, data: bytes, end: int) -> Shown:
        if end >= len(data):
            image = _decode(data)
        else:
            header = _Header(data)
            if end <= header.sod_end:
                raise ValueError("a JPEG 2000 prefix must reach the tile data")
            prefix = bytearray(data[:end])
            prefix[header.sot + 6 : header.sot + 10] = struct.pack(">I", end - header.sot)  # Psot: the bytes received
            image = _decode(bytes(prefix) + EOC)
        return Shown(image, image.shape[0])
