"""Typed objects the pipeline stages hand each other: ``Volume``, ``Heights``, ``Finding``,
``StudyResult``.

Coordinate conventions (the same everywhere in ``pipeline``):

* Arrays are indexed ``[i, j, k]``. For DICOM, ``i`` is the column index (along the first
  Image Orientation (Patient) vector), ``j`` the row index (along the second), ``k`` the slice
  index after sorting by position along the slice normal. For NIfTI, ``i, j, k`` are the
  file's own axes.
* ``Volume.affine`` maps a voxel index ``(i, j, k, 1)`` to DICOM patient coordinates in mm,
  **LPS** (+x towards the patient's Left, +y Posterior, +z Superior). NIfTI files are RAS+:
  ``affine_lps = diag(-1, -1, 1, 1) @ affine_ras``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.numbering import Numbering
from spinescreen import CLINICAL_DISCLAIMER

LPS_FROM_RAS: NDArray[np.float64] = np.diag([-1.0, -1.0, 1.0, 1.0])


class GenantGrade(IntEnum):
    """Genant semi-quantitative grade: 0 normal, 1 mild, 2 moderate, 3 severe."""

    NORMAL = 0
    MILD = 1
    MODERATE = 2
    SEVERE = 3


class Morphology(StrEnum):
    NORMAL = "normal"
    WEDGE = "wedge"
    BICONCAVE = "biconcave"
    CRUSH = "crush"


@dataclass(frozen=True)
class SliceSource:
    """Where one slice (k) of a volume came from: an instance, and a frame for multi-frame."""

    sop_instance_uid: str
    frame_number: int | None = None  # 1-based; None for single-frame instances


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D image with its geometry. ``array[i, j, k]``; ``affine``: voxel -> LPS mm.

    ``slice_sources[k]`` names the instance (and frame) slice k came from (empty for NIfTI).
    Values are Hounsfield units for CT images, VerSe labels for label maps.
    """

    array: NDArray[Any]
    affine: NDArray[np.float64]
    modality: str = "CT"
    frame_of_reference_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    series_description: str = ""
    slice_sources: tuple[SliceSource, ...] = ()
    source: str = ""  # the file or folder it was read from
    notes: tuple[str, ...] = field(default=())  # tolerated oddities, e.g. dropped duplicates

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume array must be 3-D [i, j, k], got shape {self.array.shape}")
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise ValueError(f"Volume affine must be a finite 4x4 matrix, got {affine!r}")
        if not np.allclose(affine[3], [0.0, 0.0, 0.0, 1.0]):
            raise ValueError(f"Volume affine last row must be [0, 0, 0, 1], got {affine[3]}")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-9:
            raise ValueError("Volume affine is singular (a zero or repeated axis)")
        if self.slice_sources and len(self.slice_sources) != self.array.shape[2]:
            raise ValueError(
                f"Volume has {self.array.shape[2]} slices but {len(self.slice_sources)} "
                "slice sources; give one per slice or none"
            )
        object.__setattr__(self, "affine", affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        i, j, k = self.array.shape
        return (int(i), int(j), int(k))

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        si, sj, sk = (float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))
        return (si, sj, sk)

    @property
    def affine_ras(self) -> NDArray[np.float64]:
        """The affine in NIfTI RAS+ convention (what nibabel writes)."""
        return LPS_FROM_RAS @ self.affine

    def with_array(self, array: NDArray[Any], modality: str | None = None) -> Volume:
        """Same grid and provenance, other voxel values (e.g. a label map)."""
        return replace(self, array=array, modality=self.modality if modality is None else modality)


@dataclass(frozen=True)
class Heights:
    """Vertebral body heights in mm on the mid-sagittal section (10 / 50 / 90 % of AP depth)."""

    anterior: float
    middle: float
    posterior: float

    def __post_init__(self) -> None:
        for name in ("anterior", "middle", "posterior"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"height {name} must be a finite length >= 0 mm, got {value}")

    def as_dict(self) -> dict[str, float]:
        return {
            "anterior": round(self.anterior, 2),
            "middle": round(self.middle, 2),
            "posterior": round(self.posterior, 2),
        }


@dataclass(frozen=True)
class Finding:
    """One vertebra in the result. Incomplete vertebrae carry no heights and no grade."""

    label: int
    level: str
    complete: bool
    centroid_mm: tuple[float, float, float]  # LPS mm
    centroid_voxel: tuple[float, float, float]  # index in the input image, its own axis order
    confidence: float
    heights: Heights | None = None
    height_loss: float | None = None  # 0-1, the largest relative loss (defines the grade)
    genant_grade: GenantGrade | None = None
    morphology: Morphology | None = None
    fracture_probability: float | None = None
    probability_source: str | None = None  # "morphometry+model" or "morphometry"
    morphometric_grade: GenantGrade | None = None  # before fusion with the model
    model_grade_probabilities: tuple[float, float, float, float] | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must lie in [0, 1], got {self.confidence}")
        if self.height_loss is not None and not 0.0 <= self.height_loss <= 1.0:
            raise ValueError(f"height_loss must lie in [0, 1], got {self.height_loss}")
        if not self.complete and self.genant_grade is not None:
            raise ValueError(f"{self.level} is incomplete (cut by the field of view): no grade")
        if self.genant_grade is not None:
            object.__setattr__(self, "genant_grade", GenantGrade(self.genant_grade))
        if self.morphology is not None:
            object.__setattr__(self, "morphology", Morphology(self.morphology))

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "label": self.label,
            "complete": bool(self.complete),
            "centroid_mm": [round(v, 2) for v in self.centroid_mm],
            "centroid_voxel": [round(v, 2) for v in self.centroid_voxel],
            "heights_mm": self.heights.as_dict() if self.heights else None,
            "height_loss": None if self.height_loss is None else round(self.height_loss, 4),
            "genant_grade": None if self.genant_grade is None else int(self.genant_grade),
            "morphology": None if self.morphology is None else str(self.morphology),
            "fracture_probability": _round(self.fracture_probability),
            "fracture_probability_source": self.probability_source,
            "morphometric_grade": _int(self.morphometric_grade),
            "model_grade_probabilities": (
                None
                if self.model_grade_probabilities is None
                else [round(p, 4) for p in self.model_grade_probabilities]
            ),
            "confidence": round(self.confidence, 4),
            "note": self.note,
        }


@dataclass(frozen=True)
class SeriesUsed:
    """The series (or file) the analysis ran on."""

    source: str
    study_instance_uid: str | None
    series_instance_uid: str | None
    frame_of_reference_uid: str | None
    description: str
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    voxel_axes: str


@dataclass(frozen=True)
class StudyResult:
    """Everything ``findings.json`` holds; ``to_json`` is the documented contract."""

    input: str
    series: SeriesUsed
    vertebrae: tuple[Finding, ...]
    models: dict[str, Any]
    rejected_series: tuple[dict[str, str], ...] = ()
    notes: tuple[str, ...] = ()
    numbering: Numbering | None = None  # how far the level names can be trusted

    @property
    def graded(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.vertebrae if f.genant_grade is not None)

    @property
    def fractured_levels(self) -> list[str]:
        return [f.level for f in self.graded if f.genant_grade is not None and f.genant_grade >= 1]

    @property
    def max_grade(self) -> int:
        return max((int(f.genant_grade or 0) for f in self.graded), default=0)

    def to_json(self) -> dict[str, Any]:
        s = self.series
        return {
            "disclaimer": CLINICAL_DISCLAIMER,
            "input": self.input,
            "series": {
                "source": s.source,
                "study_instance_uid": s.study_instance_uid,
                "series_instance_uid": s.series_instance_uid,
                "frame_of_reference_uid": s.frame_of_reference_uid,
                "description": s.description,
                "shape": list(s.shape),
                "spacing_mm": [round(v, 4) for v in s.spacing_mm],
                "voxel_axes": s.voxel_axes,
                "coordinates": "centroid_mm in DICOM patient coordinates, LPS, mm",
            },
            "rejected_series": list(self.rejected_series),
            "models": self.models,
            "vertebrae": [f.to_json() for f in self.vertebrae],
            "study": {
                "fracture": bool(self.fractured_levels),
                "max_grade": self.max_grade,
                "fractured_levels": self.fractured_levels,
                "numbering": None if self.numbering is None else self.numbering.to_json(),
            },
            "notes": list(self.notes),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _int(value: int | None) -> int | None:
    return None if value is None else int(value)
