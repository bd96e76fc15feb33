"""MONAI dictionary transforms: the shared preprocessing (models/preprocessing.py) + augmentation.

Random augmentation draws its parameters from the transform's own random state (seeded with
``set_random_state``), so a run with the same seed replays the same samples.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.transforms.compose import Compose
from monai.transforms.croppad.dictionary import RandCropByPosNegLabeld, SpatialPadd
from monai.transforms.intensity.dictionary import (
    RandAdjustContrastd,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
)
from monai.transforms.spatial.dictionary import RandAffined, RandFlipd
from monai.transforms.transform import MapTransform
from numpy.typing import NDArray

from models.networks import VERTEBRA_LABELS
from models.preprocessing import (
    PreprocessingSpec,
    reorient,
    resample_labels,
    segmentation_input,
)
from training.datasets.types import Case

IGNORE_INDEX = 255  # sub-region target where a dataset has no sub-region mask
_CLASS_OF_LABEL = np.zeros(256, dtype=np.uint8)
for _index, _label in enumerate(VERTEBRA_LABELS):
    _CLASS_OF_LABEL[_label] = _index


def vertebra_classes(labels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """VerSe labels -> class indices of the segmenter's vertebra head (unknown -> 0)."""
    mapped: NDArray[np.uint8] = _CLASS_OF_LABEL[labels]
    return mapped


class PrepareSegmentationd(MapTransform):
    """Case -> {"image", "vertebra", "subregion"} on the model grid, channel first.

    The image goes through :func:`models.preprocessing.segmentation_input`, the same call the
    runtime makes; labels are resampled nearest to the same grid.
    """

    def __init__(self, spec: PreprocessingSpec) -> None:
        super().__init__(keys=["case"])
        self.spec = spec

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        case: Case = data["case"]
        orientation = self.spec.orientation  # cases are RAS; the network's order may differ
        image_hu = reorient(case.image_hu, orientation)
        image = segmentation_input(image_hu, case.spacing_mm, self.spec)[0]
        shape = tuple(image.shape[1:])
        vertebra = vertebra_classes(resample_labels(reorient(case.vertebrae, orientation), shape))
        if case.subregions is None:
            subregion = np.full(shape, IGNORE_INDEX, dtype=np.uint8)
        else:
            subregion = resample_labels(reorient(case.subregions, orientation), shape)
        return {
            "image": image,
            "vertebra": torch.from_numpy(vertebra[None].astype(np.int64)),
            "subregion": torch.from_numpy(subregion[None].astype(np.int64)),
        }


def segmentation_augmentation(spec: PreprocessingSpec, samples: int) -> Compose:
    """Random crops around vertebrae and intensity/geometry augmentation."""
    keys = ["image", "vertebra", "subregion"]
    return Compose(
        [
            SpatialPadd(keys=keys, spatial_size=spec.patch_size, value=0),
            RandCropByPosNegLabeld(
                keys=keys,
                label_key="vertebra",
                spatial_size=spec.patch_size,
                pos=3,
                neg=1,
                num_samples=samples,
            ),
            RandAffined(
                keys=keys,
                prob=0.5,
                rotate_range=(0.15, 0.15, 0.15),
                scale_range=(0.1, 0.1, 0.1),
                mode=("bilinear", "nearest", "nearest"),
                padding_mode="zeros",
            ),
            RandGaussianNoised(keys=["image"], prob=0.5, std=0.03),
            RandScaleIntensityd(keys=["image"], factors=0.15, prob=0.5),
            RandShiftIntensityd(keys=["image"], offsets=0.05, prob=0.5),
            RandAdjustContrastd(keys=["image"], gamma=(0.7, 1.5), prob=0.3),
        ]
    )


def grader_augmentation() -> Compose:
    """Augmentation of grader patches ("patch": (2, *patch_size) tensor)."""
    return Compose(
        [
            RandFlipd(keys=["patch"], spatial_axis=0, prob=0.5),
            RandAffined(
                keys=["patch"],
                prob=0.5,
                rotate_range=(0.1, 0.1, 0.1),
                scale_range=(0.05, 0.05, 0.05),
                mode="bilinear",
                padding_mode="zeros",
            ),
            RandGaussianNoised(keys=["patch"], prob=0.5, std=0.02),
            RandScaleIntensityd(keys=["patch"], factors=0.1, prob=0.5),
        ]
    )
