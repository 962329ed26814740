"""The race's verdict against a timeline computed by hand."""

from __future__ import annotations

import pytest

from hidenet_core.tools.contenders import Event, Racer, verdict


def test_verdict_of_a_hand_computed_race():
    # hideNet: 20 dB at 300 ms, 31 at 900, 36 at 1500, exact at 2000.
    # JPEG:    25 dB at 400 ms, 35.5 at 640 (final).
    # The race runs from 300 ms (first paint) to 2000 ms (last event): 1700 ms.
    #   300-400   hideNet 20 vs nothing        -> hideNet   100 ms
    #   400-640   20 vs 25                     -> JPEG      240 ms
    #   640-900   20 vs 35.5                   -> JPEG      260 ms
    #   900-1500  31 vs 35.5                   -> JPEG      600 ms
    #   1500-2000 36 vs 35.5                   -> hideNet   500 ms
    # hideNet 600 / 1700 = 0.3529; JPEG 1100 / 1700 = 0.6471.
    hidenet = Racer("hidenet", "hideNet", 359323, (
        Event(300, 2523, 20.0), Event(900, 40000, 31.0), Event(1500, 150000, 36.0), Event(2000, 359323, None)))
    jpeg = Racer("pjpeg:90", "JPEG q90", 63734, (Event(400, 5362, 25.0), Event(640, 63734, 35.5)))
    v = verdict([hidenet, jpeg])
    h, j = v["racers"]
    assert v["thresholds_db"] == [30, 35, 40]
    assert h == {"key": "hidenet", "label": "hideNet", "first_ms": 300,
                 "to_db_ms": {"30": 900, "35": 1500, "40": 2000},
                 "final_ms": 2000, "final_psnr": None, "exact": True, "bytes": 359323,
                 "best_share": pytest.approx(600 / 1700, abs=1e-4)}
    assert j == {"key": "pjpeg:90", "label": "JPEG q90", "first_ms": 400,
                 "to_db_ms": {"30": 640, "35": 640, "40": None},
                 "final_ms": 640, "final_psnr": 35.5, "exact": False, "bytes": 63734,
                 "best_share": pytest.approx(1100 / 1700, abs=1e-4)}
    assert v["sentence"] == ("JPEG q90 showed the better picture for 65% of the time and finished at 0.64 s "
                             "at 35.5 dB; hideNet was exact at 2.00 s.")


def test_ties_count_for_each_and_a_third_racer_makes_it_the_best():
    a = Racer("a", "A", 10, (Event(0, 1, 30.0), Event(100, 10, None)))
    b = Racer("b", "B", 10, (Event(0, 1, 30.0), Event(50, 10, None)))
    c = Racer("c", "C", 10, (Event(200, 10, 20.0),))
    v = verdict([a, b, c])
    # 0-50: A=B=30 (both); 50-100: B exact; 100-200: both exact. Span 200.
    assert [r["best_share"] for r in v["racers"]] == [pytest.approx(0.75), 1.0, 0.0]
    assert v["sentence"].startswith("B showed the best picture for 100% of the time and was exact at 0.05 s; A ")
    assert v["racers"][2]["to_db_ms"] == {"30": None, "35": None, "40": None}


def test_a_race_that_took_no_time_has_no_share():
    a = Racer("hidenet", "hideNet", 10, (Event(0, 5, 25.0), Event(0, 10, None)))
    b = Racer("png", "PNG", 20, (Event(0, 20, None),))
    v = verdict([a, b])
    assert [r["best_share"] for r in v["racers"]] == [None, None]
    assert v["sentence"] == "Everything arrived at once: hideNet was exact at 0.00 s; PNG was exact at 0.00 s."
    alone = verdict([a])
    assert alone["sentence"] == "hideNet was exact at 0.00 s."
    assert verdict([Racer("x", "X", 0, ())])["racers"][0]["first_ms"] is None
