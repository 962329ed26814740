"""Golden streams: frozen ``.hdn`` fixtures of every format version, and what they decode to.

``manifest.json`` lists every fixture: its file, format version, model, the recipe of
its source image (a crop of a bundled sample, so no extra image is committed), the
encoder settings, the SHA-256 of the stream bytes and the SHA-256 of the decoded
pixels. ``tests/core/codec/test_golden.py`` decodes every fixture and compares the pixels,
and re-encodes every source with today's encoder and compares the bytes.

A fixture is never edited or regenerated: a change of the format is a new format
version with new fixtures (``python -m tests.golden.generate`` writes the fixtures of
versions that have none and refuses to touch the others).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

import numpy as np

from hidenet_core import EncodeSettings, load_image, sample_paths

__all__ = ["DIR", "MANIFEST", "CASES", "MODELS", "manifest", "source_pixels", "encode_settings", "sha256",
           "pixels_sha256"]

DIR = Path(__file__).resolve().parent
MANIFEST = DIR / "manifest.json"
#: both shipped models
MODELS = ("interp", "default")

#: what each version's fixtures are made of (the generator's recipes; the manifest keeps its own copy).
#: When written, the rgb fixtures of versions 2 to 5 sent non-zero parameters for every per-image
#: stage their version has, and every version-5 fixture a preview filter.
CASES: dict[str, dict] = {
    # RGB with odd sizes, level 0 calibrated (its 66x65 grid >= 4096 positions) and carrying a
    # preview filter, level 1 (grid 33x33 >= 1024) a preview filter too: every per-image stage
    "rgb": {
        "source": {"sample": "rocket", "box": [255, 100, 131, 129]},
        "settings": {"max_error": 0, "generative_levels": 0, "levels": None},
    },
    # grey, near-lossless base, both finer levels generative: the generative chunk of level 1
    # carries level 0's preview filter (grid 34x33 >= 1024) in version 5
    "grey": {
        "source": {"sample": "camera", "box": [180, 90, 67, 65]},
        "settings": {"max_error": 2, "generative_levels": 2, "levels": None},
    },
    # grey, level 0's grid (182 x 182) larger than the encoder's subsamples (2^15 values for the
    # linear prediction and the preview filter, 2^14 for the scale context), near-lossless where
    # calibrated (the coder's scale floor binds): from version 5 on only, to keep the fixtures small
    "large": {
        "source": {"sample": "camera", "box": [100, 60, 363, 363]},
        "settings": {"max_error": 1, "generative_levels": 0, "levels": None},
        "first_version": 5,
    },
    # version 6: three layers with a schedule of their own, the full-size level predicted by the
    # built-in interpolation (effort 3): refinement of refined levels, and a pass mode
    "layered": {
        "source": {"sample": "rocket", "box": [255, 100, 131, 129]},
        "settings": {"max_error": 0, "generative_levels": 0, "levels": None,
                     "layers": [[40, 20, 8, 0], [6, 2, 0, 0]], "effort": 3},
        "first_version": 6,
    },
    # version 10: the colours other than green coarser than it in the first layer, a second layer
    # refining green alone at level 0 and both at level 1, then the last layer
    "colours": {
        "source": {"sample": "rocket", "box": [255, 100, 131, 129]},
        "settings": {"max_error": 0, "generative_levels": 0, "levels": None,
                     "layers": [[32, 16, 8, 0], [8, 4, 2, 0]], "colour_layers": [[64, 32, 16, 0], [64, 4, 2, 0]]},
        "first_version": 10,
    },
    # version 6, the fastest effort (no model, no per-image stages), near-lossless with a generative level
    "fast": {
        "source": {"sample": "chelsea", "box": [100, 40, 140, 150]},
        "settings": {"max_error": 1, "generative_levels": 1, "levels": None, "effort": 1},
        "first_version": 6,
    },
    # RGBA (alpha from another sample), a different max error per level
    "rgba": {
        "source": {"sample": "chelsea", "box": [180, 60, 69, 66],
                   "alpha": {"sample": "camera", "box": [240, 300, 69, 66]}},
        "settings": {"max_error": [1, 0, 3], "generative_levels": 0, "levels": None},
    },
}


@cache
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pixels_sha256(pixels: np.ndarray) -> str:
    """The hash of an (H, W, C) uint8 image: its bytes in (H, W, C) order."""
    return sha256(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())


def _crop(recipe: dict) -> np.ndarray:
    (path,) = [p for p in sample_paths() if p.stem == recipe["sample"]]
    x, y, w, h = recipe["box"]
    px = load_image(path).pixels[y : y + h, x : x + w]
    if px.shape[:2] != (h, w):
        raise ValueError(f"box {recipe['box']} does not fit in sample {recipe['sample']!r}")
    return px


def source_pixels(recipe: dict) -> np.ndarray:
    """The (H, W, C) uint8 source a recipe describes: a crop of a bundled sample, with
    ``alpha`` the first channel of a crop of another one appended."""
    px = _crop(recipe)
    if "alpha" in recipe:
        px = np.concatenate([px, _crop(recipe["alpha"])[:, :, :1]], axis=2)
    return np.ascontiguousarray(px)


def encode_settings(entry: dict) -> EncodeSettings:
    """The encoder settings a fixture was written with."""
    s = entry["settings"]
    max_error = s["max_error"] if isinstance(s["max_error"], int) else tuple(s["max_error"])
    layers = None if s.get("layers") is None else tuple(tuple(r) for r in s["layers"])
    extra = {"layers": layers, "effort": s["effort"]} if "effort" in s else {"layers": layers}
    if s.get("colour_layers") is not None:
        extra["colour_layers"] = tuple(tuple(r) for r in s["colour_layers"])
    return EncodeSettings(max_error, s["generative_levels"], s["levels"], version=entry["version"], **extra)
