"""Ground truth per vertebra from the model geometry (heights, points, grade) and from the
voxels it left (centroids, completeness)."""

from __future__ import annotations

import numpy as np

from training.phantoms.anatomy import PlacedVertebra
from training.phantoms.fractures import genant_grade
from training.phantoms.grid import F64, Grid
from training.phantoms.params import VERSE_LABEL
from training.phantoms.spine import Raster
from training.phantoms.subject import Subject, bmd_class
from training.phantoms.types import VertebraTruth
from training.phantoms.vertebral_body import height_losses


def _world(grid: Grid, vox: F64) -> tuple[float, float, float]:
    x, y, z = (float(round(c, 3)) for c in grid.to_world(vox))
    return (x, y, z)


def vertebra_truth(
    subject: Subject, v: PlacedVertebra, raster: Raster, grid: Grid
) -> VertebraTruth:
    level = v.shape.level
    body = subject.bodies[level]
    heights = body.heights()
    expected = subject.expected_posterior[level]
    unfractured = body.unfractured_heights()
    ratio, crush = height_losses(heights, expected, unfractured)
    loss = max(ratio, crush, 0.0)
    points = {
        name: tuple(float(round(c, 3)) for c in v.centre + v.frame @ np.array(local))
        for name, local in body.points().items()
    }
    return VertebraTruth(
        label=v.shape.label,
        level=level,
        complete=not raster.touches_edge,
        centroid_mm=_world(grid, raster.centroid_vox),
        body_centroid_mm=_world(grid, raster.body_centroid_vox),
        heights_mm={k: round(h, 3) for k, h in heights.items()},
        morphometry_points_mm=points,  # type: ignore[arg-type]
        genant_grade=genant_grade(loss),
        morphology=subject.morphology[level],  # type: ignore[arg-type]
        height_loss=round(loss, 4),
        bmd_class=bmd_class(subject.trabecular[level]),  # type: ignore[arg-type]
        trabecular_hu=round(subject.trabecular[level], 1),
        confounders=tuple(v.confounders),
        expected_posterior_mm=round(expected, 3),
    )


def sacrum_truth(subject: Subject, raster: Raster, grid: Grid) -> VertebraTruth:
    """The sacrum: labelled and located, never graded (no heights)."""
    return VertebraTruth(
        label=VERSE_LABEL["S"],
        level="S",
        complete=not raster.touches_edge,
        centroid_mm=_world(grid, raster.centroid_vox),
        body_centroid_mm=_world(grid, raster.body_centroid_vox),
        heights_mm={},
        morphometry_points_mm={},
        genant_grade=0,
        morphology="normal",
        height_loss=0.0,
        bmd_class=bmd_class(subject.trabecular_hu),  # type: ignore[arg-type]
        trabecular_hu=round(subject.trabecular_hu, 1),
    )


def vertebra_truths(
    subject: Subject, placed: list[PlacedVertebra], rasters: dict[str, Raster], grid: Grid
) -> tuple[VertebraTruth, ...]:
    """Truth for every vertebra that left voxels in the field of view, cranial to caudal."""
    out = [
        vertebra_truth(subject, v, rasters[v.shape.level], grid)
        for v in placed
        if rasters[v.shape.level].voxels > 0
    ]
    if rasters["S"].voxels > 0:
        out.append(sacrum_truth(subject, rasters["S"], grid))
    return tuple(out)
