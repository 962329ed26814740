"""hideNet core: the odd/even pyramid codec, its predictors, the .hdn format and tools.

Public API::

    from hidenet_core import encode, decode, ProgressiveDecoder, load_model, EncodeSettings
    model = load_model()                    # the shipped default predictor
    data = encode(pixels, model)            # (H, W, C) uint8 -> .hdn bytes, lossless
    levels = decode(data, model)            # base .. full image, each a DecodedLevel
    pixels = decode_image(data, model)      # the final image alone (faster)
"""

from . import memory  # noqa: F401  (first: HIDENET_MALLOC=bounded, memory.py)
from .codec.container import HdnFormatError, Header, ModelMismatchError
from .codec.decoder import DecodedLevel, ProgressiveDecoder, decode, decode_image, preview, read_header
from .codec.encoder import EncodeSettings, encode, resolve_max_error
from .codec.pyramid import default_levels, level_shapes, merge, split
from .display import display_frame
from .imageio import (
    ImageError,
    ImageTooLarge,
    LoadedImage,
    UnsupportedImage,
    image_from_bytes,
    load_image,
    png_bytes,
    save_png,
)
from .metrics import psnr, ssim
from .predictors import ModelLoadError, Prediction, Predictor, load_model
from .samples import sample_paths

__all__ = [
    "EncodeSettings",
    "encode",
    "resolve_max_error",
    "DecodedLevel",
    "ProgressiveDecoder",
    "decode",
    "decode_image",
    "preview",
    "read_header",
    "Header",
    "HdnFormatError",
    "ModelMismatchError",
    "ImageError",
    "ImageTooLarge",
    "UnsupportedImage",
    "LoadedImage",
    "image_from_bytes",
    "load_image",
    "png_bytes",
    "save_png",
    "ModelLoadError",
    "Prediction",
    "Predictor",
    "load_model",
    "default_levels",
    "level_shapes",
    "merge",
    "split",
    "psnr",
    "ssim",
    "sample_paths",
    "display_frame",
]
