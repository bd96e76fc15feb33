"""Evaluation of a segmenter (+ optional grader) on cases with ground truth.

The same code serves phantoms and VerSe: every source yields :class:`Case`. Fracture scores
come from the grader run on the *predicted* label maps: each true vertebra is graded through
the predicted label that overlaps it most (a vertebra the segmenter misses scores 0).
Thresholds: a vertebra is called grade >= 1 when ``P(grade >= 1) >= 0.5`` and grade >= 2 when
``P(grade >= 2) >= 0.5``; a patient takes the maximum over their complete vertebrae.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from models.grader import Grader
from models.networks import LEVEL_NAMES
from models.segmenter import SegmentationResult, Segmenter
from training.datasets.types import Case
from training.metrics import (
    best_match,
    binary_stats,
    confusion_matrix,
    dice_from_table,
    identify,
    label_centroids_mm,
    overlap_table,
    roc_curve,
)

log = logging.getLogger(__name__)
THRESHOLD = 0.5


@dataclass(frozen=True)
class VertebraOutcome:
    case_id: str
    label: int
    complete: bool
    true_grade: int | None
    dice: float
    identified: bool
    localisation_mm: float
    p_grade1: float = math.nan  # P(grade >= 1)
    p_grade2: float = math.nan  # P(grade >= 2)
    predicted_grade: int | None = None
    height_error_mm: float = math.nan  # mean |predicted - true| over Ha, Hm, Hp


@dataclass
class EvaluationResult:
    outcomes: list[VertebraOutcome] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return summarise(self.outcomes, self.cases)


def evaluate_cases(
    segmenter: Segmenter,
    grader: Grader | None,
    cases: Iterable[Case],
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    result = EvaluationResult()
    for case in cases:
        segmentation = segmenter.segment(case.image_hu, case.spacing_mm)
        result.outcomes.extend(evaluate_case(case, segmentation, grader))
        result.cases.append(case.case_id)
        if progress is not None:
            progress(case.case_id)
    return result


def evaluate_case(
    case: Case, segmentation: SegmentationResult, grader: Grader | None
) -> list[VertebraOutcome]:
    table = overlap_table(segmentation.vertebrae, case.vertebrae)
    dice = dice_from_table(table)
    heights = _predicted_heights(case, segmentation) if case.heights_mm else {}
    truth_centres = case.centroids_mm or label_centroids_mm(case.vertebrae, case.affine)
    truth_centres = {k: v for k, v in truth_centres.items() if k in dice}
    found = identify(label_centroids_mm(segmentation.vertebrae, case.affine), truth_centres)
    outcomes = []
    for label in sorted(dice):
        outcome = VertebraOutcome(
            case_id=case.case_id,
            label=label,
            complete=case.complete.get(label, True),
            true_grade=case.grades.get(label),
            dice=dice[label],
            identified=found.identified.get(label, False),
            localisation_mm=found.localisation_mm.get(label, math.nan),
        )
        match = best_match(table, label)
        if match in heights and label in case.heights_mm:
            errors = [abs(heights[match][k] - case.heights_mm[label][k]) for k in heights[match]]
            outcome = replace(outcome, height_error_mm=float(np.mean(errors)))
        if grader is not None and outcome.complete and outcome.true_grade is not None:
            outcome = _graded(outcome, case, segmentation, grader, match)
        outcomes.append(outcome)
    return outcomes


def _predicted_heights(case: Case, segmentation: SegmentationResult) -> dict[int, dict[str, float]]:
    """Heights the pipeline's morphometry measures on the predicted label map."""
    from pipeline.morphometry import measure_vertebrae
    from pipeline.types import Volume

    ras_to_lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    volume = Volume(segmentation.vertebrae, ras_to_lps @ case.affine, modality="SEG")
    try:
        measured = measure_vertebrae(volume, segmentation.subregions)
    except (ValueError, ArithmeticError) as exc:
        log.warning("morphometry failed on %s: %s", case.case_id, exc)
        return {}
    return {
        m.label: {
            "anterior": m.heights.anterior,
            "middle": m.heights.middle,
            "posterior": m.heights.posterior,
        }
        for m in measured
        if m.heights is not None and m.complete
    }


def _graded(
    outcome: VertebraOutcome,
    case: Case,
    segmentation: SegmentationResult,
    grader: Grader,
    predicted_label: int,
) -> VertebraOutcome:
    if predicted_label == 0:
        return outcome.__class__(
            **{**asdict(outcome), "p_grade1": 0.0, "p_grade2": 0.0, "predicted_grade": 0}
        )
    grade = grader.grade(
        case.image_hu,
        segmentation.vertebrae,
        segmentation.subregions,
        predicted_label,
        case.spacing_mm,
    )
    p = grade.grade_probabilities
    return outcome.__class__(
        **{
            **asdict(outcome),
            "p_grade1": p[1] + p[2] + p[3],
            "p_grade2": p[2] + p[3],
            "predicted_grade": int(np.argmax(p)),
        }
    )


def summarise(outcomes: list[VertebraOutcome], cases: list[str]) -> dict[str, Any]:
    by_level: dict[str, list[float]] = {}
    for o in outcomes:
        by_level.setdefault(LEVEL_NAMES.get(o.label, str(o.label)), []).append(o.dice)
    located = [o.localisation_mm for o in outcomes if not math.isnan(o.localisation_mm)]
    summary: dict[str, Any] = {
        "cases": len(cases),
        "vertebrae": len(outcomes),
        "mean_dice": _mean([o.dice for o in outcomes]),
        "dice_per_level": {k: _mean(v) for k, v in sorted(by_level.items(), key=_level_order)},
        "identification_rate": _mean([float(o.identified) for o in outcomes]),
        "mean_localisation_error_mm": _mean(located),
    }
    height_errors = [o.height_error_mm for o in outcomes if not math.isnan(o.height_error_mm)]
    if height_errors:
        summary["height_error_mm"] = {
            "measured": len(height_errors),
            "mean": _mean(height_errors),
            "max": float(np.max(height_errors)),
        }
    graded = [o for o in outcomes if not math.isnan(o.p_grade1) and o.true_grade is not None]
    if graded:
        summary["fracture"] = _fracture_summary(graded, cases)
    return summary


def _fracture_summary(graded: list[VertebraOutcome], cases: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"graded_vertebrae": len(graded)}
    for name, attr, minimum in (("grade>=1", "p_grade1", 1), ("grade>=2", "p_grade2", 2)):
        scores = [float(getattr(o, attr)) for o in graded]
        truth = [int(o.true_grade or 0) >= minimum for o in graded]
        patient_scores, patient_truth = _per_patient(graded, cases, attr, minimum)
        out[name] = {
            "vertebra": binary_stats(scores, truth, THRESHOLD).as_dict(),
            "patient": binary_stats(patient_scores, patient_truth, THRESHOLD).as_dict(),
            "vertebra_roc": roc_curve(scores, truth),
            "patient_roc": roc_curve(patient_scores, patient_truth),
        }
    out["grade_confusion"] = confusion_matrix(
        [int(o.true_grade or 0) for o in graded], [int(o.predicted_grade or 0) for o in graded]
    )
    grade1 = [o for o in graded if o.true_grade == 1]
    out["grade1_detected_as_fracture"] = _mean([float(o.p_grade1 >= THRESHOLD) for o in grade1])
    return out


def _per_patient(
    graded: list[VertebraOutcome], cases: list[str], attr: str, minimum: int
) -> tuple[list[float], list[bool]]:
    scores, truth = [], []
    for case_id in cases:
        mine = [o for o in graded if o.case_id == case_id]
        if mine:
            scores.append(max(float(getattr(o, attr)) for o in mine))
            truth.append(any(int(o.true_grade or 0) >= minimum for o in mine))
    return scores, truth


def _level_order(item: tuple[str, list[float]]) -> int:
    names = {v: k for k, v in LEVEL_NAMES.items()}
    label = names.get(item[0], 99)
    return 39 if label == 28 else label * 2 if label < 20 else label * 2 + 1


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan
