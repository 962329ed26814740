"""Link presets, custom links, and the arrival schedule."""

from __future__ import annotations

import pytest

from server.streaming.links import PRESETS, LinkError, LinkSchedule, arrival_ms, parse_link

PUBLISHED = {  # id: (down kbps, rtt ms, source)
    "2g": (280, 800, "WebPageTest"),
    "3g-slow": (400, 400, "WebPageTest"),
    "3g": (1600, 300, "WebPageTest"),
    "4g": (9000, 170, "WebPageTest"),
    "dsl": (1500, 50, "WebPageTest"),
    "cable": (5000, 28, "WebPageTest"),
    "devtools-3g": (400, 2000, "Chrome DevTools"),
    "devtools-slow-4g": (1440, 562.5, "Chrome DevTools"),
    "devtools-fast-4g": (8100, 165, "Chrome DevTools"),
}


def test_presets_carry_the_published_numbers():
    assert set(PRESETS) == set(PUBLISHED) | {"unlimited"}
    for key, (down, rtt, source) in PUBLISHED.items():
        link = PRESETS[key]
        assert (link.down_kbps, link.rtt_ms, link.source) == (down, rtt, source)
        assert link.name
    assert PRESETS["unlimited"].down_kbps is None and PRESETS["unlimited"].rtt_ms == 0


def test_schedule_is_one_rtt_then_the_link_rate():
    link = PRESETS["3g"]  # 1600 kbit/s = 200 bytes/ms, 300 ms
    assert arrival_ms(link, 0) == 300
    assert arrival_ms(link, 2000) == pytest.approx(310)
    assert [arrival_ms(link, n) for n in (200, 400_000)] == pytest.approx([301, 2300])
    assert [arrival_ms(PRESETS["unlimited"], n) for n in (10, 10**9)] == [0, 0]


def test_a_stream_made_before_it_is_needed_follows_the_ideal_schedule():
    link, schedule = PRESETS["3g"], LinkSchedule(PRESETS["3g"])
    ends = [100, 2100, 40_000]
    assert [schedule.arrive(s, e, 0.0) for s, e in zip([20, *ends], ends)] == [arrival_ms(link, e) for e in ends]


def test_a_chunk_made_late_arrives_after_it_is_made_and_delays_the_rest():
    schedule = LinkSchedule(PRESETS["3g"])  # 200 bytes/ms, 300 ms
    assert schedule.arrive(20, 2020, 0.0) == pytest.approx(310.1)
    # made at 1000 ms: sent from then, 300 ms to arrive and 10 ms for its 2000 bytes
    assert schedule.arrive(2020, 4020, 1000.0) == pytest.approx(1310)
    assert schedule.delay_ms > 0
    # made long ago, but the link is busy with its late predecessor: the delay stays
    assert schedule.arrive(4020, 6020, 0.0) == pytest.approx(1320)
    unlimited = LinkSchedule(PRESETS["unlimited"])  # bytes arrive the moment they are made
    assert [unlimited.arrive(0, 10, m) for m in (0.0, 50.0, 20.0)] == [0.0, 50.0, 50.0]


def test_custom_link():
    link = parse_link({"down_kbps": 1000, "rtt_ms": 20.5})
    assert (link.id, link.down_kbps, link.rtt_ms) == ("custom", 1000, 20.5)
    assert arrival_ms(link, 1000) == pytest.approx(28.5)


@pytest.mark.parametrize("bad", [
    "5g", 3, None, [1, 2], {"down_kbps": 0, "rtt_ms": 10}, {"down_kbps": 100, "rtt_ms": -1},
    {"down_kbps": 100, "rtt_ms": 70_000}, {"down_kbps": 1e9, "rtt_ms": 1}, {"down_kbps": "100", "rtt_ms": 1},
    {"down_kbps": True, "rtt_ms": 1}, {"down_kbps": 100}, {"down_kbps": 100, "rtt_ms": 1, "loss": 0.1},
])
def test_bad_links_are_refused_with_a_reason(bad):
    with pytest.raises(LinkError, match=r"link|down_kbps|rtt_ms"):
        parse_link(bad)
