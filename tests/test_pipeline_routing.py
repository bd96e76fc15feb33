"""Series routing: which series qualifies, which wins, and the recorded reasons."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.routing import SeriesSummary, check_series, load_rules, route_study
from spinescreen.errors import ConfigError

RULES = load_rules()
AXIAL = SeriesSummary(
    series_instance_uid="1.1",
    study_instance_uid="1",
    modality="CT",
    sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
    image_type=("ORIGINAL", "PRIMARY", "AXIAL"),
    slice_thickness_mm=1.0,
    number_of_slices=400,
    slice_normal=(0.0, 0.0, 1.0),
    coverage_mm=400.0,
    body_part="ABDOMEN",
)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"modality": "MR"}, "modality MR is not one of CT"),
        ({"sop_class_uid": "1.2.840.10008.5.1.4.1.1.7"}, "not a CT image storage class"),
        ({"image_type": ("ORIGINAL", "PRIMARY", "LOCALIZER")}, "is LOCALIZER"),
        ({"image_type": ("DERIVED", "SECONDARY", "MPR")}, "lacks ORIGINAL, PRIMARY"),
        ({"slice_thickness_mm": 8.0}, "SliceThickness 8 mm outside 0.3-5 mm"),
        ({"slice_thickness_mm": None}, "SliceThickness is missing"),
        ({"number_of_slices": 12}, "12 slices, fewer than 20"),
        ({"coverage_mm": 20.0}, "covers 20.0 mm, less than 30 mm"),
        ({"slice_normal": (0.0, 1.0, 0.0)}, "not axial: slice normal 90 deg"),
        ({"body_part": "HEAD"}, "BodyPartExamined HEAD"),
    ],
)
def test_each_rule_rejects_with_its_reason(change: dict[str, object], reason: str) -> None:
    rejected = check_series(replace(AXIAL, **change), RULES)  # type: ignore[arg-type]
    assert rejected is not None and reason in rejected, rejected
    assert check_series(AXIAL, RULES) is None


def test_best_series_is_the_thinnest_among_those_covering_the_spine() -> None:
    thin_short = replace(
        AXIAL, series_instance_uid="thin-short", slice_thickness_mm=0.6, coverage_mm=150.0
    )
    thick_wide = replace(AXIAL, series_instance_uid="thick-wide", slice_thickness_mm=3.0)
    thin_wide = replace(
        AXIAL, series_instance_uid="thin-wide", slice_thickness_mm=1.0, coverage_mm=380.0
    )
    scout = replace(
        AXIAL, series_instance_uid="scout", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")
    )
    best, decisions = route_study([thin_short, thick_wide, thin_wide, scout], RULES)
    assert best is not None and best.series_instance_uid == "thin-wide"
    reasons = {d.series_instance_uid: d.reason for d in decisions}
    assert reasons["thin-wide"] == "selected"
    assert "covers more or is thinner" in reasons["thick-wide"]
    assert "LOCALIZER" in reasons["scout"]
    assert all(d.reason for d in decisions)


def test_no_candidate_gives_no_series_and_reasons_for_all() -> None:
    best, decisions = route_study([replace(AXIAL, modality="SR")], RULES)
    assert best is None and not decisions[0].accepted and "SR" in decisions[0].reason


def test_check_series_accepts_or_names_the_broken_rule() -> None:
    assert check_series(AXIAL, RULES) is None
    reason = check_series(replace(AXIAL, number_of_slices=2), RULES)
    assert reason is not None and "2 slices" in reason


def test_invalid_rules_file_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("min_slice: 3\n")
    with pytest.raises(ConfigError, match="min_slice"):
        load_rules(path)
