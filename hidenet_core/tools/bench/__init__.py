"""``hidenet bench``: hideNet against the codecs people use, on the same images in one run.

Sections (one module each): ``lossless`` (bits per pixel, encode/decode time against
PNG, WebP, JPEG 2000, JPEG-LS, JPEG XL), ``progressive`` (quality after N bytes
against a progressive JPEG and a bicubic upscale), ``prediction`` (per-level PSNR of
the predicted odd pixels against bicubic), ``serving`` (the server's load test);
``runner`` runs them, ``report`` writes results.json, results.md and plots.
Methodology: docs/bench.md.
"""

from .report import PLOTS, render_markdown, write_outputs
from .runner import BenchConfig, run_bench

__all__ = ["BenchConfig", "run_bench", "write_outputs", "render_markdown", "PLOTS"]
