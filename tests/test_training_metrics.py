"""Evaluation metrics on hand-computed cases."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from models.segmenter import SegmentationResult
from training.datasets.synthetic import SyntheticSource
from training.evaluation import VertebraOutcome, evaluate_case, summarise
from training.metrics import (
    binary_stats,
    confusion_matrix,
    dice_per_label,
    identify,
    label_centroids_mm,
    roc_auc,
    roc_curve,
)
from training.report import render_markdown


def test_dice_per_label_by_hand() -> None:
    truth = np.zeros((4, 4, 4), dtype=np.uint8)
    predicted = np.zeros_like(truth)
    truth[0, 0, :4] = 1  # 4 voxels
    predicted[0, 0, :2] = 1  # 2 overlap
    predicted[1, 1, :2] = 1  # 2 extra
    truth[3, 3, 3] = 2  # missed entirely
    scores = dice_per_label(predicted, truth)
    assert scores[1] == pytest.approx(0.5), f"dice(1) = {scores[1]}, expected 2*2/(4+4)"
    assert scores[2] == 0.0
    assert set(scores) == {1, 2}


def test_centroids_go_through_the_affine() -> None:
    labels = np.zeros((5, 5, 5), dtype=np.uint8)
    labels[1:4, 2, 4] = 7  # centre voxel (2, 2, 4)
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = (10.0, 0.0, -5.0)
    assert label_centroids_mm(labels, affine)[7] == pytest.approx((14.0, 6.0, 11.0))


def test_identification_follows_the_verse_20_mm_rule() -> None:
    predicted = {20: (0.0, 0.0, 0.0), 21: (0.0, 0.0, 30.0)}
    truth = {20: (0.0, 0.0, 5.0), 21: (0.0, 0.0, 60.0), 22: (0.0, 0.0, 32.0)}
    result = identify(predicted, truth)
    assert result.identified == {20: True, 21: False, 22: False}
    assert result.localisation_mm == pytest.approx({20: 5.0, 21: 30.0})
    assert result.rate == pytest.approx(1 / 3)
    assert result.mean_localisation_mm == pytest.approx(17.5)
    assert identify({}, truth).rate == 0.0


def test_binary_stats_and_auc_by_hand() -> None:
    scores = [0.9, 0.8, 0.4, 0.3, 0.6]
    truth = [True, True, True, False, False]
    stats = binary_stats(scores, truth, threshold=0.5)
    assert (stats.tp, stats.fn, stats.fp, stats.tn) == (2, 1, 1, 1)
    assert stats.sensitivity == pytest.approx(2 / 3)
    assert stats.specificity == pytest.approx(1 / 2)
    assert stats.ppv == pytest.approx(2 / 3)
    assert stats.npv == pytest.approx(1 / 2)
    assert stats.auc == pytest.approx(5 / 6), f"AUC {stats.auc}, expected 5 of 6 pairs ordered"


def test_auc_counts_ties_as_half_and_is_undefined_for_one_class() -> None:
    assert roc_auc([0.5, 0.5], [True, False]) == pytest.approx(0.5)
    assert math.isnan(roc_auc([0.1, 0.2], [False, False]))
    assert math.isnan(binary_stats([0.1], [False], 0.5).sensitivity)


def test_roc_curve_runs_from_origin_to_one() -> None:
    fpr, tpr = roc_curve([0.9, 0.1, 0.5], [True, False, True])
    assert (fpr[0], tpr[0]) == (0.0, 0.0)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert tpr[2] == 1.0 and fpr[2] == 0.0  # both positives above the negative


def test_confusion_matrix_rows_are_truth() -> None:
    matrix = confusion_matrix([0, 0, 2, 3], [0, 1, 2, 2])
    assert matrix[0] == [1, 1, 0, 0]
    assert matrix[2][2] == 1 and matrix[3][2] == 1
    assert sum(map(sum, matrix)) == 4


def _outcome(case: str, label: int, grade: int, p1: float, p2: float) -> VertebraOutcome:
    return VertebraOutcome(case, label, True, grade, 0.9, True, 2.0, p1, p2, int(p1 >= 0.5))


def test_summary_patient_level_takes_the_most_suspicious_vertebra() -> None:
    outcomes = [
        _outcome("a", 20, 2, 0.9, 0.8),  # fractured patient, found
        _outcome("a", 21, 0, 0.1, 0.0),
        _outcome("b", 20, 0, 0.6, 0.2),  # healthy patient, grade>=1 false alarm
        _outcome("b", 21, 0, 0.2, 0.1),
        _outcome("c", 20, 1, 0.3, 0.1),  # grade 1 missed
    ]
    summary = summarise(outcomes, ["a", "b", "c"], [0.9, 0.8, 1.0])
    assert summary["mean_dice"] == pytest.approx(0.9)
    assert summary["mean_foreground_dice"] == pytest.approx(0.9)
    fracture = summary["fracture"]
    g1, g2 = fracture["grade>=1"], fracture["grade>=2"]
    assert g1["patient"]["tp"] == 1 and g1["patient"]["fp"] == 1 and g1["patient"]["fn"] == 1
    assert g2["patient"]["sensitivity"] == 1.0 and g2["patient"]["specificity"] == 1.0
    assert g2["vertebra"]["positives"] == 1 and g2["vertebra"]["negatives"] == 4
    assert fracture["grade1_detected_as_fracture"] == 0.0
    assert fracture["grade_confusion"][0] == [2, 1, 0, 0]
    flagged = fracture["grade>=2_flagged"]  # the grade 2 graded 1 is flagged, so found
    assert (flagged["found"], flagged["positives"]) == (1, 1)
    assert (flagged["false_positives"], flagged["below_grade2"]) == (1, 4)
    assert (flagged["false_positives_normal"], flagged["normal"]) == (1, 3)
    assert "1 of 1 (sensitivity 1.000)" in render_markdown(summary, {})


def test_summary_reports_vertebrae_the_field_of_view_holds_whole_apart() -> None:
    cut = dataclasses.replace(_outcome("a", 8, 0, 0.1, 0.0), complete=False, dice=0.0)
    outcomes = [cut, dataclasses.replace(cut, identified=False), _outcome("a", 9, 0, 0.1, 0.0)]
    summary = summarise(outcomes, ["a"], [0.9])
    assert summary["identification_rate"] == pytest.approx(2 / 3)
    assert summary["complete_vertebrae"] == 1
    assert summary["identification_rate_complete"] == 1.0
    assert summary["mean_dice_complete"] == pytest.approx(0.9)
    assert "holds whole: 1 of 3" in render_markdown(summary, {})


def test_summary_reports_spines_with_a_t13_or_an_l6_apart() -> None:
    def named(case: str, label: int, identified: bool) -> VertebraOutcome:
        return dataclasses.replace(_outcome(case, label, 0, 0.1, 0.0), identified=identified)

    outcomes = [named("a", 19, False), named("a", 28, False), named("a", 20, True)]
    outcomes += [named("b", 24, True), named("b", 25, True), named("c", 20, True)]
    outcomes += [named("c", 21, False)]
    summary = summarise(outcomes, ["a", "b", "c"], [0.9, 0.9, 0.9])
    spines = summary["transitional_spines"]
    assert (spines["cases"], spines["vertebrae"]) == (2, 5)
    assert spines["identification_rate"] == pytest.approx(3 / 5)
    assert spines["identification_rate_other_spines"] == pytest.approx(1 / 2)
    assert "T13 or an L6 (transitional): 2 cases, 5 vertebrae" in render_markdown(summary, {})
    typical = summarise(outcomes[-2:], ["c"], [0.9])
    assert "transitional_spines" not in typical
    assert "transitional" not in render_markdown(typical, {})


def test_evaluation_of_an_oracle_segmentation_is_perfect() -> None:
    case = SyntheticSource(1, shape=(40, 40, 82)).load(0)  # bodies 14 slices x 2 mm = 28 mm
    heights = {"anterior": 28.0, "middle": 28.0, "posterior": 28.0}
    case = dataclasses.replace(
        case, heights_mm={k: heights for k, g in case.grades.items() if g == 0}
    )
    oracle = SegmentationResult(
        case.vertebrae, case.subregions if case.subregions is not None else case.vertebrae, {}
    )
    outcomes = evaluate_case(case, oracle, None)
    assert [o.dice for o in outcomes] == [1.0] * 5
    assert all(o.identified for o in outcomes)
    measured = [o.height_error_mm for o in outcomes if not math.isnan(o.height_error_mm)]
    assert len(measured) == sum(g == 0 for g in case.grades.values())
    assert max(measured) < 1.0, f"height error {measured} mm on perfect labels"
    graded = [o for o in outcomes if not math.isnan(o.p_grade1)]
    assert len(graded) == 5, outcomes
    for o in graded:  # the product's scores (morphometry, no grader) separate the grades
        assert (o.p_grade1 >= 0.5) == (int(o.true_grade or 0) >= 1), o
        assert (o.predicted_grade or 0) >= 2 if o.true_grade else o.predicted_grade == 0, o


def test_any_vertebra_dice_ignores_the_levels() -> None:
    from training.metrics import any_vertebra_dice

    truth = np.zeros((4, 4, 4), dtype=np.uint8)
    truth[:2] = 20
    renamed = np.where(truth > 0, 21, 0)  # the right outline, the wrong name
    assert any_vertebra_dice(renamed, truth) == 1.0
    half = truth.copy()
    half[1] = 0
    assert any_vertebra_dice(half, truth) == pytest.approx(2 * 16 / (16 + 32))
    assert any_vertebra_dice(np.zeros_like(truth), np.zeros_like(truth)) == 1.0


def test_report_says_whether_a_grader_model_made_the_scores() -> None:
    from training.report import render_markdown

    outcomes = [_outcome("a", 20, 2, 0.9, 0.8), _outcome("b", 20, 0, 0.1, 0.0)]
    summary = summarise(outcomes, ["a", "b"], [0.9, 0.9])
    alone = render_markdown(summary, {"grader": "none"})
    assert "morphometry on the predicted labels alone: no grader model" in alone
    assert "Mean foreground Dice (any vertebra, levels ignored; per case): 0.900" in alone
    blended = render_markdown(summary, {"grader": "spinescreen-fracture-grader 0.1.0"})
    assert "blended with the grader model" in blended


def test_report_gives_each_opinion_its_own_auc_and_leaves_out_a_grader_that_did_not_run() -> None:
    # morphometry ranks the fracture first; the grader ranks it last
    outcomes = [
        dataclasses.replace(
            _outcome("a", 20, 2, 0.9, 0.8), morphometry_p=(0.9, 0.8), model_p=(0.1, 0.1)
        ),
        dataclasses.replace(
            _outcome("a", 21, 0, 0.3, 0.2), morphometry_p=(0.2, 0.1), model_p=(0.9, 0.9)
        ),
        dataclasses.replace(
            _outcome("b", 20, 0, 0.1, 0.0), morphometry_p=(0.1, 0.0), model_p=(0.5, 0.5)
        ),
    ]
    sources = summarise(outcomes, ["a", "b"], [0.9, 0.9])["fracture"]["sources"]
    assert sources["morphometry"] == {"grade>=1": 1.0, "grade>=2": 1.0}
    assert sources["model"] == {"grade>=1": 0.0, "grade>=2": 0.0}
    without = [dataclasses.replace(o, model_p=(math.nan, math.nan)) for o in outcomes]
    assert "model" not in summarise(without, ["a", "b"], [0.9, 0.9])["fracture"]["sources"]
    text = render_markdown(summarise(outcomes, ["a", "b"], [0.9, 0.9]), {})
    assert "morphometry 1.000 (grade >= 1), 1.000 (grade >= 2); model 0.000" in text
