"""Infers: networks, inference backends (onnxruntime, torch) and shipped weights.

Knows nothing of DICOM: it takes arrays with their geometry and returns label maps and
probabilities.

    segmenter = load_segmenter(settings.models)
    result = segmenter.segment(image_hu_ras, spacing_mm)
    grader = load_grader(settings.models)
    grade = grader.grade(image_hu_ras, result.vertebrae, result.subregions, 20, spacing_mm)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spinescreen.lazy import lazy_exports

if TYPE_CHECKING:
    from models.card import ModelCard
    from models.grader import Grader, GradeResult
    from models.loading import SHIPPED_WEIGHTS, load_grader, load_segmenter, model_folder
    from models.segmenter import SegmentationResult, Segmenter

# Heavy modules (torch, onnxruntime, monai) load on first use, so that importing
# ``models.settings`` (every CLI command does, through the configuration) stays fast.
_LAZY = {
    "GradeResult": "models.grader",
    "Grader": "models.grader",
    "ModelCard": "models.card",
    "SHIPPED_WEIGHTS": "models.loading",
    "SegmentationResult": "models.segmenter",
    "Segmenter": "models.segmenter",
    "load_grader": "models.loading",
    "load_segmenter": "models.loading",
    "model_folder": "models.loading",
}

__all__ = [
    "SHIPPED_WEIGHTS",
    "GradeResult",
    "Grader",
    "ModelCard",
    "SegmentationResult",
    "Segmenter",
    "load_grader",
    "load_segmenter",
    "model_folder",
]


__getattr__ = lazy_exports(__name__, _LAZY)
