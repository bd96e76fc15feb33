"""The typed result of the phantom generator: the contract between anatomy and writers.

Geometry: ``affine`` maps voxel indices (i, j, k) of every array to patient millimetres in
NIfTI RAS+ convention (+x towards the patient's Right, +y Anterior, +z Superior), exactly as
``nibabel`` writes it. Writers that need DICOM LPS flip x and y.
Axis k runs along the patient's long axis (axial slices), feet to head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Morphology = Literal["normal", "wedge", "biconcave", "crush"]
Mode = Literal["realistic", "randomized"]


@dataclass(frozen=True)
class VertebraTruth:
    """Ground truth of one vertebra, measured on the model geometry (not on the voxels).

    Heights follow the project's measurement definition (shared with pipeline morphometry):
    on the mid-sagittal section of the vertebral body, along the vertebra's own
    superior-inferior axis, at 10 % (anterior), 50 % (middle) and 90 % (posterior) of the
    body's antero-posterior depth measured from its anterior surface.
    """

    label: int  # VerSe number: 1-7 C, 8-19 T, 20-25 L, 26 sacrum, 28 T13
    level: str  # "C1" ... "L5", "L6", "T13", "S"
    complete: bool  # False when the field of view cuts the vertebra
    centroid_mm: tuple[float, float, float]  # RAS mm, centre of the whole vertebra mask
    body_centroid_mm: tuple[float, float, float]  # RAS mm, centre of the vertebral body
    heights_mm: dict[str, float]  # {"anterior", "middle", "posterior"}
    # Six-point morphometry (RAS mm): superior/inferior endplate at anterior/middle/posterior.
    morphometry_points_mm: dict[str, tuple[float, float, float]]
    genant_grade: int  # 0-3
    morphology: Morphology
    height_loss: float  # 0-1, the largest relative loss that defines the grade
    bmd_class: Literal["normal", "osteopenia", "osteoporosis"]
    trabecular_hu: float
    confounders: tuple[str, ...] = ()  # e.g. "schmorl_node", "physiological_wedge"
    # Hp the body would have unfractured (neighbour-interpolated), the crush rule's reference
    expected_posterior_mm: float = 0.0


@dataclass(frozen=True)
class CTPhantom:
    """One synthetic CT with exact labels. Arrays share one grid and ``affine``."""

    phantom_id: str
    seed: int
    mode: Mode
    image_hu: NDArray[np.int16]  # (i, j, k), Hounsfield units
    vertebrae: NDArray[np.uint8]  # VerSe labels, 0 = background
    subregions: NDArray[np.uint8]  # 0 background, 1 vertebral body, 2 posterior elements
    affine: NDArray[np.float64]  # 4x4, RAS+, voxel -> mm
    vertebra_truth: tuple[VertebraTruth, ...]
    acquisition: dict[str, Any] = field(default_factory=dict)  # slice thickness, kernel, ...
    params: dict[str, Any] = field(default_factory=dict)  # what drew this phantom (replayable)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        sx, sy, sz = (float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))
        return (sx, sy, sz)

    def study_truth(self) -> dict[str, Any]:
        graded = [v for v in self.vertebra_truth if v.complete]
        fractured = [v.level for v in graded if v.genant_grade >= 1]
        return {
            "fracture": bool(fractured),
            "max_grade": max((v.genant_grade for v in graded), default=0),
            "fractured_levels": fractured,
        }
