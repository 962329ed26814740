"""``hidenet bench --scaling``: the images it cuts, one measured run, its table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from hidenet_core.samples import sample_paths
from hidenet_core.tools.bench.scaling import prepare_images, run_scaling, scaling_markdown


def test_sizes_are_crops_where_a_photograph_is_large_enough_else_scaled_up(tmp_path: Path):
    images = prepare_images(sample_paths(), (0.05, 1.0), tmp_path, log=lambda _: None)
    crop, up = images
    assert "centre crop" in crop["source"] and "scaled up" in up["source"]
    for rec, mp in zip(images, (0.05, 1.0)):
        assert abs(rec["width"] * rec["height"] / (mp * 1e6) - 1) < 0.02
        assert np.asarray(Image.open(rec["file"])).shape[:2] == (rec["height"], rec["width"])


def test_one_run_reports_time_memory_and_an_exact_decode(tmp_path: Path):
    results = run_scaling(sample_paths()[:1], tmp_path, sizes_mp=(0.004,), efforts=(1,), contenders=(),
                          timeout_s=600, log=lambda _: None)
    (row,) = results["rows"]
    assert row["label"] == "hideNet effort 1"
    for op in ("encode", "decode"):
        assert "error" not in row[op], row[op]
        assert row[op]["seconds"] > 0 and row[op]["peak_mb"] > 50
    assert row["decode"]["exact"] and row["bpp"] > 0 and row["encode"]["first_chunk_s"] is not None
    table = scaling_markdown(results)
    assert "hideNet effort 1" in table and "idle" in table
    assert not list(tmp_path.glob("*.bin")) and not list(tmp_path.glob("*.png"))  # the work files are removed
