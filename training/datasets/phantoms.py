"""Phantom dataset: CT phantoms generated on the fly from seeds (training/phantoms)."""

from __future__ import annotations

from typing import Any

import nibabel as nib
import numpy as np

from training.datasets.types import Case, Point

# Seeds are split so that no training phantom is ever an evaluation phantom.
TRAINING_SEED_START = 1_000_000
EVALUATION_SEED_LIMIT = 1000


class PhantomSource:
    """``count`` phantoms with seeds ``first_seed``, ``first_seed + 1``, ..."""

    name = "phantoms"

    def __init__(self, first_seed: int, count: int, params: dict[str, Any] | None = None) -> None:
        self.first_seed = first_seed
        self.count = count
        self.params = dict(params or {})

    def __len__(self) -> int:
        return self.count

    def case_id(self, index: int) -> str:
        return f"phantom-{self.first_seed + index}"

    def load(self, index: int) -> Case:
        from training.phantoms import make_ct_phantom  # type: ignore[attr-defined,unused-ignore]
        from training.phantoms.params import PhantomParams

        phantom = make_ct_phantom(self.first_seed + index, PhantomParams(**self.params))
        return case_from_phantom(phantom)


def case_from_phantom(phantom: Any) -> Case:
    """A Case from a ``training.phantoms.types.CTPhantom``, its arrays in RAS+ canonical
    order like every Case (the generator lays them out as DICOM does, LPS)."""
    truth = phantom.vertebra_truth
    affine = np.asarray(phantom.affine, dtype=np.float64)
    image, vertebrae, subregions = (
        nib.as_closest_canonical(
            nib.Nifti1Image(np.asarray(array, dtype=dtype), affine)  # type: ignore[no-untyped-call]
        )
        for array, dtype in (
            (phantom.image_hu, np.float32),
            (phantom.vertebrae, np.uint8),
            (phantom.subregions, np.uint8),
        )
    )
    return Case(
        case_id=str(phantom.phantom_id),
        image_hu=np.ascontiguousarray(image.dataobj),
        vertebrae=np.ascontiguousarray(vertebrae.dataobj),
        subregions=np.ascontiguousarray(subregions.dataobj),
        affine=np.asarray(image.affine, dtype=np.float64),
        grades={v.label: int(v.genant_grade) for v in truth},
        morphologies={v.label: str(v.morphology) for v in truth},
        complete={v.label: bool(v.complete) for v in truth},
        centroids_mm={v.label: _point(v.centroid_mm) for v in truth},
        heights_mm={v.label: dict(v.heights_mm) for v in truth},
    )


def _point(values: Any) -> Point:
    x, y, z = (float(c) for c in values)
    return (x, y, z)
