"""Genant grading and morphology from morphometry, and fusion with the grader model.

Morphometric rules (thresholds from DOMAIN.md: grade 1 from 20 %, 2 from 25 %, 3 from 40 %
height loss). Three relative losses are computed per complete vertebra, each against what
that height should be for this level:

* wedge (anterior):   1 - (Ha / Hp_ref) / NORMAL_HA_HP[level]
* biconcave (middle): 1 - (Hm / Hp_ref) / NORMAL_HM_HP
* crush (posterior):  1 - Hp / Hp_expected, with Hp_expected the median posterior height of
  the complete neighbours up to two levels away on each side, each scaled to this level by
  the typical body heights of the two levels (TYPICAL_BODY_HEIGHT_MM: a normal C7 is about
  14 mm high and a T2 18 mm, so an unscaled C7 read as a 20 % crush against T1-T2; L1 is
  about 25 mm and L3 27) (the expected height; with the two adjacent ones alone, their mean;
  the median keeps one mis-measured neighbour, such as two bodies a segmentation merged,
  from making its neighbours look crushed); without
  neighbours, 1 - Hp / (Ha / NORMAL_HA_HP[level]) (posterior loss against the anterior
  height).

``Hp_ref`` is the larger of the vertebra's own Hp and Hp_expected, so a whole-body crush
does not hide behind normal ratios (and so the scaling of the neighbours moves the wedge and
biconcave losses too wherever Hp_expected is the larger: neighbours below a thoracic or upper
lumbar vertebra are typically 3-6 % taller, and unscaled they added that much to its losses).
The phantoms are built on the same height table, so on them the scaling is right by
construction; on the one real mask (verse004) it lowered T9 from grade 2 to 1.
``NORMAL_HA_HP`` is the level's normal wedging (Masharawi 2010 via DOMAIN.md: about
0.89-0.93 at T11-L1, above 1 at L4-L5), so a physiologically wedged T12 or a lordotic L5 is
not called a fracture.
``height_loss`` is the largest of the three (clipped to 0-1); the grade follows from it and
the morphology is the kind of deformity (``normal`` below grade 1): the largest of the body's
own shape losses (Ha/Hp and Hm/Hp against the normal ratios, without the neighbours) and the
crush loss, so a uniformly flattened body reads as a crush, not as a wedge.

Vertebrae imaged with a sampling interval along the spine above MAX_GRADING_STEP_MM (3 mm
slices) are measured but not graded: the quantisation of the endplates alone (up to one
slice per height) reaches the grade 1 boundary.

Fusion with the grader model (``models.load_grader``): both are reported. The final grade is
the morphometric grade, except when the model disagrees strongly:

* model P(fracture) >= MODEL_UPGRADE_P while morphometry says grade 0 with a loss of at
  least MODEL_UPGRADE_MIN_LOSS: grade 1 (borderline measurement, confident model);
* model P(fracture) <= MODEL_DOWNGRADE_P while morphometry says grade 1: grade 0 (grade 1
  is the hard, noisy class). Grades 2 and 3 are never lowered by the model.

``fracture_probability`` is a score, not a calibrated probability: the morphometric score (a
logistic function of the height loss centred on the grade 1 boundary) blended with the
model's P(grade >= 1) at weight MODEL_SCORE_WEIGHT when a grader ran (source
"morphometry+model"), the morphometric score alone otherwise (source "morphometry").
:func:`fracture_scores` gives the same blend for grade >= 1 and grade >= 2 (centred on the
25 % boundary); the evaluation reports use it, so they measure what the product outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.types import GenantGrade, Heights, Morphology

GRADE_THRESHOLDS = (
    (0.40, GenantGrade.SEVERE),
    (0.25, GenantGrade.MODERATE),
    (0.20, GenantGrade.MILD),
)

# Normal anterior / posterior height ratio per level (Masharawi 2010 wedge angles, DOMAIN.md).
_THORACIC_HA_HP = 0.93
NORMAL_HA_HP: dict[str, float] = {
    **{f"C{n}": 1.0 for n in range(1, 8)},
    **{f"T{n}": _THORACIC_HA_HP for n in range(1, 11)},
    "T11": 0.90,
    "T12": 0.91,
    "T13": 0.91,
    "L1": 0.92,
    "L2": 0.97,
    "L3": 1.00,
    "L4": 1.04,
    "L5": 1.12,
    "L6": 1.12,
}
NORMAL_HM_HP = 0.95  # endplates are slightly concave: the middle is a little lower

# Typical adult vertebral body height per level (mm; Panjabi 1991/1992 via DOMAIN.md: C3-C7
# 13-14, T1 17, T4 19, T8 21.5, T12 24, L1 25, L3 27, L5 26), linear between the anchors.
# Only ratios between nearby levels are used: a neighbour's posterior height scaled to this
# level is what this one should measure.
_HEIGHT_ANCHORS = (
    (3, 13.5),
    (7, 14.0),
    (8, 17.0),
    (11, 19.0),
    (15, 21.5),
    (19, 24.0),
    (20, 25.0),
    (22, 27.0),
    (24, 26.0),
    (25, 26.0),
)  # VerSe label, mm
_LABEL_OF_LEVEL = {
    **{f"C{n}": float(n) for n in range(3, 8)},  # C1 has no body, C2 carries the dens
    **{f"T{n}": float(n + 7) for n in range(1, 13)},
    "T13": 19.5,
    **{f"L{n}": float(n + 19) for n in range(1, 7)},
}
TYPICAL_BODY_HEIGHT_MM: dict[str, float] = {
    level: float(
        np.interp(position, [a for a, _ in _HEIGHT_ANCHORS], [h for _, h in _HEIGHT_ANCHORS])
    )
    for level, position in _LABEL_OF_LEVEL.items()
}

# Heights are only as good as the sampling along the spine: with slices thicker than this a
# 20 % loss (about 4 mm on a thoracic body) is within the measurement error, so complete
# vertebrae are measured and reported but not graded ("never guessed").
MAX_GRADING_STEP_MM = 3.0

MODEL_UPGRADE_P = 0.90
MODEL_UPGRADE_MIN_LOSS = 0.15
MODEL_DOWNGRADE_P = 0.05
SCORE_CENTRE = 0.20  # morphometric score: 0.5 at the grade 1 boundary
SCORE_CENTRE_GRADE2 = 0.25
SCORE_WIDTH = 0.04
MODEL_SCORE_WEIGHT = 0.3  # share of the grader model in the fracture score
BLENDED = "morphometry+model"


@dataclass(frozen=True)
class MorphometricGrade:
    """The morphometric verdict for one vertebra, with the losses that made it."""

    height_loss: float
    genant_grade: GenantGrade
    morphology: Morphology
    losses: dict[str, float]  # wedge, biconcave, crush
    expected_posterior_mm: float | None


@dataclass(frozen=True)
class ModelOpinion:
    """What the grader model said about one vertebra (``models`` GradeResult, copied)."""

    fracture_probability: float
    grade_probabilities: tuple[float, float, float, float]


@dataclass(frozen=True)
class FusedGrade:
    genant_grade: GenantGrade
    fracture_probability: float
    probability_source: str  # "morphometry+model" | "morphometry"
    note: str = ""


def grade_from_loss(height_loss: float) -> GenantGrade:
    for threshold, grade in GRADE_THRESHOLDS:
        if height_loss >= threshold:
            return grade
    return GenantGrade.NORMAL


def scaled_posterior(posterior_mm: float, from_level: str, to_level: str) -> float:
    """A neighbour's posterior height as ``to_level`` should measure it (typical body heights
    of the two levels; unchanged for a level outside the table)."""
    source = TYPICAL_BODY_HEIGHT_MM.get(from_level)
    target = TYPICAL_BODY_HEIGHT_MM.get(to_level)
    return posterior_mm * target / source if source and target else posterior_mm


def grade_vertebra(
    level: str, heights: Heights, neighbour_posteriors: list[float]
) -> MorphometricGrade:
    """Grade one vertebra from its heights and its complete neighbours' posterior heights
    (those up to two levels away, already scaled to this level: :func:`scaled_posterior`)."""
    ha, hm, hp = heights.anterior, heights.middle, heights.posterior
    normal_ratio = NORMAL_HA_HP.get(level, 1.0)
    expected = float(np.median(neighbour_posteriors)) if neighbour_posteriors else None
    reference = max(hp, expected) if expected is not None else hp
    if reference <= 0:
        losses = {"wedge": 1.0, "biconcave": 1.0, "crush": 1.0}
    else:
        crush_reference = expected if expected is not None else ha / normal_ratio
        losses = {
            "wedge": 1.0 - (ha / reference) / normal_ratio,
            "biconcave": 1.0 - (hm / reference) / NORMAL_HM_HP,
            "crush": 1.0 - hp / crush_reference if crush_reference > 0 else 0.0,
        }
    loss = min(max(max(losses.values()), 0.0), 1.0)
    grade = grade_from_loss(loss)
    kind = _shape_kind(heights, normal_ratio, losses["crush"])
    morphology = Morphology(kind) if grade >= GenantGrade.MILD else Morphology.NORMAL
    return MorphometricGrade(loss, grade, morphology, losses, expected)


def _shape_kind(heights: Heights, normal_ratio: float, crush_loss: float) -> str:
    """The kind of deformity: the largest of the body's own shape losses and the crush loss."""
    hp = heights.posterior
    if hp <= 0:
        return "crush"
    shape = {
        "wedge": 1.0 - (heights.anterior / hp) / normal_ratio,
        "biconcave": 1.0 - (heights.middle / hp) / NORMAL_HM_HP,
        "crush": crush_loss,
    }
    return max(shape, key=lambda k: shape[k])


def morphometric_score(height_loss: float, centre: float = SCORE_CENTRE) -> float:
    """A 0-1 score from the height loss (0.5 at ``centre``); NOT a calibrated probability."""
    return 1.0 / (1.0 + math.exp(-(height_loss - centre) / SCORE_WIDTH))


def model_scores(grade_probabilities: tuple[float, ...]) -> tuple[float, float]:
    """The grader's own P(grade >= 1) and P(grade >= 2) from its P(Genant 0-3)."""
    p = grade_probabilities
    return float(p[1] + p[2] + p[3]), float(p[2] + p[3])


def fracture_scores(height_loss: float, model: ModelOpinion | None) -> tuple[float, float]:
    """Scores for grade >= 1 and grade >= 2: morphometry blended with the model's opinion."""
    one = morphometric_score(height_loss, SCORE_CENTRE)
    two = morphometric_score(height_loss, SCORE_CENTRE_GRADE2)
    if model is None:
        return one, two
    model_one, model_two = model_scores(model.grade_probabilities)
    w = MODEL_SCORE_WEIGHT
    return (1 - w) * one + w * model_one, (1 - w) * two + w * model_two


def fuse(morphometric: MorphometricGrade, model: ModelOpinion | None) -> FusedGrade:
    """The final grade by the rule in the module docstring."""
    grade = morphometric.genant_grade
    score = fracture_scores(morphometric.height_loss, model)[0]
    if model is None:
        return FusedGrade(grade, score, "morphometry")
    p = model.fracture_probability
    if (
        grade == GenantGrade.NORMAL
        and p >= MODEL_UPGRADE_P
        and morphometric.height_loss >= MODEL_UPGRADE_MIN_LOSS
    ):
        return FusedGrade(GenantGrade.MILD, score, BLENDED, "raised to grade 1 by the model")
    if grade == GenantGrade.MILD and p <= MODEL_DOWNGRADE_P:
        return FusedGrade(GenantGrade.NORMAL, score, BLENDED, "lowered to grade 0 by the model")
    return FusedGrade(grade, score, BLENDED)
