"""The analysis of one volume: label maps (model or given), morphometry, grading, fusion.

``analyze_volume`` is what ``spinescreen analyze`` and the service workers call; it returns a
``StudyResult`` whose ``to_json()`` is ``findings.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from pipeline.grading import (
    MAX_GRADING_STEP_MM,
    ModelOpinion,
    fuse,
    grade_vertebra,
    scaled_posterior,
)
from pipeline.levels import levels_apart
from pipeline.morphometry import VertebraMeasurement, measure_vertebrae
from pipeline.nifti import read_label_map
from pipeline.numbering import assess_numbering
from pipeline.orientation import to_canonical
from pipeline.types import Finding, Morphology, SeriesUsed, StudyResult, Volume
from spinescreen.errors import GeometryError, InputRejected

if TYPE_CHECKING:
    from models import Grader, Segmenter
    from models.settings import ModelSettings

log = logging.getLogger(__name__)

VOXEL_AXES_DICOM = "i: column, j: row, k: slice sorted along the slice normal (feet to head)"
VOXEL_AXES_NIFTI = "i, j, k: the NIfTI file's own axes"
# VerSe / TPTBox sub-region labels: 49 corpus border and 50 corpus are the vertebral body.
VERSE_BODY_SUBREGIONS = (49, 50)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class LabelMaps:
    """Vertebra labels (VerSe) and optional sub-regions (1 body, 2 posterior) on the input grid."""

    vertebrae: Volume
    subregions: NDArray[np.uint8] | None
    confidence: dict[int, float]
    origin: dict[str, Any] = field(default_factory=dict)  # which model or file made them
    default_confidence: float = 0.0  # for labels missing from ``confidence`` (given maps: 1)
    rib_bearing: frozenset[int] | None = None  # labels ribs touch; None: not looked for


def labels_from_file(image: Volume, path: Path, subregion_path: Path | None = None) -> LabelMaps:
    """A given label map (oracle / existing segmentation) on the exact grid of ``image``."""
    labels = read_label_map(path)
    _check_same_grid(image, labels, path)
    subregions = None
    if subregion_path is not None:
        sub = read_label_map(subregion_path)
        _check_same_grid(image, sub, subregion_path)
        subregions = normalise_subregions(sub.array)
    return LabelMaps(
        vertebrae=image.with_array(labels.array, modality="SEG"),
        subregions=subregions,
        confidence={},
        origin={"segmenter": {"name": "given label map", "file": str(path)}},
        default_confidence=1.0,
    )


def normalise_subregions(array: NDArray[Any]) -> NDArray[np.uint8]:
    """1 body / 2 posterior from either our coding or VerSe sub-region labels (41-50)."""
    values = np.asarray(array)
    if values.max(initial=0) <= 2:
        return values.astype(np.uint8)
    out = np.zeros(values.shape, dtype=np.uint8)
    out[np.isin(values, VERSE_BODY_SUBREGIONS)] = 1
    out[(values >= 41) & (values <= 48)] = 2
    return out


def segment_with_model(
    image: Volume, settings: ModelSettings, segmenter: Segmenter | None = None
) -> LabelMaps:
    """Run the shipped segmenter, or ``segmenter`` when given (loaded once by a worker).

    Raises ModelError when no weights are installed."""
    from models import load_segmenter

    segmenter = segmenter or load_segmenter(settings)
    # A view: the segmenter resamples it (one transient copy) and crops the outline's box
    # from it, so a second whole-CT copy held through the networks' run would only raise the
    # analysis's memory peak.
    view = to_canonical(image, image.array.astype(np.float32, copy=False), contiguous=False)
    result = segmenter.segment(view.array, view.spacing_mm)
    origin: dict[str, Any] = {  # the networks that ran: findings.json, the SR identity
        card.kind: {"name": card.name, "version": card.version, "sha256": card.sha256}
        for card in segmenter.cards
    }
    return LabelMaps(
        vertebrae=image.with_array(view.back(result.vertebrae).astype(np.uint8), modality="SEG"),
        subregions=view.back(result.subregions).astype(np.uint8),
        confidence={int(k): float(v) for k, v in result.confidence.items()},
        origin=origin,
        rib_bearing=result.rib_bearing,
    )


def analyze_volume(
    image: Volume | None,
    maps: LabelMaps,
    grader: Grader | None = None,
    input_name: str = "",
    voxel_axes: str = VOXEL_AXES_NIFTI,
    progress: Progress | None = None,
) -> tuple[StudyResult, tuple[VertebraMeasurement, ...]]:
    """Measure, grade and fuse; ``image`` None means a label map alone (no grader)."""
    say = progress or (lambda _: None)
    say("measuring vertebral bodies")
    measurements = measure_vertebrae(maps.vertebrae, maps.subregions)
    opinions = _model_opinions(image, maps, measurements, grader, say) if grader else {}
    confidence = {
        m.label: maps.confidence.get(m.label, maps.default_confidence) for m in measurements
    }
    findings = _findings(measurements, confidence, opinions)
    grid = image if image is not None else maps.vertebrae
    models = dict(maps.origin)
    if grader is not None:
        models["grader"] = {"name": grader.card.name, "version": grader.card.version}
    else:
        models["grader"] = None
    result = StudyResult(
        input=input_name or grid.source,
        series=SeriesUsed(
            source=grid.source,
            study_instance_uid=grid.study_instance_uid,
            series_instance_uid=grid.series_instance_uid,
            frame_of_reference_uid=grid.frame_of_reference_uid,
            description=grid.series_description,
            shape=grid.shape,
            spacing_mm=grid.spacing_mm,
            voxel_axes=voxel_axes,
        ),
        vertebrae=findings,
        models=models,
        notes=grid.notes,
        numbering=assess_numbering(((f.label, f.complete) for f in findings), maps.rib_bearing),
    )
    return result, measurements


def _findings(
    measurements: tuple[VertebraMeasurement, ...],
    confidence: dict[int, float],
    opinions: dict[int, ModelOpinion],
) -> tuple[Finding, ...]:
    posteriors = {
        m.label: (m.level, m.heights.posterior) for m in measurements if m.heights is not None
    }
    findings = []
    for m in measurements:
        base: dict[str, Any] = {
            "label": m.label,
            "level": m.level,
            "complete": m.complete,
            "centroid_mm": m.centroid_mm,
            "centroid_voxel": m.centroid_voxel,
            "confidence": float(min(max(confidence.get(m.label, 0.0), 0.0), 1.0)),
            "note": m.note,
        }
        if m.heights is None or not m.complete:
            findings.append(Finding(**base))
            continue
        if m.axial_step_mm is not None and m.axial_step_mm > MAX_GRADING_STEP_MM:
            note = (
                f"not graded: {m.axial_step_mm:.1f} mm sampling along the spine "
                f"(> {MAX_GRADING_STEP_MM:g} mm); heights are uncertain by about that much"
            )
            findings.append(Finding(**base | {"note": note}, heights=m.heights))
            continue
        neighbours = [
            scaled_posterior(hp, level, m.level)
            for n, (level, hp) in posteriors.items()
            if 0 < levels_apart(n, m.label) <= 2
        ]
        morpho = grade_vertebra(m.level, m.heights, neighbours)
        opinion = opinions.get(m.label)
        fused = fuse(morpho, opinion)
        findings.append(
            Finding(
                **base | {"note": fused.note or m.note},
                heights=m.heights,
                height_loss=morpho.height_loss,
                genant_grade=fused.genant_grade,
                morphology=morpho.morphology if fused.genant_grade else Morphology.NORMAL,
                fracture_probability=fused.fracture_probability,
                probability_source=fused.probability_source,
                morphometric_grade=morpho.genant_grade,
                model_grade_probabilities=opinion.grade_probabilities if opinion else None,
            )
        )
    return tuple(findings)


def _model_opinions(
    image: Volume | None,
    maps: LabelMaps,
    measurements: tuple[VertebraMeasurement, ...],
    grader: Grader,
    say: Progress,
) -> dict[int, ModelOpinion]:
    if image is None:
        return {}
    # A view (no second whole-CT copy): each vertebra's patch is sampled from it
    # (map_coordinates reads strided arrays) and made contiguous there.
    view = to_canonical(image, image.array.astype(np.float32, copy=False), contiguous=False)
    labels = to_canonical(image, maps.vertebrae.array).array.astype(np.uint8)
    sub = maps.subregions if maps.subregions is not None else np.zeros_like(maps.vertebrae.array)
    subregions = to_canonical(image, sub).array.astype(np.uint8)
    opinions = {}
    for m in measurements:
        if not m.complete or m.heights is None:
            continue
        say(f"grading {m.level}")
        result = grader.grade(view.array, labels, subregions, m.label, view.spacing_mm)
        opinions[m.label] = ModelOpinion(
            float(result.fracture_probability), result.grade_probabilities
        )
    return opinions


def _check_same_grid(image: Volume, labels: Volume, path: Path) -> None:
    if labels.shape != image.shape:
        raise GeometryError(
            f"label map {path} has shape {labels.shape}, the image {image.shape}: it must be on "
            "the exact grid of the input image"
        )
    if not np.allclose(labels.affine, image.affine, atol=1e-2):
        raise GeometryError(
            f"label map {path} has another affine than the image (max difference "
            f"{np.abs(labels.affine - image.affine).max():.3g} mm): resample it onto the image"
        )


def reject_empty(maps: LabelMaps) -> None:
    """Refuse a map without vertebrae, saying whether a model or a given file made it."""
    if np.any(maps.vertebrae.array):
        return
    segmenter = maps.origin.get("segmenter", {})
    if "file" in segmenter:
        raise InputRejected(
            f"the label map {segmenter['file']} holds no vertebra (all zero): nothing to measure"
        )
    extent = np.abs(np.asarray(maps.vertebrae.shape) * np.asarray(maps.vertebrae.spacing_mm))
    raise InputRejected(
        f"the segmenter ({segmenter.get('name', 'model')}) found no vertebra in a "
        f"{' x '.join(f'{e:.0f}' for e in extent)} mm volume: nothing to measure; check that "
        "the series covers the spine (a scout, a head or an extremity series has none) and is "
        "in HU"
    )
