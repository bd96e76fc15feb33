"""Reorientation between a Volume's own axes and RAS+ canonical order (what models expect).

The model interface takes arrays in RAS+ canonical axis order (i: R, j: A, k: S, as
``nibabel.as_closest_canonical`` gives). These helpers permute/flip a Volume's array to that
order and bring label maps back onto the Volume's own grid, exactly (no resampling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from nibabel import orientations as _orientations
from numpy.typing import NDArray

from pipeline.types import Volume

orientations: Any = _orientations  # nibabel's functions are untyped


@dataclass(frozen=True)
class CanonicalView:
    """A volume's array in RAS+ canonical order, and how to undo the reorientation."""

    array: NDArray[Any]
    spacing_mm: tuple[float, float, float]  # along the canonical axes
    to_canonical: NDArray[np.float64]  # nibabel orientation transform
    from_canonical: NDArray[np.float64]

    def back(self, canonical: NDArray[Any]) -> NDArray[Any]:
        """A canonical-order array (e.g. a label map) on the volume's own axes."""
        return np.ascontiguousarray(orientations.apply_orientation(canonical, self.from_canonical))


def to_canonical(
    volume: Volume, array: NDArray[Any] | None = None, contiguous: bool = True
) -> CanonicalView:
    """``array`` (default: the volume's) reordered to RAS+ canonical axes: a C-contiguous copy,
    or with ``contiguous=False`` a strided view of it (no copy: a whole CT is 0.4 GB)."""
    own = orientations.io_orientation(volume.affine_ras)
    ras = np.array([[0, 1], [1, 1], [2, 1]], dtype=np.float64)
    forward = orientations.ornt_transform(own, ras)
    backward = orientations.ornt_transform(ras, own)
    data = volume.array if array is None else array
    canonical = orientations.apply_orientation(data, forward)
    if contiguous:
        canonical = np.ascontiguousarray(canonical)
    spacing = volume.spacing_mm
    order = [int(a) for a in forward[:, 0]]  # own axis n goes to canonical axis order[n]
    canonical_spacing = [0.0, 0.0, 0.0]
    for own_axis, target in enumerate(order):
        canonical_spacing[target] = spacing[own_axis]
    sx, sy, sz = canonical_spacing
    return CanonicalView(canonical, (sx, sy, sz), forward, backward)
