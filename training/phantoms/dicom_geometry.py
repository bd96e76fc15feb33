"""From a RAS+ voxel grid to DICOM axial slices in patient LPS coordinates.

A scanner shows axial slices with the patient's right on the viewer's left and anterior at the
top: rows run towards +X (patient left) and columns towards +Y (posterior) in DICOM LPS. The
phantom's in-plane axes are flipped (and swapped if needed) so that the written series looks like
that, whatever order the generator stored its arrays in. Axis k stays the slice axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from spinescreen.errors import GeometryError

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class SliceGrid:
    """A volume in DICOM order: ``volume[c, r, k]`` is column c, row r of slice k.

    ``affine`` maps (c, r, k) to LPS mm. Pixel (row r, column c) of slice k lies at
    ``position(k) + c * column_spacing * row_direction + r * row_spacing * column_direction``.
    """

    volume: NDArray[np.int16]
    affine_lps: NDArray[np.float64]

    @property
    def row_direction(self) -> NDArray[np.float64]:  # IOP[0:3]: along a row (columns grow)
        return _unit(self.affine_lps[:3, 0])

    @property
    def column_direction(self) -> NDArray[np.float64]:  # IOP[3:6]: down a column (rows grow)
        return _unit(self.affine_lps[:3, 1])

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        """DICOM PixelSpacing order: (row spacing, column spacing)."""
        return (
            float(np.linalg.norm(self.affine_lps[:3, 1])),
            float(np.linalg.norm(self.affine_lps[:3, 0])),
        )

    @property
    def normal(self) -> NDArray[np.float64]:
        return np.cross(self.row_direction, self.column_direction)

    @property
    def slice_spacing(self) -> float:
        return abs(float(self.affine_lps[:3, 2] @ self.normal))

    def position(self, k: int) -> NDArray[np.float64]:
        """ImagePositionPatient of slice k (LPS mm of its first pixel's centre)."""
        point: NDArray[np.float64] = self.affine_lps @ np.array([0.0, 0.0, float(k), 1.0])
        return point[:3]


def _unit(vector: NDArray[np.float64]) -> NDArray[np.float64]:
    return vector / np.linalg.norm(vector)


def slice_grid(image_hu: NDArray[np.int16], affine_ras: NDArray[np.float64]) -> SliceGrid:
    """Reorder the in-plane axes of a RAS+ volume into the scanner's display order."""
    affine = RAS_TO_LPS @ np.asarray(affine_ras, dtype=np.float64)
    _check_in_plane_orthogonal(affine)
    volume = image_hu
    if abs(affine[0, 1]) > abs(affine[0, 0]):  # axis j runs along X: swap i and j
        volume = volume.transpose(1, 0, 2)
        affine = affine[:, [1, 0, 2, 3]]
    for axis, dominant in ((0, 0), (1, 1)):
        if affine[dominant, axis] < 0:
            volume = np.flip(volume, axis=axis)
            affine = _flipped(affine, axis, volume.shape[axis])
    if np.linalg.det(affine[:3, :3]) == 0:
        raise GeometryError("the phantom affine is singular: its voxel axes are not independent")
    return SliceGrid(volume=volume, affine_lps=affine)


def _flipped(affine: NDArray[np.float64], axis: int, size: int) -> NDArray[np.float64]:
    out = affine.copy()
    out[:3, 3] = affine[:3, 3] + (size - 1) * affine[:3, axis]
    out[:3, axis] = -affine[:3, axis]
    return out


def _check_in_plane_orthogonal(affine: NDArray[np.float64]) -> None:
    a, b = _unit(affine[:3, 0]), _unit(affine[:3, 1])
    cosine = float(a @ b)
    if abs(cosine) > 1e-6:
        raise GeometryError(
            f"the phantom's in-plane voxel axes are not orthogonal (cosine {cosine:.2e}); "
            "DICOM ImageOrientationPatient needs orthogonal row and column directions"
        )
