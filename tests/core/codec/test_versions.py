"""The format table: one record per version, read by the encoder, the decoder and the bounds."""

from __future__ import annotations

import dataclasses

import pytest

from hidenet_core import EncodeSettings, HdnFormatError, encode, read_header
from hidenet_core.codec.container import Header, pack_header
from hidenet_core.codec.versions import FORMATS, VERSION, VERSIONS, FormatVersion, Refinement, format_version
from tests.conftest import smooth_image


def test_the_table_is_read_by_number():
    assert VERSIONS == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10) and max(VERSIONS) == VERSION
    assert all(FORMATS[v].number == v for v in VERSIONS)
    with pytest.raises(ValueError, match="unknown .hdn format version 11"):
        format_version(11)


def test_each_version_adds_its_stage():
    v1, v2, v3, v4, v5, v6, v7, v8, v9, v10 = (format_version(v) for v in VERSIONS)
    assert not v1.calibration and v1.refinement is Refinement.NONE
    assert v2.coupling and not v2.rounds_by_phase and v2.scale_bound == 8
    assert v3.linear and v3.rounds_by_phase and v3.scale_bound == 16 and not v3.scale_context
    assert v4.scale_context and not v4.preview_filter
    assert v5.preview_filter and not v5.layered
    assert v6.layered and v6.preview_filter and v6.part_positions and v6.strip_positions and v6.halo_rows
    assert not any(format_version(v).value_tables for v in range(1, 7))
    assert v7.value_tables and v7 == dataclasses.replace(v6, number=7, value_tables=True)
    assert not any(format_version(v).exact_network for v in range(1, 8))
    assert v8 == dataclasses.replace(v7, number=8, exact_network=True)
    assert not any(format_version(v).untruncated_mode for v in range(1, 9))
    assert v9 == dataclasses.replace(v8, number=9, untruncated_mode=True)
    assert not any(format_version(v).colour_layers for v in range(1, 10))
    assert v10 == dataclasses.replace(v9, number=10, colour_layers=True)


def test_inconsistent_records_are_refused():
    with pytest.raises(ValueError, match="need calibration"):
        FormatVersion(9, calibration=False, refinement=Refinement.LINEAR, rounds_by_phase=True, scale_bound=0,
                      scale_context=False, preview_filter=False)
    with pytest.raises(ValueError, match="scale context"):
        FormatVersion(9, calibration=True, refinement=Refinement.COUPLING, rounds_by_phase=False, scale_bound=8,
                      scale_context=True, preview_filter=False)


def test_which_levels_are_calibrated_and_filtered():
    v5 = format_version(5)
    assert v5.calibrated(64, 64) and not v5.calibrated(64, 63)
    shapes = [(131, 129), (66, 65), (33, 33), (17, 17)]
    assert [v5.carries_filter(shapes, k) for k in (-1, 0, 1, 2)] == [False, True, True, False]
    assert not any(format_version(4).carries_filter(shapes, k) for k in (0, 1, 2))


def test_settings_take_a_version_and_write_it(interp):
    image = smooth_image(20, 24, 3)
    for version in VERSIONS:
        assert read_header(encode(image, interp, EncodeSettings(version=version))).version == version
    with pytest.raises(ValueError, match="unknown .hdn format version 0"):
        EncodeSettings(version=0)


def test_the_decoder_refuses_versions_outside_the_table():
    header = Header(4, 4, 3, 0, (0,), 0, "interp", bytes(16), version=5)
    data = bytearray(pack_header(header))
    data[8] = 11
    with pytest.raises(HdnFormatError, match="unsupported .hdn format version 11"):
        read_header(bytes(data))
