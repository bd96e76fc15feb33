"""Cone-beam geometry of a lateral or AP radiograph of a phantom (all positions RAS mm).

The central ray runs from the X-ray source through the spine centre (the isocentre) to the
detector centre. Rows of the image run head to feet; columns run anterior to posterior on a
lateral view (patient facing the viewer's left) and patient right to left on an AP view (as if
facing the patient). A point ``p`` projects where the line source -> p meets the detector plane;
its magnification is ``SID / depth(p)``, the depth measured along the central ray.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from spinescreen.errors import ConfigError, GeometryError

View = Literal["lateral", "ap"]
DETECTOR_MAX_MM = (430.0, 350.0)  # rows x columns: a 43 x 35 cm (17 x 14 inch) cassette
# (beam direction, column direction, view position) per view, RAS unit vectors
_VIEWS: dict[str, tuple[tuple[float, ...], tuple[float, ...], str]] = {
    "lateral": ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), "LL"),  # source right, detector left
    "ap": ((0.0, -1.0, 0.0), (-1.0, 0.0, 0.0), "AP"),  # source anterior, detector posterior
}
_FEET = np.array([0.0, 0.0, -1.0])


@dataclass(frozen=True)
class ProjectionGeometry:
    """Source, detector frame and grid. Pixel (row, col) centre lies at
    ``detector_origin + col * spacing * column_direction + row * spacing * row_direction``."""

    view: View
    view_position: str  # DICOM ViewPosition: "LL" or "AP"
    source_mm: NDArray[np.float64]
    isocenter_mm: NDArray[np.float64]
    beam_direction: NDArray[np.float64]  # unit, source -> detector
    column_direction: NDArray[np.float64]  # unit, along a row (columns grow)
    row_direction: NDArray[np.float64]  # unit, down a column (rows grow): towards the feet
    sid_mm: float  # source-image (detector) distance
    sod_mm: float  # source-object (isocentre) distance
    pixel_mm: float  # detector pixel pitch, square pixels
    shape: tuple[int, int]  # rows, columns
    detector_origin_mm: NDArray[np.float64]  # centre of pixel (0, 0)

    @property
    def magnification(self) -> float:
        """Radiographic magnification at the isocentre (the spine)."""
        return self.sid_mm / self.sod_mm

    def depth(self, points_mm: NDArray[np.float64]) -> NDArray[np.float64]:
        """Distance from the source along the central ray, per point (N, 3) -> (N,)."""
        return np.asarray((points_mm - self.source_mm) @ self.beam_direction, dtype=np.float64)

    def project(self, points_mm: NDArray[np.float64]) -> NDArray[np.float64]:
        """Detector pixel coordinates (row, col) of RAS points, shape (N, 3) -> (N, 2)."""
        points = np.atleast_2d(np.asarray(points_mm, dtype=np.float64))
        depth = self.depth(points)
        if np.any(depth <= 0):
            raise GeometryError("a point lies behind the X-ray source: check the geometry")
        hit = self.source_mm + (points - self.source_mm) * (self.sid_mm / depth)[:, None]
        offset = hit - self.detector_origin_mm
        rows = offset @ self.row_direction / self.pixel_mm
        cols = offset @ self.column_direction / self.pixel_mm
        return np.stack([rows, cols], axis=1)

    def detector_points(
        self, rows: NDArray[np.float64], cols: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """RAS positions of detector pixel coordinates (broadcast arrays) -> (..., 3)."""
        return np.asarray(
            self.detector_origin_mm
            + (
                np.asarray(cols)[..., None] * self.column_direction
                + np.asarray(rows)[..., None] * self.row_direction
            )
            * self.pixel_mm,
            dtype=np.float64,
        )


def make_geometry(
    view: str,
    isocenter_mm: NDArray[np.float64],
    volume_corners_mm: NDArray[np.float64],
    sid_mm: float,
    magnification: float,
    pixel_mm: float,
) -> ProjectionGeometry:
    """Place source and detector around ``isocenter_mm``; size the detector to the phantom."""
    if view not in _VIEWS:
        raise ConfigError(f"radiograph view {view!r} is not supported: use 'lateral' or 'ap'")
    if not 1.0 < magnification < 2.0:
        raise ConfigError(f"magnification {magnification} is implausible: use 1.05-1.5")
    beam, column, position = _VIEWS[view]
    beam_direction, column_direction = np.array(beam), np.array(column)
    sod = sid_mm / magnification
    source = isocenter_mm - sod * beam_direction
    centre = source + sid_mm * beam_direction
    draft = ProjectionGeometry(
        view=view,  # type: ignore[arg-type]
        view_position=position,
        source_mm=source,
        isocenter_mm=np.asarray(isocenter_mm, dtype=np.float64),
        beam_direction=beam_direction,
        column_direction=column_direction,
        row_direction=_FEET,
        sid_mm=sid_mm,
        sod_mm=sod,
        pixel_mm=pixel_mm,
        shape=(1, 1),
        detector_origin_mm=centre,
    )
    return _sized_to(draft, volume_corners_mm)


def _sized_to(draft: ProjectionGeometry, corners_mm: NDArray[np.float64]) -> ProjectionGeometry:
    """Crop the detector to the projected phantom (at most a 43 x 35 cm cassette).

    Rows keep only the band every ray crosses in full (the projection of the far face), so
    the ends of the CT's field of view do not show as dark truncation bands. Columns are
    centred on the central ray (the spine), as a lateral spine film is collimated.
    """
    projected = draft.project(corners_mm) * draft.pixel_mm  # mm from the detector centre
    far = draft.depth(corners_mm) >= np.median(draft.depth(corners_mm))
    half = np.array(DETECTOR_MAX_MM) / 2.0
    low = np.maximum(projected.min(axis=0), -half)
    high = np.minimum(projected.max(axis=0), half)
    low[0] = max(low[0], projected[far, 0].min(), projected[~far, 0].min())
    high[0] = min(high[0], projected[far, 0].max(), projected[~far, 0].max())
    reach = min(half[1], max(-low[1], high[1]))  # columns centred on the spine, air beyond
    low[1], high[1] = -reach, reach
    largest = np.floor(np.array(DETECTOR_MAX_MM) / draft.pixel_mm).astype(int)
    shape = np.clip(np.ceil((high - low) / draft.pixel_mm).astype(int), 8, largest)
    origin = (
        draft.detector_origin_mm + low[0] * draft.row_direction + low[1] * draft.column_direction
    )
    return replace(draft, shape=(int(shape[0]), int(shape[1])), detector_origin_mm=origin)
