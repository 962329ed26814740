"""The contenders hideNet races: image formats as a browser shows them while they arrive.

One module per format, each behind the small ``Contender`` interface (``base``):
progressive JPEG (``pjpeg``), baseline JPEG drawn top-down (``jpeg``), interlaced PNG
pass by pass (``png``), WebP lossless and lossy drawn top-down (``webp``), and JPEG 2000
layer by layer (``j2k``). ``build_timeline`` turns a contender and an image into the
frames a browser repaints, measured; ``verdict`` says who won. The server's race,
``hidenet fetch`` and ``hidenet bench`` all use this package.

JPEG XL is not a contender: libjxl can show a truncated file, but neither binding this
project uses exposes that (imagecodecs' ``jpegxl_decode`` answers every prefix of a
file with JXL_DEC_NEED_MORE_INPUT; Pillow has no JPEG XL).
"""

from .base import EMPTY_GREY, Contender, ContenderError, Cut, QualityRange, Shown, visible
from .registry import CONTENDERS, contenders_json
from .timeline import MAX_CONTENDERS, BuildCancelled, Frame, Spec, Timeline, build_timeline, parse_spec, score
from .verdict import THRESHOLDS_DB, Event, Racer, verdict

__all__ = [
    "Contender",
    "ContenderError",
    "Cut",
    "Shown",
    "QualityRange",
    "visible",
    "EMPTY_GREY",
    "CONTENDERS",
    "contenders_json",
    "Spec",
    "parse_spec",
    "Frame",
    "Timeline",
    "build_timeline",
    "BuildCancelled",
    "score",
    "MAX_CONTENDERS",
    "Event",
    "Racer",
    "verdict",
    "THRESHOLDS_DB",
]
