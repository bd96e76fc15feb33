"""Fracture grading of one vertebra from a crop defined in models/preprocessing.py."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage

from models.backends import Backend
from models.card import ModelCard
from models.networks import GRADES, MORPHOLOGIES
from models.preprocessing import Spacing, _centre_in_box, grader_patch
from spinescreen.errors import ModelError


@dataclass(frozen=True)
class GradeResult:
    """Network output for one vertebra.

    ``fracture_probability`` = 1 - P(grade 0); ``grade_probabilities`` = P(Genant 0..3);
    ``morphology_probabilities`` over normal, wedge, biconcave, crush.
    """

    fracture_probability: float
    grade_probabilities: tuple[float, float, float, float]
    morphology_probabilities: dict[str, float]


class Grader:
    """Runs the grading network on the crop around one vertebral body."""

    def __init__(self, card: ModelCard, backend: Backend) -> None:
        if card.kind != "grader":
            raise ModelError(f"model card {card.name} is a {card.kind}, not a grader")
        self.card = card
        self.backend = backend
        # Bounding boxes of the last label map seen (weakly referenced: same object, same boxes).
        self._boxes_of: weakref.ref[NDArray[np.uint8]] | None = None
        self._boxes: list[tuple[slice, ...] | None] = []

    @property
    def cards(self) -> list[ModelCard]:
        return [self.card]

    def grade(
        self,
        image: NDArray[np.floating],
        vertebrae: NDArray[np.uint8],
        subregions: NDArray[np.uint8],
        label: int,
        spacing_mm: Spacing,
    ) -> GradeResult:
        """Grade vertebra ``label`` of ``vertebrae`` (arrays share the RAS grid of ``image``)."""
        box = self._box_of(vertebrae, label)
        centre = _centre_in_box(vertebrae, subregions, label, box)
        patch = grader_patch(
            image.astype(np.float32, copy=False),
            vertebrae,
            label,
            centre,
            spacing_mm,
            self.card.preprocessing,
        )
        logits = self.backend(torch.from_numpy(patch[None]))
        return decode_grade(logits[0].detach().cpu().float())

    def _box_of(self, vertebrae: NDArray[np.uint8], label: int) -> tuple[slice, ...]:
        if self._boxes_of is None or self._boxes_of() is not vertebrae:
            self._boxes = ndimage.find_objects(vertebrae)
            self._boxes_of = weakref.ref(vertebrae)
        boxes = self._boxes
        box = boxes[label - 1] if 0 < label <= len(boxes) else None
        if box is None:
            raise ModelError(f"vertebra label {label} is absent from the label map")
        return box


def decode_grade(logits: torch.Tensor) -> GradeResult:
    """GradeResult from the eight logits (four grades, four morphologies)."""
    grades = torch.softmax(logits[:GRADES], dim=0).tolist()
    morph = torch.softmax(logits[GRADES : GRADES + len(MORPHOLOGIES)], dim=0).tolist()
    g0, g1, g2, g3 = (float(p) for p in grades)
    return GradeResult(
        fracture_probability=1.0 - g0,
        grade_probabilities=(g0, g1, g2, g3),
        morphology_probabilities={
            name: float(p) for name, p in zip(MORPHOLOGIES, morph, strict=True)
        },
    )
