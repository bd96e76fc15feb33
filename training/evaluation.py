"""Evaluation of a segmenter (+ optional grader) on cases with ground truth.

The same code serves phantoms and VerSe: every source yields :class:`Case`. Heights, grades
and fracture scores are what the product reports (``pipeline.analysis.analyze_volume``:
morphometry on the *predicted* label maps, the grader, the fusion rule), so the report
measures the product, not a model in isolation. Each true vertebra is judged through the
predicted label that overlaps it most (a vertebra the segmenter misses scores 0).
Thresholds: a vertebra is called grade >= 1 when its score for grade >= 1
(``pipeline.grading.fracture_scores``) is at least 0.5, likewise for grade >= 2; a patient
takes the maximum over their complete, graded vertebrae. Vertebrae the product does not grade
(slices thicker than 3 mm) are counted apart.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from models.grader import Grader
from models.labelling import SACRUM, TRANSITIONAL  # sacrum: not measured, not graded
from models.networks import LEVEL_NAMES
from models.segmenter import SegmentationResult, Segmenter
from pipeline.grading import ModelOpinion, fracture_scores, model_scores
from pipeline.types import Finding
from training.datasets.types import Case
from training.metrics import (
    any_vertebra_dice,
    best_match,
    binary_stats,
    confusion_matrix,
    dice_from_table,
    identify,
    label_centroids_mm,
    overlap_table,
    roc_auc,
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
    # the two opinions the product's scores blend, kept apart so the report can say what each
    # is worth: morphometry alone (pipeline.grading.fracture_scores without a model) and the
    # grader's own P(grade >= 1), P(grade >= 2) (nan without a grader)
    morphometry_p: tuple[float, float] = (math.nan, math.nan)
    model_p: tuple[float, float] = (math.nan, math.nan)


@dataclass
class EvaluationResult:
    outcomes: list[VertebraOutcome] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)
    # per case, Dice of "any vertebra" whatever the level: the outline without the naming
    foreground_dice: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return summarise(self.outcomes, self.cases, self.foreground_dice)


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
        result.foreground_dice.append(any_vertebra_dice(segmentation.vertebrae, case.vertebrae))
        if progress is not None:
            progress(case.case_id)
    return result


def evaluate_case(
    case: Case, segmentation: SegmentationResult, grader: Grader | None
) -> list[VertebraOutcome]:
    table = overlap_table(segmentation.vertebrae, case.vertebrae)
    dice = dice_from_table(table)
    findings = _pipeline_findings(case, segmentation, grader)
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
        finding = findings.get(match)
        truth_heights = case.heights_mm.get(label)
        if finding is not None and finding.heights is not None and truth_heights:
            measured = {
                "anterior": finding.heights.anterior,
                "middle": finding.heights.middle,
                "posterior": finding.heights.posterior,
            }
            errors = [abs(measured[k] - truth_heights[k]) for k in measured if k in truth_heights]
            outcome = replace(outcome, height_error_mm=float(np.mean(errors)))
        if outcome.complete and outcome.true_grade is not None and label != SACRUM:
            outcome = _graded(outcome, finding, missed=match == 0)
        outcomes.append(outcome)
    return outcomes


def _pipeline_findings(
    case: Case, segmentation: SegmentationResult, grader: Grader | None
) -> dict[int, Finding]:
    """What the product reports for each predicted vertebra (pipeline.analysis)."""
    from pipeline.analysis import LabelMaps, analyze_volume
    from pipeline.types import LPS_FROM_RAS, Volume

    affine = LPS_FROM_RAS @ case.affine
    image = Volume(case.image_hu, affine, modality="CT")
    maps = LabelMaps(
        vertebrae=Volume(segmentation.vertebrae, affine, modality="SEG"),
        subregions=segmentation.subregions,
        confidence=dict(segmentation.confidence),
    )
    try:
        result, _ = analyze_volume(image, maps, grader)
    except (ValueError, ArithmeticError) as exc:
        log.warning("analysis failed on %s: %s", case.case_id, exc)
        return {}
    return {f.label: f for f in result.vertebrae}


def _graded(outcome: VertebraOutcome, finding: Finding | None, missed: bool) -> VertebraOutcome:
    """Fracture scores as the product gives them; a vertebra the segmenter missed is a
    negative call (score 0). One the product measured but did not grade (cut by the field
    of view, or slices thicker than 3 mm) stays out of the fracture statistics."""
    if missed:
        return replace(
            outcome,
            p_grade1=0.0,
            p_grade2=0.0,
            predicted_grade=0,
            morphometry_p=(0.0, 0.0),
            model_p=(0.0, 0.0),
        )
    if finding is None or finding.genant_grade is None or finding.height_loss is None:
        return outcome
    probabilities = finding.model_grade_probabilities
    opinion = (
        ModelOpinion(1.0 - probabilities[0], probabilities) if probabilities is not None else None
    )
    one, two = fracture_scores(finding.height_loss, opinion)
    model_p = model_scores(probabilities) if probabilities is not None else (math.nan, math.nan)
    return replace(
        outcome,
        p_grade1=one,
        p_grade2=two,
        predicted_grade=int(finding.genant_grade),
        morphometry_p=fracture_scores(finding.height_loss, None),
        model_p=model_p,
    )


def summarise(
    outcomes: list[VertebraOutcome], cases: list[str], foreground: list[float] | None = None
) -> dict[str, Any]:
    by_level: dict[str, list[float]] = {}
    for o in outcomes:
        by_level.setdefault(LEVEL_NAMES.get(o.label, str(o.label)), []).append(o.dice)
    located = [o.localisation_mm for o in outcomes if not math.isnan(o.localisation_mm)]
    summary: dict[str, Any] = {
        "cases": len(cases),
        "vertebrae": len(outcomes),
        "mean_dice": _mean([o.dice for o in outcomes]),
        "mean_foreground_dice": _mean(foreground or []),
        "dice_per_level": {k: _mean(v) for k, v in sorted(by_level.items(), key=_level_order)},
        "identification_rate": _mean([float(o.identified) for o in outcomes]),
        "mean_localisation_error_mm": _mean(located),
    }
    if not all(o.complete for o in outcomes):
        # the same over the vertebrae the field of view holds whole (the headline counts every
        # labelled one, down to a sliver of a spinous process at the edge of the scan); left
        # out when no vertebra is marked cut (a source without completeness, such as VerSe)
        whole = [o for o in outcomes if o.complete]
        summary["complete_vertebrae"] = len(whole)
        summary["mean_dice_complete"] = _mean([o.dice for o in whole])
        summary["identification_rate_complete"] = _mean([float(o.identified) for o in whole])
    transitional = {o.case_id for o in outcomes if o.label in TRANSITIONAL}
    if transitional:
        # a T13 or an L6 shifts every level named by count; its spines reported apart
        inside = [o for o in outcomes if o.case_id in transitional]
        others = [o for o in outcomes if o.case_id not in transitional]
        summary["transitional_spines"] = {
            "cases": len(transitional),
            "vertebrae": len(inside),
            "identification_rate": _mean([float(o.identified) for o in inside]),
            "identification_rate_other_spines": _mean([float(o.identified) for o in others]),
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
        summary["fracture"]["not_graded_vertebrae"] = sum(
            1
            for o in outcomes
            if o.complete
            and o.true_grade is not None
            and o.label != SACRUM
            and math.isnan(o.p_grade1)
        )
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
    out["grade>=2_flagged"] = _flagged(graded)
    out["sources"] = _sources(graded)
    return out


def _sources(graded: list[VertebraOutcome]) -> dict[str, dict[str, float]]:
    """Vertebra-level AUC of each opinion the product blends, on the same vertebrae: the
    morphometry alone and the grader model alone (left out unless it scored every graded
    vertebra). A vertebra the segmenter missed is a negative call for both."""
    out: dict[str, dict[str, float]] = {}
    for source, attr in (("morphometry", "morphometry_p"), ("model", "model_p")):
        scores = [getattr(o, attr) for o in graded]
        if any(math.isnan(s[0]) for s in scores):
            continue
        out[source] = {
            f"grade>={n}": roc_auc(
                [s[n - 1] for s in scores], [int(o.true_grade or 0) >= n for o in graded]
            )
            for n in (1, 2)
        }
    return out


def _flagged(graded: list[VertebraOutcome]) -> dict[str, Any]:
    """Grade >= 2 fractures as the product flags them: a vertebra it grades >= 1 is listed in
    ``fractured_levels`` and makes the study positive (FLS referral), whatever grade it gets;
    a false positive is a flagged vertebra without a grade >= 2 fracture (also given against
    the normal vertebrae alone)."""
    flagged = [int(o.predicted_grade or 0) >= 1 for o in graded]
    true = [int(o.true_grade or 0) for o in graded]
    severe = [f for f, t in zip(flagged, true, strict=True) if t >= 2]
    below = [f for f, t in zip(flagged, true, strict=True) if t <= 1]
    normal = [f for f, t in zip(flagged, true, strict=True) if t == 0]
    return {
        "positives": len(severe),
        "found": sum(severe),
        "sensitivity": _mean([float(f) for f in severe]),
        "below_grade2": len(below),
        "false_positives": sum(below),
        "false_positive_rate": _mean([float(f) for f in below]),
        "normal": len(normal),
        "false_positives_normal": sum(normal),
        "false_positive_rate_normal": _mean([float(f) for f in normal]),
    }


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
