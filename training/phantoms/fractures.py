"""Fractures and confounders: which levels, how much height loss, and the endplate shape.

Grading rule of the ground truth (DOMAIN.md: Genant grades the height a fracture took;
normal wedging is no loss, "compare with level-specific normals"):

* ``ratio loss = 1 - min((Ha/Hp) / (Ha/Hp)_0, (Hm/Hp) / (Hm/Hp)_0)``, each ratio against the
  same body unfractured (wedge and biconcave deformities). Until 2026-11-29 it was the
  cleared-tool rule ``1 - min(Ha, Hm) / Hp``, which counts the normal wedging too: a T12
  wedge drawn as grade 1 had lost about 14 % of its anterior height and an L5 one about 31 %,
  and the analysis, which compares with the level's normal ratio, read them grade 0 and 2;
* ``crush loss = 1 - Hp / Hp_expected`` where ``Hp_expected`` is the mean unfractured
  posterior height of the adjacent presacral vertebrae (one neighbour at the ends), i.e. the
  neighbour-interpolated posterior height (recorded as ``expected_posterior_mm``); at C1-T3,
  T13 and L6, where heights change fast between levels and nothing is graded, it is the
  vertebra's own unfractured Hp;
* ``height_loss = max(ratio loss, crush loss)``; Genant grade >= 20 % 1, >= 25 % 2, >= 40 % 3.

A requested fracture gets a height loss drawn inside its grade's range, at least 1.5 % away
from either boundary (so a one-voxel measurement error does not flip the grade), and the
endplate displacement is solved so the model's exact heights give that loss.
Normal vertebrae (their ratio loss is 0 by the rule) are shaped with their physiological
wedging (Ha/Hp about 0.89-0.93 at T11-L1, above 1 at L4-L5) kept within 17.5 % of
``1 - min(Ha, Hm) / Hp``, so even the cleared-tool rule reads them grade 0.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from training.phantoms.params import (
    FRACTURE_LEVEL_WEIGHT,
    FRACTURE_LEVELS,
    MORPHOLOGIES,
    FractureRequest,
)
from training.phantoms.vertebral_body import (
    BodyModel,
    Deformation,
    SchmorlNode,
    genant_grade,
    height_losses,
)

GRADE_RANGE = {1: (0.20, 0.25), 2: (0.25, 0.40), 3: (0.40, 0.62)}
MARGIN = 0.015
NORMAL_LIMIT = 0.175


def draw_fractures(
    rng: np.random.Generator, present: set[str], count: int | None = None
) -> list[FractureRequest]:
    """Random fractures at realistic levels (peaks T7-T8, T11-L2), sometimes several;
    ``count`` of them when given."""
    if count is None:
        count = int(rng.choice(4, p=[0.45, 0.33, 0.14, 0.08]))
    levels = [lv for lv in FRACTURE_LEVELS if lv in present]
    weights = np.array([FRACTURE_LEVEL_WEIGHT[lv] for lv in levels])
    chosen = rng.choice(
        len(levels), size=min(count, len(levels)), replace=False, p=weights / weights.sum()
    )
    return [
        FractureRequest(
            levels[int(i)],
            int(rng.choice([1, 2, 3], p=[0.35, 0.40, 0.25])),
            str(rng.choice(MORPHOLOGIES, p=[0.6, 0.25, 0.15])),
        )
        for i in sorted(chosen)
    ]


def draw_height_loss(rng: np.random.Generator, grade: int) -> float:
    low, high = GRADE_RANGE[grade]
    return float(rng.uniform(low + MARGIN, high - MARGIN))


def total_loss(body: BodyModel, expected_posterior: float) -> float:
    """The ground truth's height loss of ``body`` (the rule above)."""
    unfractured = body.unfractured_heights()
    ratio, crush = height_losses(body.heights(), expected_posterior, unfractured)
    return max(ratio, crush)


def fracture_body(body: BodyModel, morphology: str, target: float, expected: float) -> BodyModel:
    """The body with the endplate displacement that yields ``target`` height loss, given the
    expected (neighbour-interpolated) posterior height."""
    if morphology == "crush":
        own = body.heights()["posterior"]
        amount = 1.0 - (1.0 - target) * expected / own
        return replace(body, deformation=Deformation("crush", float(np.clip(amount, 0.02, 0.8))))
    share = 0.8 if morphology == "wedge" else 0.5
    low, high = 0.0, 1.5 * body.height_posterior
    for _ in range(50):  # bisection: loss grows monotonically with the displacement
        mid = 0.5 * (low + high)
        trial = replace(body, deformation=Deformation(morphology, mid, share))
        if total_loss(trial, expected) < target:
            low = mid
        else:
            high = mid
    return replace(body, deformation=Deformation(morphology, 0.5 * (low + high), share))


def keep_normal(body: BodyModel) -> BodyModel:
    """Shrink concavity and wedging until the unfractured body is safely grade 0."""
    for _ in range(20):
        # the shape as it stands (1 - min(Ha, Hm) / Hp): normal wedging within the limit
        if max(height_losses(body.heights(), body.heights()["posterior"])) <= NORMAL_LIMIT:
            return body
        body = replace(
            body,
            wedge_ratio=1.0 - 0.8 * (1.0 - body.wedge_ratio),
            concavity_superior=0.8 * body.concavity_superior,
            concavity_inferior=0.8 * body.concavity_inferior,
        )
    return body


def draw_schmorl(rng: np.random.Generator, body: BodyModel) -> SchmorlNode:
    """A pit off the mid-sagittal plane, so it leaves Ha, Hm and Hp unchanged."""
    radius = float(rng.uniform(2.5, 4.5))
    lateral = float(rng.uniform(radius + 2.5, max(radius + 3.0, 0.55 * body.a)))
    return SchmorlNode(
        u=lateral * float(rng.choice([-1.0, 1.0])),
        v=float(rng.uniform(-0.3, 0.3)) * body.b,
        radius=radius,
        depth=float(rng.uniform(2.0, 4.0)),
        superior=bool(rng.random() < 0.6),
    )


def draw_confounders(rng: np.random.Generator, level: str, age: float) -> list[str]:
    """Non-fracture findings a screening system must not call fractures."""
    out = []
    lower = level.startswith("L") or level in ("T10", "T11", "T12")
    graded = level in FRACTURE_LEVELS
    old = max(age - 40.0, 0.0) / 40.0
    if graded and rng.random() < 0.06:
        out.append("schmorl_node")
    if graded and rng.random() < 0.03 + 0.05 * old:
        out.append("endplate_sclerosis")
    if graded and rng.random() < (0.05 + 0.15 * old if lower else 0.02):
        out.append("disc_narrowing")
    if graded and rng.random() < (0.05 + 0.2 * old if lower else 0.04):
        out.append("osteophytes")
    return out


__all__ = [
    "draw_confounders",
    "draw_fractures",
    "draw_height_loss",
    "draw_schmorl",
    "fracture_body",
    "genant_grade",
    "keep_normal",
    "total_loss",
]
