"""The one definition of how images are prepared for the networks, at training and inference.

Arrays are in RAS+ canonical axis order (i: Right, j: Anterior, k: Superior), HU as float32.
A network may have been trained on arrays in another order (``spec.orientation``: RAS, or
LPS as the phantom generator lays them out); ``reorient`` maps RAS arrays to that order and
back, at training and at inference.
The segmenter sees the whole volume resampled to ``spec.spacing_mm`` and windowed to 0-1;
the grader sees a cube of ``spec.patch_size`` voxels at ``spec.spacing_mm`` centred on the
vertebral body, with a second channel marking the vertebra being graded. Training wraps these
same functions in MONAI dictionary transforms (training/transforms.py); the parameters are
recorded in each model card.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from monai.transforms.intensity.array import ScaleIntensityRange
from numpy.typing import NDArray
from scipy import ndimage

from spinescreen.errors import ModelError

Spacing = tuple[float, float, float]
Shape3 = tuple[int, int, int]
AIR_HU = -1000.0
# Array orders a network can expect, and the RAS axes each reverses.
ORIENTATION_FLIPS: dict[str, tuple[int, ...]] = {"RAS": (), "LPS": (0, 1)}


@dataclass(frozen=True)
class PreprocessingSpec:
    """Orientation, voxel spacing, intensity window and network patch size of one model."""

    spacing_mm: Spacing
    window_hu: tuple[float, float]
    patch_size: Shape3
    orientation: str = "RAS"

    def __post_init__(self) -> None:
        if any(s <= 0 for s in self.spacing_mm):
            raise ModelError(f"preprocessing spacing must be positive, got {self.spacing_mm}")
        if self.window_hu[0] >= self.window_hu[1]:
            raise ModelError(f"intensity window must be (low, high), got {self.window_hu}")
        if self.orientation not in ORIENTATION_FLIPS:
            raise ModelError(
                f"orientation must be one of {', '.join(ORIENTATION_FLIPS)}, "
                f"got {self.orientation!r}"
            )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreprocessingSpec:
        return cls(
            spacing_mm=_triple_float(data["spacing_mm"]),
            window_hu=(float(data["window_hu"][0]), float(data["window_hu"][1])),
            patch_size=_triple_int(data["patch_size"]),
            orientation=str(data.get("orientation", "RAS")),
        )


def _triple_float(values: Any) -> Spacing:
    a, b, c = (float(v) for v in values)
    return (a, b, c)


def _triple_int(values: Any) -> Shape3:
    a, b, c = (int(v) for v in values)
    return (a, b, c)


def reorient(array: NDArray[Any], orientation: str) -> NDArray[Any]:
    """A RAS-ordered 3D array in the axis order ``orientation`` (a view), and the reverse:
    the flips are their own inverse."""
    flips = ORIENTATION_FLIPS[orientation]
    return np.flip(array, axis=flips) if flips else array


def window_transform(spec: PreprocessingSpec) -> ScaleIntensityRange:
    """HU window -> 0..1, clipped (MONAI ScaleIntensityRange; training uses the dict form)."""
    low, high = spec.window_hu
    return ScaleIntensityRange(a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)


def target_shape(shape: tuple[int, ...], spacing: Spacing, target: Spacing) -> Shape3:
    """Grid shape covering the same extent at ``target`` spacing."""
    a, b, c = (max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, target, strict=True))
    return (a, b, c)


def resample_image(image: NDArray[np.float32], shape: Shape3) -> torch.Tensor:
    """Linear resampling of a 3D image to ``shape`` (voxel centres aligned), as (1, 1, *shape)."""
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    if tuple(tensor.shape[2:]) == shape:
        return tensor
    with torch.no_grad():
        return torch.nn.functional.interpolate(
            tensor, size=shape, mode="trilinear", align_corners=False
        )


def nearest_indices(n_in: int, n_out: int) -> NDArray[np.intp]:
    """Source index of each output voxel for nearest resampling (centre aligned)."""
    positions = (np.arange(n_out) + 0.5) * (n_in / n_out)
    index: NDArray[np.intp] = np.clip(np.floor(positions).astype(np.intp), 0, n_in - 1)
    return index


def resample_labels(labels: NDArray[np.uint8], shape: tuple[int, ...]) -> NDArray[np.uint8]:
    """Nearest-neighbour resampling of a label map to ``shape``."""
    if labels.shape == shape:
        return labels
    index = [nearest_indices(n, m) for n, m in zip(labels.shape, shape, strict=True)]
    out = np.take(labels, index[0], axis=0)
    out = np.take(out, index[1], axis=1)
    return np.ascontiguousarray(np.take(out, index[2], axis=2))


def segmentation_input(
    image_hu: NDArray[np.float32], spacing: Spacing, spec: PreprocessingSpec
) -> torch.Tensor:
    """The segmenter's input: resampled to the card's spacing and windowed, (1, 1, X, Y, Z)."""
    shape = target_shape(image_hu.shape, spacing, spec.spacing_mm)
    tensor = resample_image(image_hu, shape)
    windowed = window_transform(spec)(tensor[0])
    return torch.as_tensor(windowed, dtype=torch.float32)[None]


def vertebra_centre_voxel(
    vertebrae: NDArray[np.uint8], subregions: NDArray[np.uint8], label: int
) -> NDArray[np.float64]:
    """Voxel centre of the vertebral body of ``label`` (of the whole vertebra if no body)."""
    box = ndimage.find_objects((vertebrae == label).astype(np.uint8))
    if not box or box[0] is None:
        raise ModelError(f"vertebra label {label} is absent from the label map")
    return _centre_in_box(vertebrae, subregions, label, box[0])


def _centre_in_box(
    vertebrae: NDArray[np.uint8],
    subregions: NDArray[np.uint8],
    label: int,
    box: tuple[slice, ...],
) -> NDArray[np.float64]:
    mask = vertebrae[box] == label
    body = mask & (subregions[box] == 1)
    points: NDArray[np.float64] = np.argwhere(body if body.any() else mask).mean(axis=0)
    return points + np.array([s.start for s in box], dtype=np.float64)


def grader_patch(
    image_hu: NDArray[np.float32],
    vertebrae: NDArray[np.uint8],
    label: int,
    centre_voxel: NDArray[np.float64],
    spacing: Spacing,
    spec: PreprocessingSpec,
) -> NDArray[np.float32]:
    """(2, *patch) cube around ``centre_voxel``: windowed image and this vertebra's mask,
    from RAS arrays, its axes in the order ``spec.orientation`` (the cube is symmetric about
    its centre, so reversing its axes is sampling in that order)."""
    grid = _patch_grid(centre_voxel, spacing, spec)
    image = ndimage.map_coordinates(image_hu, grid, order=1, mode="constant", cval=AIR_HU)
    mask = ndimage.map_coordinates(vertebrae, grid, order=0, mode="constant", cval=0) == label
    low, high = spec.window_hu
    windowed = np.clip((image - low) / (high - low), 0.0, 1.0)
    shape = spec.patch_size
    patch = np.stack([windowed.reshape(shape), mask.reshape(shape)]).astype(np.float32)
    flips = tuple(axis + 1 for axis in ORIENTATION_FLIPS[spec.orientation])
    return np.ascontiguousarray(np.flip(patch, axis=flips)) if flips else patch


def _patch_grid(
    centre_voxel: NDArray[np.float64], spacing: Spacing, spec: PreprocessingSpec
) -> NDArray[np.float64]:
    axes = []
    for n, s_out, s_in, c in zip(
        spec.patch_size, spec.spacing_mm, spacing, centre_voxel, strict=True
    ):
        offsets_mm = (np.arange(n) - (n - 1) / 2.0) * s_out
        axes.append(c + offsets_mm / s_in)
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh])
