"""Turning a stream's reconstruction into what the browser is sent: a PNG frame and its quality.

The reconstruction after a chunk is the decoder's, or during a first view the encoder's own
(``hidenet_core.codec.reconstruction``: the two are the same, bit for bit).

The frame is, with ``preview``, the picture the stream shows after a chunk (every level
decoded so far, the rest predicted), or else the chunk's level itself at its own size, in
either case as the viewer is to show it (``hidenet_core.display``: the grid of exact
pixels among predicted ones softened). A viewer that says the size it shows frames at
(``frame`` in ``start``) gets frames no larger: the picture is predicted only down to the
*frame level*, the coarsest pyramid level at least that large, and shrunk to fit (so the
first frame of a 40-megapixel image costs a few coarse levels, not a full-size
prediction); at 1:1 it asks for the exact pixels of what it shows (``region``). Quality is
measured on the frame as shown, before it is shrunk, against the original's pixels on the
same grid (``x[::2**k, ::2**k]``, the pyramid's even pixels; the whole original for a
full-size frame). A frame depends only on the stream, the chunk and how it is shown
(decoding is bit-exact, checked by CRC), so rendered frames are cached.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from hidenet_core import display_frame, png_bytes, psnr
from hidenet_core.codec.reconstruction import Reconstruction, clip_region
from hidenet_core.imageio import to_pil
from hidenet_core.metrics import frame_ssim

from ..storage.cache import StreamKey
from ..storage.lru import LRU

__all__ = ["Frame", "FrameSpec", "FrameCache", "frame_level", "fit", "resize_to", "shown_size", "level_reference",
           "render_frame", "render_region", "original_region", "finite", "frame_image", "image_format",
           "SHRUNK_JPEG_QUALITY", "warm_up", "FinalPictures"]


@dataclass(frozen=True)
class Frame:
    data: bytes  # the image sent: a PNG, or a JPEG where it was shrunk to a display (``frame_image``)
    width: int
    height: int
    psnr: float | None  # dB; None when the frame equals the original (infinite PSNR)
    ssim: float
    render_ms: float  # preview + image + metrics, when it was rendered
    decode_ms: float  # the decoder's time for this chunk, when it was decoded
    level: int = 0  # the level the picture was measured at (0: full size)
    origin: str = "decoder"  # whose reconstruction it shows: "decoder", or "encoder" during a first view
    estimated: bool = False  # levels below a refinement under way estimated (``Reconstruction.estimated_below``)

    @property
    def format(self) -> str:
        """Of ``data``: "png", or "jpeg" for a frame shrunk to a display."""
        return image_format(self.data)


def image_format(data: bytes) -> str:
    """What a frame sent to a viewer is (``frame_image``): "png", or "jpeg"."""
    return "png" if data.startswith(b"\x89PNG") else "jpeg"


@dataclass(frozen=True)
class FrameSpec:
    """How a viewer shows frames: the full-size preview or each level, and at most what size.

    ``full_quality`` (a race): a preview's quality is measured on the full-size picture,
    like for like with the contenders' full-size decodes, whatever size the frame is sent at;
    the frame is that picture shrunk to the display."""

    preview: bool
    size: tuple[int, int] | None = None  # (width, height); None: full size
    full_quality: bool = False

    def level(self, height: int, width: int) -> int:
        """The level a preview of a ``height`` x ``width`` image is made and measured at (``frame_level``)."""
        return 0 if self.full_quality else frame_level(height, width, self.size)

    def budgets(self, height: int, width: int) -> tuple[int | None, int | None]:
        """A preview's (``model_pixels``, ``estimate_pixels``) (``frame_budgets``). A race's, at
        any frame size, so that its figures do not depend on the view: for an image up to
        ``MODEL_FRAME_PIXELS`` a full-size frame's (the model everywhere), for a larger one a
        displayed frame's (bilinear, levels under refinement as they stand: the model took 3 to
        15 s a frame at 12 MP)."""
        if self.full_quality:
            return (None, None) if height * width <= MODEL_FRAME_PIXELS else (0, 0)
        return frame_budgets(height, width, self.size)

    def from_encoder(self, height: int, width: int) -> bool:
        """Whether a first view renders these frames on the encode's thread from its state
        (``LevelFrames.tap``), which the encoder waits for: frames for a display whose model
        work is bounded. Else they are decoded in the worker, beside the encoder: "full" frames
        (clients that time each chunk's decoding) and a race's frames of an image up to
        ``MODEL_FRAME_PIXELS`` (the model at full size: 1.8 s a frame at 1.4 MP, which would
        hold the encoder and so delay hideNet's own chunks in the race)."""
        return self.size is not None and self.budgets(height, width)[0] is not None


#: a frame for a display (``FrameSpec.size``) of an image larger than this has its missing levels
#: predicted bilinearly, not by the model, and its levels below a refinement under way shown as they
#: stand, not estimated: a tenth of a second per frame whatever the image's size, where the model
#: took 3 to 15 s a frame for a 12-megapixel photograph on 2 cores (measured, mostly per-level
#: overhead), and so has a race's hideNet picture, at any frame size (``FrameSpec.budgets``); "full"
#: frames (fetch, the bench) use the model for every level
MODEL_FRAME_PIXELS = 2_000_000
#: ... and of a smaller image, the model predicts the missing levels while their pixels add up to at
#: most this many, the finer ones bilinear (every level of the bundled samples, up to 640x427): a
#: 1.4 MP photograph's frames took 1.8 s each with the model on every level, each shown 1.5 to 2 s
#: after its chunk was due (``python -m server.clients.firstview``; README, "First view of a large photograph")
MODEL_FRAME_BUDGET = 400_000


def frame_budgets(height: int, width: int, size: tuple[int, int] | None) -> tuple[int | None, int | None]:
    """(``model_pixels``, ``estimate_pixels``) of ``Reconstruction.preview`` for a frame of a ``height``
    x ``width`` image shown at ``size`` (None: full size, as measured: no bound); a region's
    (``render_region``) are those of a displayed frame."""
    if size is None:
        return None, None
    if height * width > MODEL_FRAME_PIXELS:
        return 0, 0
    return MODEL_FRAME_BUDGET, None


def finite(value: float) -> float | None:
    """JSON has no infinity: an infinite PSNR (identical images) is sent as null."""
    return None if math.isinf(value) else round(value, 3)


def level_reference(original: np.ndarray, level: int) -> np.ndarray:
    """The original's pixels on level ``level``'s grid."""
    step = 1 << level
    return original[::step, ::step]


def frame_level(height: int, width: int, size: tuple[int, int] | None) -> int:
    """The coarsest level of an image at least as large as the frame shown of it: the image
    shrunk to fit in ``size`` (width, height), aspect kept (``fit``), so a frame shrunk from
    that level loses nothing the viewer could see (0: full size). A portrait photo in a
    landscape stage is shown far smaller than the stage, and so comes from a coarser level."""
    if size is None:
        return 0
    shown_w, shown_h = _fitted(height, width, size)
    level = 0
    while (height + (1 << level) - 1) >> level > 1 or (width + (1 << level) - 1) >> level > 1:  # a coarser one exists
        h, w = (height + (2 << level) - 1) >> (level + 1), (width + (2 << level) - 1) >> (level + 1)  # level + 1's size
        if h < shown_h or w < shown_w:
            return level
        level += 1
    return level  # the 1x1 level: an image shown at one pixel


def _fitted(height: int, width: int, size: tuple[int, int] | None) -> tuple[int, int]:
    """The (width, height) an image is shown at in a frame of at most ``size``: shrunk (never
    enlarged) to fit, aspect kept."""
    if size is None or (width <= size[0] and height <= size[1]):
        return width, height
    scale = min(size[0] / width, size[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def shown_size(height: int, width: int, size: tuple[int, int] | None) -> tuple[int, int] | None:
    """The (width, height) a ``height`` x ``width`` image's frames are shrunk to for a display of
    ``size``; None when they are sent at full size (no display size, or the image fits in it)."""
    box = _fitted(height, width, size)
    return None if box == (width, height) else box


def fit(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """The image shrunk (never enlarged) to fit in ``size``, aspect kept."""
    h, w = image.shape[:2]
    return resize_to(image, _fitted(h, w, size))


#: shrink by a whole factor first when the picture is at least this many times the box (``resize_to``)
REDUCING_GAP = 1.5


def resize_to(image: np.ndarray, box: tuple[int, int]) -> np.ndarray:
    """The image resampled (Lanczos) to exactly ``box`` (width, height); itself if it has that size.
    A contender's repaint is shrunk to the box hideNet's frames are (``shown_size``): fitting
    the full-size image again could round a row or column differently."""
    h, w = image.shape[:2]
    if box == (w, h):
        return image
    # reducing_gap: a 12 MP picture is first box-averaged by a whole factor, then resampled (0.11 ->
    # 0.05 s a frame, pixels within a few levels of Lanczos alone: a displayed frame, never measured)
    out = np.asarray(to_pil(image).resize(box, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP))
    return out[:, :, None] if out.ndim == 2 else out


#: a frame shrunk to a viewer's display (its pixels resampled, so no longer any exact pixels
#: of the stream; the 1:1 view asks for those as a ``region``) is sent as a JPEG of this
#: quality without chroma subsampling: about 44 dB from the shrunk picture, a quarter of the
#: PNG's bytes and a tenth of its time (a 12 MP photograph's 1200x800 frame: 0.33 MB in 6 ms
#: against 1.35 MB in 72 ms)
SHRUNK_JPEG_QUALITY = 95


def frame_image(shown: np.ndarray, shrunk: bool) -> bytes:
    """The bytes of a frame as sent: a PNG (exact pixels), or for a frame ``shrunk`` to a
    display a JPEG (``SHRUNK_JPEG_QUALITY``; a PNG still where the image has alpha)."""
    if not shrunk or shown.shape[2] == 4:
        return png_bytes(shown)
    buf = io.BytesIO()
    to_pil(shown).save(buf, "JPEG", quality=SHRUNK_JPEG_QUALITY, subsampling=0)
    return buf.getvalue()


def render_frame(view: Reconstruction, level: int, original: np.ndarray, spec: FrameSpec,
                 decode_ms: float = 0.0) -> Frame:
    """Blocking: the frame after a chunk of level ``level``, from the reconstruction after it
    (the decoder's, or the encoder's own: they are the same); ``decode_ms`` the chunk's decoding."""
    t0 = time.perf_counter()
    g = view.header.generative_levels
    if spec.preview:  # at the frame level, counted from which the finest level decoded so far is the exact grid
        level = spec.level(*original.shape[:2])
        # a frame for a display (not "full") predicts with the model a bounded number of pixels, the rest interpolated
        budget, estimates = spec.budgets(*original.shape[:2])
        below = view.estimated_below()
        estimated = (below is not None and level <= below
                     or below is None and any(j >= level for j in view.coarse_colours)) and estimates != 0
        # the frame level alone over the model's budget: it is bilinear, which the display filter leaves as it is
        level_pixels = view.shapes[level][0] * view.shapes[level][1]
        image = display_frame(view.preview(level, budget, estimates), max(view.current_level - level, 0),
                              max(g - level, 0), True, interpolated=budget is not None and level_pixels > budget)
    else:
        estimated = False
        image = display_frame(view.level_now(level).transpose(1, 2, 0), level, g, False)
    reference = level_reference(original, level)
    p, s = psnr(image, reference), frame_ssim(image, reference)
    shown = fit(image, spec.size)
    data = frame_image(shown, shown is not image)
    h, w = shown.shape[:2]
    render_ms = (time.perf_counter() - t0) * 1000
    return Frame(data, w, h, finite(p), round(s, 5), render_ms, decode_ms, level, estimated=estimated)


def render_region(view: Reconstruction, x: int, y: int, width: int,
                  height: int) -> tuple[bytes, tuple[int, int, int, int]]:
    """Blocking: the PNG of the full-resolution pixels a reconstruction shows in a rectangle,
    and the rectangle (x, y, width, height) it covers once clipped to the image. The levels not
    coded yet are predicted as a displayed frame's are (``frame_budgets``: by the model within a
    budget, bilinear beyond it and for an image larger than ``MODEL_FRAME_PIXELS``; a viewer at
    1:1 asks after every chunk, and the model took seconds a region at 6 MP)."""
    budget, estimates = frame_budgets(view.header.height, view.header.width, (width, height))
    pixels = view.region(y, x, height, width, budget, estimates)
    y, x, _, _ = clip_region(view.header.height, view.header.width, y, x, height, width)  # as ``region`` clips
    return png_bytes(pixels), (x, y, pixels.shape[1], pixels.shape[0])


def original_region(original: np.ndarray, x: int, y: int, width: int,
                    height: int) -> tuple[bytes, tuple[int, int, int, int]]:
    """The PNG of the original's pixels in a rectangle, clipped as ``render_region`` clips it,
    and the rectangle: the region of a picture known to be the original (a finished lossless
    stream)."""
    top, left, bottom, right = clip_region(*original.shape[:2], y, x, height, width)
    return png_bytes(original[top:bottom, left:right]), (left, top, right - left, bottom - top)


def warm_up(model) -> float:
    """Blocking: encode a tiny image and render a frame of it, so that the one-time costs of a
    process's first frame (torch's convolution set-up for SSIM, Pillow's resampling and JPEG
    encoder, the codec's first calls, the value tables' compiled loops) are paid at start-up, not
    by the first viewer: the first frame of a 12 MP photograph took 0.35 s in a fresh process,
    0.21 s after this (0.15 s warm). Returns the seconds it took (about 0.04, plus about 0.3 for
    the compiled loops, a second where numba has not cached them yet)."""
    from hidenet_core.codec import warmup
    from hidenet_core.codec.encoder import EncodeSettings, encode_chunks, version_for

    t0 = time.perf_counter()
    warmup.warm_up()
    yy, xx = np.mgrid[0:96, 0:128]
    image = np.stack([(xx * 2) % 256, (yy * 2) % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)
    for piece in encode_chunks(image, model, EncodeSettings(version=version_for(model))):
        if piece.state is not None:
            render_frame(piece.state, piece.spec.level, image, FrameSpec(True, (64, 48)))
            break
    return time.perf_counter() - t0


class FinalPictures:
    """The full-size final pictures of finished streams that are not the original (near-lossless:
    within ``max_error`` of it), by stream, for their 1:1 regions; bounded by their bytes.

    A region of such a stream once it is complete was a decode of every level of it, on every
    socket that asked: 55 s for a 12-megapixel photograph, each time. The picture is kept when
    a first view's encoder makes the last chunk, or when a region's decoder has decoded it,
    and every viewer's regions are then crops of it (36 MB at 12 MP, RGB). A viewer that took
    it keeps it for itself too (``LevelFrames``), so an eviction, or a picture larger than the
    whole cache, does not make its next region decode the stream again."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lru = LRU(max_bytes, weigh=self._weigh)  # type: ignore[arg-type]

    @staticmethod
    def _weigh(picture: np.ndarray) -> int:
        return picture.nbytes + 256

    def __len__(self) -> int:
        return len(self._lru)

    def get(self, key: StreamKey) -> np.ndarray | None:
        return self._lru.get(key)  # type: ignore[return-value]

    def discard(self, key: StreamKey) -> None:
        self._lru.discard(key)

    def put(self, key: StreamKey, view: Reconstruction) -> np.ndarray:
        """Keep the final picture of a complete reconstruction (a copy, (H, W, C) uint8; one larger
        than the whole cache is not kept: it would evict all); returns it."""
        picture = np.ascontiguousarray(view.image(0).transpose(1, 2, 0))
        picture.setflags(write=False)
        if self._weigh(picture) <= self.max_bytes:
            self._lru.put(key, picture)
        return picture


class FrameCache:
    """Rendered frames by (stream, chunk index, how they are shown), bounded by their total PNG bytes."""

    def __init__(self, max_bytes: int) -> None:
        self._lru = LRU(max_bytes, weigh=lambda frame: len(frame.data) + 256)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self._lru)

    def get(self, key: StreamKey, index: int, spec: FrameSpec) -> Frame | None:
        return self._lru.get((key, index, spec))  # type: ignore[return-value]

    def put(self, key: StreamKey, index: int, spec: FrameSpec, frame: Frame) -> None:
        self._lru.put((key, index, spec), frame)
