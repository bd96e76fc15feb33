"""The one case type every dataset yields, and the interface of a dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

Point = tuple[float, float, float]


@dataclass(frozen=True)
class Case:
    """One CT with its labels, in RAS+ canonical axis order (i: R, j: A, k: S).

    ``vertebrae`` uses VerSe labels; ``subregions`` (1 body, 2 posterior elements) is ``None``
    when the dataset has none. Per-vertebra dictionaries are keyed by VerSe label; ``grades``
    holds Genant grades only where the dataset gives them. ``centroids_mm`` are RAS mm.
    """

    case_id: str
    image_hu: NDArray[np.float32]
    vertebrae: NDArray[np.uint8]
    subregions: NDArray[np.uint8] | None
    affine: NDArray[np.float64]
    grades: dict[int, int] = field(default_factory=dict)
    morphologies: dict[int, str] = field(default_factory=dict)
    complete: dict[int, bool] = field(default_factory=dict)
    centroids_mm: dict[int, Point] = field(default_factory=dict)
    heights_mm: dict[int, dict[str, float]] = field(default_factory=dict)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        sx, sy, sz = (float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))
        return (sx, sy, sz)


class CaseSource(Protocol):
    """A dataset: a fixed, ordered list of cases loaded on demand."""

    name: str

    def __len__(self) -> int: ...

    def case_id(self, index: int) -> str: ...

    def load(self, index: int) -> Case: ...
