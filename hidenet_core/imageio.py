"""Reading and writing images as the codec wants them: (H, W, C) uint8, C in 1, 3, 4.

Formats are sniffed from the bytes, never trusted from a file name. Palette and other
8-bit modes are converted (and the conversion is reported); 16-bit, float and other
deep images are refused, since the codec is 8-bit only.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .codec.container import MODE_OF_CHANNELS

__all__ = [
    "LoadedImage",
    "to_pil",
    "ImageError",
    "UnsupportedImage",
    "ImageTooLarge",
    "load_image",
    "image_from_bytes",
    "save_png",
    "png_bytes",
    "MODE_OF_CHANNELS",
    "IMAGE_SUFFIXES",
    "image_files",
    "center_crop",
]

#: the files taken from a folder of images (their format is then sniffed from the bytes), by
#: ``hidenet eval``, ``train``, ``bench`` and ``serve --images`` alike
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
_DEEP_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F", "RGB;16", "RGBA;16"}


class ImageError(ValueError):
    """An input that is not an 8-bit image this codec can take; the message says why."""


@dataclass(frozen=True)
class LoadedImage:
    pixels: np.ndarray  # (H, W, C) uint8
    source_mode: str  # the file's own PIL mode
    note: str | None  # what conversion was applied, if any

    @property
    def mode(self) -> str:
        return MODE_OF_CHANNELS[self.pixels.shape[2]]


def _rawmodes(img: Image.Image) -> list[str]:
    """The raw modes the file's data is stored in (Pillow's tiles), e.g. "RGB;16B" for a 16-bit RGB PNG."""
    out = []
    for tile in getattr(img, "tile", None) or []:
        args = tile[3] if len(tile) > 3 else None
        if isinstance(args, tuple):
            args = args[0] if args else None
        if isinstance(args, str):
            out.append(args)
    return out


def _is_deep(img: Image.Image) -> bool:
    """16-bit or float samples, also where Pillow would open them as an 8-bit mode (16-bit RGB and
    RGBA PNGs open as "RGB"/"RGBA", silently cut to 8 bits)."""
    bits = img.info.get("bits")  # a PNG's text chunks land in ``info`` too: only an int is Pillow's
    if img.mode in _DEEP_MODES or img.mode.endswith(";16") or (isinstance(bits, int) and bits > 8):
        return True
    return any(";16" in raw or ";32" in raw or raw.startswith("F") for raw in _rawmodes(img))


def _upright(img: Image.Image) -> tuple[Image.Image, str | None]:
    """The image as it is meant to be seen: turned by its EXIF orientation (a phone's photographs
    are stored sideways with a tag, which browsers and viewers apply), and a note if it was."""
    try:
        orientation = img.getexif().get(0x0112, 1)
        if orientation in (None, 1):
            return img, None
        turned = ImageOps.exif_transpose(img)
    except Exception:  # an EXIF block Pillow cannot read: the pixels as stored
        return img, None
    return turned, f"turned upright by its EXIF orientation ({orientation})"


def _convert(img: Image.Image) -> tuple[Image.Image, str | None]:
    mode = img.mode
    if mode in ("L", "RGB", "RGBA"):
        return img, None
    if mode == "1":
        return img.convert("L"), "converted 1-bit to L (8-bit grey)"
    if mode == "P":
        if not isinstance(img.info.get("transparency", 0), (int, bytes)):  # a text chunk of that name, not tRNS
            del img.info["transparency"]
        has_alpha = "transparency" in img.info or (img.palette is not None and img.palette.mode == "RGBA")
        target = "RGBA" if has_alpha else "RGB"
        return img.convert(target), f"converted palette image to {target}"
    if mode == "PA":
        return img.convert("RGBA"), "converted palette+alpha to RGBA"
    if mode == "LA":
        return img.convert("RGBA"), "converted LA (grey+alpha) to RGBA"
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return img.convert("RGB"), f"converted {mode} to RGB"
    raise UnsupportedImage(f"image mode {mode!r} is not supported: use an 8-bit L, RGB or RGBA image")


class UnsupportedImage(ImageError):
    """Not an image, or one this 8-bit codec cannot take (16-bit, float, exotic modes)."""


class ImageTooLarge(ImageError):
    """More pixels than the configured limit, or than Pillow's decompression-bomb guard allows."""


def image_from_bytes(data: bytes, max_pixels: int | None = None, max_side: int | None = None) -> LoadedImage:
    """Decode image bytes (any format Pillow sniffs) into an 8-bit (H, W, C) array.

    Everything is checked from the header before the pixels are decoded. Raises
    ``UnsupportedImage`` (not an image; 16-bit, float or unknown modes), ``ImageTooLarge``
    (more than ``max_pixels`` pixels or ``max_side`` pixels a side, or a decompression
    bomb) or ``ImageError`` (truncated or corrupted data); all three are ``ImageError``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnsupportedImage(
            "not an image: format not recognised (PNG, JPEG, WebP, GIF, BMP, TIFF, ... are)"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"image too large (decompression bomb refused): {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"unreadable image header: {exc}") from None
    except Exception as exc:  # a format plugin's own failure on a malformed header (NotImplementedError, ...)
        raise UnsupportedImage(f"unreadable image header ({type(exc).__name__}: {exc})") from None
    w, h = img.size
    if max_pixels is not None and w * h > max_pixels:
        raise ImageTooLarge(f"image of {w}x{h} = {w * h} pixels exceeds the limit of {max_pixels}")
    if max_side is not None and max(w, h) > max_side:
        raise ImageTooLarge(f"image of {w}x{h} pixels: a side of {max(w, h)} pixels exceeds the limit of {max_side}")
    source_mode = img.mode
    if _is_deep(img):
        raise UnsupportedImage(
            f"{source_mode} images (16-bit or float) are not supported: hideNet codes 8-bit L, RGB and RGBA; "
            f"convert to 8 bits first"
        )
    try:
        img.load()
    except Exception as exc:  # Pillow raises OSError/SyntaxError/ValueError on truncated data
        raise ImageError(f"truncated or corrupted image: {exc}") from None
    img, turned = _upright(img)
    try:
        img, note = _convert(img)
        arr = np.asarray(img, dtype=np.uint8)
    except ImageError:
        raise
    except Exception as exc:  # metadata Pillow cannot apply (a text chunk named "transparency", ...)
        raise ImageError(f"cannot convert this {source_mode} image to 8-bit pixels: {exc}") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    note = "; ".join(n for n in (turned, note) if n) or None
    return LoadedImage(np.ascontiguousarray(arr), source_mode, note)


def load_image(path: str | Path, max_pixels: int | None = None) -> LoadedImage:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    return image_from_bytes(data, max_pixels)


def to_pil(pixels: np.ndarray) -> Image.Image:
    """A Pillow image (L, RGB or RGBA) of an (H, W, C) uint8 array."""
    arr = pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
    return Image.fromarray(arr, MODE_OF_CHANNELS[pixels.shape[2]])


def png_bytes(pixels: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG encoding of an (H, W, C) uint8 array (fast by default: for display frames)."""
    buf = io.BytesIO()
    to_pil(pixels).save(buf, "PNG", compress_level=compress_level)
    return buf.getvalue()


def save_png(pixels: np.ndarray, path: str | Path) -> None:
    Path(path).write_bytes(png_bytes(pixels, compress_level=6))


def image_files(folder: str | Path, *, required: bool = True) -> list[Path]:
    """The image files (``IMAGE_SUFFIXES``) directly inside ``folder``, sorted by name.

    ValueError if ``folder`` is not a folder or, when ``required``, holds no image file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"image folder {str(folder)!r} does not exist or is not a folder")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if required and not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {str(folder)!r}")
    return paths


def center_crop(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """The central (height, width) part of an (H, W, C) image (the whole side where smaller)."""
    H, W = pixels.shape[:2]
    y, x = max(0, (H - height) // 2), max(0, (W - width) // 2)
    return np.ascontiguousarray(pixels[y : y + height, x : x + width])
