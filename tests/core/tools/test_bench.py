"""``hidenet bench``: a quick run on two tiny images, and the pieces its figures rest on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from hidenet_core.cli import main
from hidenet_core.imageio import image_files
from hidenet_core.tools.bench import PLOTS
from hidenet_core.tools.bench.images import load_images
from hidenet_core.tools.bench.lossless import anchor_codecs, same_pixels
from hidenet_core.tools.bench.resample import bicubic_upscale
from tests.conftest import smooth_image


@pytest.fixture
def tiny_dir(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(smooth_image(40, 56, 3, seed=1)).save(folder / "a.png")
    Image.fromarray(smooth_image(33, 47, 1, seed=2)[:, :, 0]).save(folder / "b.png")
    (folder / "notes.txt").write_text("not an image, ignored")
    return folder


def test_quick_run_writes_complete_outputs(tiny_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["bench", str(tiny_dir), "--out", str(out), "--quick", "--no-serving", "--no-progress", "--model",
               "interp"])
    assert rc == 0
    assert "wrote" in capsys.readouterr().out

    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"meta", "images", "lossless", "progressive", "prediction", "generative", "serving"}
    assert [im["image"] for im in results["images"]] == ["a", "b"]
    assert results["meta"]["config"]["quick"] is True

    ll = results["lossless"]
    assert set(ll["codecs"]) == {"hidenet", "hidenet_res", "png", "webp", "jpeg2k", "jpegls", "jpegxl"}
    for key, codec in ll["codecs"].items():
        if not codec["available"]:
            assert codec["reason"]
            continue
        mean = ll["mean"][key]
        assert mean["all_lossless"], key
        assert mean["bpp"] > 0 and mean["encode_s"] > 0 and mean["decode_s"] > 0
        assert mean["encode_ratio"] > 0 and mean["decode_ratio"] > 0
    assert ll["mean"]["png"]["encode_ratio"] == pytest.approx(1.0)
    for row in ll["per_image"]:
        assert row["codecs"]["hidenet"]["lossless"] is True and row["codecs"]["hidenet_res"]["lossless"] is True
    # the layered stream's bytes over the resolution-only stream's, per image (the layers' cost)
    over = ll["layered_overhead"]
    assert set(over["per_image"]) == {"a", "b"} and over["max"] == max(over["per_image"].values())
    for row in ll["per_image"]:
        codecs = row["codecs"]
        assert over["per_image"][row["image"]] == codecs["hidenet"]["bytes"] / codecs["hidenet_res"]["bytes"]

    pr = results["progressive"]
    assert pr["budgets_kb"] == [2, 4, 8, 16, 32, 64]
    for key in ("hidenet", "hidenet_res", "bicubic", "jpeg"):
        for metric in ("psnr", "ssim"):
            values = pr["mean"]["series"][key][metric]
            assert len(values) == 6 and isinstance(values[0], float)
            assert all(isinstance(v, float) or (v is None and metric == "psnr") for v in values)
    assert len(pr["mean"]["hidenet_minus_jpeg_db"]) == 6 and len(pr["mean"]["hidenet_minus_resolution_db"]) == 6
    # the resolution-only series is the lossless --no-layers stream the lossless section measured
    for im, row in zip(pr["per_image"], ll["per_image"]):
        assert im["streams"]["hidenet_res"]["bytes"] == im["resolution_bytes"] == row["codecs"]["hidenet_res"]["bytes"]
        assert im["hidenet_bytes"] == row["codecs"]["hidenet"]["bytes"]
        assert [c["layer"] for c in im["streams"]["hidenet_res"]["level_ends"]] == [0] * len(
            im["streams"]["hidenet_res"]["level_ends"])
    # the race's contenders, measured as the race shows them
    assert list(pr["contenders"]) == ["jpeg:90", "png", "webp-lossless", "webp:80", "j2k"]
    for key in pr["contenders"]:
        assert all(isinstance(v, float) or v is None for v in pr["mean"]["series"][key]["psnr"])
        for im in pr["per_image"]:
            ends = im["contender_files"][key]["repaint_ends"]
            assert ends == sorted(ends) and ends[-1] == im["contender_files"][key]["bytes"]
    for key in ("png", "webp-lossless", "j2k"):  # lossless and small: exact (infinite, null) once complete
        assert pr["mean"]["series"][key]["psnr"][-1] is None
    # tiny images: everything has arrived by 64 KB, so hideNet shows the exact image: infinite
    # PSNR (null in JSON, "exact" in the table), never averaged into a finite figure
    assert all(im["series"]["hidenet"][-1]["unit"] == len(im["streams"]["hidenet"]["level_ends"])
               for im in pr["per_image"])
    assert all(im["series"]["hidenet"][-1]["psnr"] is None for im in pr["per_image"])
    assert pr["mean"]["series"]["hidenet"]["psnr"][-1] is None and pr["mean"]["hidenet_ahead"][-1] is True
    assert pr["mean"]["hidenet_minus_jpeg_db"][-1] is None
    # what the display filter changes in the preview's PSNR, per budget (a note under the table)
    assert len(pr["mean"]["display_filter_db"]) == 6 and pr["mean"]["display_filter_db"][-1] == 0

    levels = results["prediction"]["mean"]
    assert levels and levels[0]["level"] == 0
    assert {"model_psnr", "model_filtered_psnr", "model_in_loop_psnr", "bicubic_psnr", "gain_db",
            "filtered_gain_db"} <= set(levels[0])
    gen = results["generative"]["mean"]
    assert [r["g"] for r in gen] == [1] and gen[0]["images"] == 2  # the tiny images have one level
    for key in ("filtered", "plain"):
        assert gen[0][key]["bytes"] > 0 and 0 < gen[0][key]["fraction"] < 1 and 10 < gen[0][key]["psnr"] < 100
    # one predicted level (g = 1) leaves no dotted grid: the display filter changes nothing
    assert gen[0]["display"]["psnr"] == gen[0]["filtered"]["psnr"]
    assert gen[0]["display"]["contrast_before"] == gen[0]["display"]["contrast_after"]
    assert results["serving"] == {"available": False, "reason": "skipped (--no-serving)"}

    md = (out / "results.md").read_text()
    for heading in ("## Lossless", "## Quality after N bytes received", "## Prediction", "## Generative levels",
                    "## Serving", "## Where hideNet is behind"):
        assert heading in md
    assert "| hideNet |" in md and "| hideNet resolution-only |" in md and "| 64 KB | exact / 1.000 |" in md
    assert "pooled" in md and "layered - resolution-only (dB)" in md and "Layered / resolution-only" in md
    assert "### Every contender of the race" in md and "| WebP q80 |" in md
    assert "display filter" in md
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({name})" in md or name == "results-serving.png"


def test_progressive_psnr_pools_the_squared_errors_of_the_images():
    """An exact image adds no error to the pool; it is not an infinite (or capped) number of
    decibels in a mean: one image exact and one at 30 dB pool to 33.01 dB, not 65."""
    from hidenet_core.tools.bench.progressive import pooled

    count = 3 * 64 * 64
    at_30_db = {"sse": count * 255.0**2 / 1000, "count": count, "ssim": 0.8}
    exact = {"sse": 0.0, "count": count, "ssim": 1.0}
    assert pooled([at_30_db])["psnr"] == pytest.approx(30.0)
    assert pooled([exact, at_30_db]) == {"psnr": pytest.approx(30 + 10 * np.log10(2)), "ssim": pytest.approx(0.9)}
    assert pooled([exact, exact])["psnr"] == float("inf")


def test_missing_folder_is_a_clean_error(tmp_path, capsys):
    assert main(["bench", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "hidenet: error:" in capsys.readouterr().err


def test_folder_without_images_is_a_clean_error(tmp_path, capsys):
    assert main(["bench", str(tmp_path), "--out", str(tmp_path / "o"), "--no-progress", "--model", "interp"]) == 2
    assert "no images" in capsys.readouterr().err


def test_crop_measures_the_central_part_of_each_image(tiny_dir):
    images = load_images(image_files(tiny_dir), crop=(24, 16))
    assert [(im.name, im.width, im.height) for im in images] == [("a", 24, 16), ("b", 24, 16)]
    full = load_images(image_files(tiny_dir))[0].pixels
    assert np.array_equal(images[0].pixels, full[12:28, 16:40])


def test_a_bad_crop_size_is_a_clean_error(tiny_dir, tmp_path, capsys):
    for bad in ("768", "0x512", "axb"):
        with pytest.raises(SystemExit):
            main(["bench", str(tiny_dir), "--out", str(tmp_path / "o"), "--crop", bad])
        err = capsys.readouterr().err
        assert "--crop" in err and ("WIDTHxHEIGHT" in err or "outside" in err), err


def test_anchor_codecs_round_trip_grey_colour_and_alpha():
    for c in (1, 3, 4):
        px = smooth_image(21, 30, c, seed=c)
        for codec in anchor_codecs():
            if codec.available:
                assert same_pixels(codec.decode(codec.encode(px)), px), (codec.key, c)


def test_bicubic_upscale_keeps_the_pyramid_grid():
    px = smooth_image(37, 53, 3)
    for k in (1, 2, 3):
        f = 2**k
        level = px[::f, ::f]
        up = bicubic_upscale(level, f, px.shape[:2])
        assert up.shape == px.shape
        # the kept pixels land on their own positions (the cubic kernel is 1 at 0, 0 at other integers)
        assert np.abs(up[::f, ::f].astype(int) - level.astype(int)).max() <= 1


def test_serving_rows_carry_ratios_to_the_single_stream_figures():
    from hidenet_core.tools.bench.serving import rows_from_loadtest

    def run(n, p50, p95):
        return {"streams": n, "completed": n, "errors": 0, "first_level_ms_p50": p50, "first_level_ms_p95": p95,
                "lag_ms_p50": 1.0, "lag_ms_p95": 2.0, "lag_ms_max": 3.0, "levels_per_stream": 5, "wall_s": 0.5,
                "rss_mb_max": 300.0, "peak_rss_mb": 310.0}

    rows = rows_from_loadtest({"runs": [run(1, 20.0, 25.0), run(8, 50.0, 80.0)]})
    assert [r["streams"] for r in rows] == [1, 8]
    assert rows[0]["ttfl_p50_ratio"] == 1.0
    assert rows[1]["ttfl_p50_ratio"] == 2.5 and rows[1]["ttfl_p95_ratio"] == 80.0 / 25.0


@pytest.mark.slow
def test_serving_section_against_a_real_server():
    import os

    from hidenet_core.tools.bench.images import BenchImage
    from hidenet_core.tools.bench.serving import run_serving
    from server.clients.proxy import nginx_binary

    result = run_serving([BenchImage("tiny", smooth_image(48, 64, 3))], "interp", (1, 2))
    assert result["available"], result.get("reason")
    assert [r["streams"] for r in result["rows"]] == [1, 2]
    assert all(r["errors"] == 0 and r["ttfl_p50_ms"] > 0 for r in result["rows"])
    assert result["server_exit_code"] == 0
    proxied = result["proxied"]  # 2 processes behind nginx, 64 streams
    if nginx_binary() is None and not os.environ.get("CI"):
        assert not proxied["available"] and "nginx" in proxied["reason"]
        return
    assert proxied["available"], proxied.get("reason")
    (row,) = proxied["rows"]
    assert (row["streams"], row["errors"], proxied["server_exit_code"]) == (64, 0, 0) and row["ttfl_p95_ratio"] > 0


def test_behind_names_the_images_where_hidenet_is_larger_and_what_the_layers_cost():
    from hidenet_core.tools.bench.report import behind

    def codec(label, nbytes):
        return {"label": label, "bytes": nbytes}

    per_image = [{"image": "a", "codecs": {"hidenet": {"bytes": 110}, "hidenet_res": {"bytes": 100},
                                           "webp": {"bytes": 105}}},
                 {"image": "b", "codecs": {"hidenet": {"bytes": 90}, "hidenet_res": {"bytes": 88},
                                           "webp": {"bytes": 120}}}]
    results = {
        "lossless": {"codecs": {"hidenet": codec("hideNet", 0), "hidenet_res": codec("hideNet resolution-only", 0),
                                "webp": codec("WebP lossless", 0)},
                     "mean": {"hidenet": {"bpp": 8.0}, "hidenet_res": {"bpp": 7.8}, "webp": {"bpp": 8.5}},
                     "per_image": per_image,
                     "layered_overhead": {"per_image": {"a": 1.1, "b": 90 / 88}, "mean": 1.06, "max": 1.1,
                                          "max_image": "a"}},
        "progressive": {"budgets_kb": [2, 4], "contenders": {},
                        "mean": {"hidenet_minus_jpeg_db": [1.0, -0.5], "hidenet_minus_resolution_db": [0.2, -0.4],
                                 "series": {"hidenet": {"psnr": [20.0, 25.0]}, "bicubic": {"psnr": [19.0, 24.0]}}}},
        "prediction": {"mean": []},
        "serving": {"available": False},
    }
    out = behind(results)
    assert "Lossless size: hideNet is larger than WebP lossless on a (smaller on average)." in out
    assert not any("resolution-only (7.800 bpp)" in line for line in out)  # not an anchor
    assert ("Layers: the layered lossless stream is 6.0% larger than the resolution-only one on average "
            "(10.0% on a).") in out
    assert any(line.startswith("Progressive: the layered stream shows a worse image") and "4 KB (0.40 dB)" in line
               for line in out)
    assert any("progressive JPEG shows a better image (PSNR) at 4 KB (0.5 dB ahead)" in line for line in out)
