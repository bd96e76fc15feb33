"""Datasets behind one interface: phantoms, VerSe, CTSpine1K and a folder of NIfTI pairs.

Each source yields :class:`Case` objects in RAS+ canonical order with VerSe labels.
"""

from __future__ import annotations

from training.datasets.nifti import (
    PairFolderSource,
    VerSeSource,
    read_canonical,
    read_grades,
    read_verse_centroids,
)
from training.datasets.phantoms import (
    EVALUATION_SEED_LIMIT,
    TRAINING_SEED_START,
    PhantomSource,
    case_from_phantom,
)
from training.datasets.types import Case, CaseSource

__all__ = [
    "EVALUATION_SEED_LIMIT",
    "TRAINING_SEED_START",
    "Case",
    "CaseSource",
    "PairFolderSource",
    "PhantomSource",
    "VerSeSource",
    "case_from_phantom",
    "read_canonical",
    "read_grades",
    "read_verse_centroids",
]
