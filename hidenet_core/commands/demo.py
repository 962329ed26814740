"""``hidenet demo``: encode and decode the bundled samples, print sizes and timings."""

from __future__ import annotations

import argparse
import io
import time

from PIL import Image

from ..codec.decoder import decode_image
from ..codec.encoder import encode
from ..imageio import load_image
from ..predictors import load_model
from ..samples import sample_paths
from .options import add_model_option

HELP = "encode and decode the bundled samples; print sizes and timings"


def configure(p: argparse.ArgumentParser) -> None:
    add_model_option(p)


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    print(f"model: {args.model} ({model.name})")
    print(f"{'image':<12} {'size':>9} {'hdn bpp':>8} {'png bpp':>8} {'encode s':>9} {'decode s':>9} {'exact':>6}")
    rows = []
    for path in sample_paths():
        px = load_image(path).pixels
        t0 = time.perf_counter()
        data = encode(px, model)
        t1 = time.perf_counter()
        out = decode_image(data, model)
        t2 = time.perf_counter()
        buf = io.BytesIO()
        Image.open(path).save(buf, "PNG", optimize=True)
        n = px.shape[0] * px.shape[1]
        rows.append((len(data) * 8 / n, buf.tell() * 8 / n, t1 - t0, t2 - t1))
        print(f"{path.stem:<12} {px.shape[1]:>4}x{px.shape[0]:<4} {len(data) * 8 / n:>8.3f} {buf.tell() * 8 / n:>8.3f} "
              f"{t1 - t0:>9.2f} {t2 - t1:>9.2f} {str(bool((out == px).all())):>6}")
    mean = [sum(r[i] for r in rows) / len(rows) for i in range(4)]
    print(f"{'mean':<12} {'':>9} {mean[0]:>8.3f} {mean[1]:>8.3f} {mean[2]:>9.2f} {mean[3]:>9.2f}")
    return 0
