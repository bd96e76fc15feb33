"""2D ground truth of a radiograph: each vertebra's morphometry points, outline and visibility.

Points are detector pixel coordinates (row, col). The body outline is the contour of the
projected vertebral-body mask (``subregions == 1`` of that label) rasterised at about the
projected voxel size. Heights are de-magnified to millimetres at the vertebra's own depth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from training.phantoms.radiograph_geometry import ProjectionGeometry
from training.phantoms.types import CTPhantom, Morphology, VertebraTruth

MAX_OUTLINE_POINTS = 200_000  # voxels projected per vertebra (subsampled beyond)
BODY_REACH_MM = 45.0  # half-size of the box searched around a body centroid
SHOULDER_LEVELS = ("T1", "T2", "T3")  # hidden behind the shoulders on a lateral view


@dataclass(frozen=True)
class ProjectedVertebra:
    """One vertebra on the radiograph, in detector pixels (row, col)."""

    label: int
    level: str
    points_px: dict[str, tuple[float, float]]  # the six morphometry points
    body_centroid_px: tuple[float, float]
    body_outline_px: NDArray[np.float64] = field(repr=False)  # (N, 2) closed polygon
    magnification: float  # at this vertebra's depth
    projected_heights_mm: dict[str, float]  # Ha, Hm, Hp as seen, de-magnified
    genant_grade: int
    morphology: Morphology
    height_loss: float
    complete: bool
    visible: bool
    hidden_reason: str  # "" when visible


def shoulder_z_mm(phantom: CTPhantom) -> float | None:
    """Height (RAS z) below which the shoulders no longer cover the spine, if in view."""
    by_level = {v.level: v for v in phantom.vertebra_truth}
    if "T4" in by_level and any(level in by_level for level in SHOULDER_LEVELS):
        return float(max(p[2] for p in by_level["T4"].morphometry_points_mm.values())) + 2.0
    present = [by_level[level] for level in SHOULDER_LEVELS if level in by_level]
    if present:
        return min(float(v.body_centroid_mm[2]) for v in present) - 15.0
    return None


def project_vertebrae(
    phantom: CTPhantom, geometry: ProjectionGeometry
) -> tuple[ProjectedVertebra, ...]:
    shoulders = shoulder_z_mm(phantom) if geometry.view == "lateral" else None
    out = []
    for truth in phantom.vertebra_truth:
        outline = _outline(phantom, truth.label, _search_box(phantom, truth), geometry)
        out.append(_projected(truth, geometry, outline, shoulders))
    return tuple(out)


def _projected(
    truth: VertebraTruth,
    geometry: ProjectionGeometry,
    outline: NDArray[np.float64],
    shoulders: float | None,
) -> ProjectedVertebra:
    names = list(truth.morphometry_points_mm)
    coords = np.array([truth.morphometry_points_mm[n] for n in names], dtype=np.float64)
    points = geometry.project(coords) if names else np.zeros((0, 2))
    centroid = np.array(truth.body_centroid_mm, dtype=np.float64)
    magnification = geometry.sid_mm / float(geometry.depth(centroid[None])[0])
    px = {n: (float(p[0]), float(p[1])) for n, p in zip(names, points, strict=True)}
    heights = _heights_mm(px, geometry.pixel_mm / magnification)
    reason = _hidden_reason(truth, geometry, points, shoulders)
    row, col = geometry.project(centroid[None])[0]
    return ProjectedVertebra(
        label=truth.label,
        level=truth.level,
        points_px=px,
        body_centroid_px=(float(row), float(col)),
        body_outline_px=outline,
        magnification=magnification,
        projected_heights_mm=heights,
        genant_grade=truth.genant_grade,
        morphology=truth.morphology,
        height_loss=truth.height_loss,
        complete=truth.complete,
        visible=not reason,
        hidden_reason=reason,
    )


def _heights_mm(px: dict[str, tuple[float, float]], mm_per_px: float) -> dict[str, float]:
    """Ha, Hm, Hp between the projected endplate points (only where both points exist)."""
    heights = {}
    for where in ("anterior", "middle", "posterior"):
        top, bottom = px.get(f"superior_{where}"), px.get(f"inferior_{where}")
        if top is not None and bottom is not None:
            heights[where] = float(np.hypot(top[0] - bottom[0], top[1] - bottom[1])) * mm_per_px
    return heights


def _hidden_reason(
    truth: VertebraTruth,
    geometry: ProjectionGeometry,
    points: NDArray[np.float64],
    shoulders: float | None,
) -> str:
    if not truth.complete or len(points) == 0:
        return "incomplete in the field of view"
    rows, cols = geometry.shape
    inside = (points[:, 0] >= 0) & (points[:, 0] <= rows - 1)
    inside &= (points[:, 1] >= 0) & (points[:, 1] <= cols - 1)
    if not inside.all():
        return "outside the detector"
    if shoulders is not None and truth.body_centroid_mm[2] > shoulders:
        return "hidden by the shoulders"
    return ""


def _search_box(phantom: CTPhantom, truth: VertebraTruth) -> tuple[slice, ...] | None:
    """Voxel box of +-BODY_REACH_MM around the body centroid (no full-volume scan)."""
    centre = np.array(truth.body_centroid_mm, dtype=np.float64)
    offsets = np.array(np.meshgrid(*[[-1.0, 1.0]] * 3, indexing="ij")).reshape(3, -1).T
    corners = centre + BODY_REACH_MM * offsets
    inverse = np.linalg.inv(phantom.affine)
    ijk = corners @ inverse[:3, :3].T + inverse[:3, 3]
    low = np.maximum(np.floor(ijk.min(axis=0)).astype(int), 0)
    high = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 1, phantom.vertebrae.shape)
    if np.any(high <= low):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def _outline(
    phantom: CTPhantom,
    label: int,
    box: tuple[slice, ...] | None,
    geometry: ProjectionGeometry,
) -> NDArray[np.float64]:
    """Contour (row, col) of the projected vertebral body; empty (0, 2) if it has no voxels."""
    if box is None:
        return np.zeros((0, 2))
    labels = phantom.vertebrae[box] == label
    body = labels & (phantom.subregions[box] == 1)
    ijk = np.argwhere(body if body.any() else labels)
    if len(ijk) == 0:
        return np.zeros((0, 2))
    ijk = ijk[:: max(1, len(ijk) // MAX_OUTLINE_POINTS)] + [s.start for s in box]
    world = ijk @ phantom.affine[:3, :3].T + phantom.affine[:3, 3]
    projected = geometry.project(world)
    voxel_px = max(phantom.spacing_mm) * geometry.magnification / geometry.pixel_mm
    return _mask_contour(projected, max(1.0, voxel_px / 2.0))


def _mask_contour(projected: NDArray[np.float64], cell: float) -> NDArray[np.float64]:
    import contourpy

    origin = projected.min(axis=0) - 4 * cell
    bins = np.floor((projected - origin) / cell).astype(int)
    grid = np.zeros(bins.max(axis=0) + 5, dtype=bool)
    grid[bins[:, 0], bins[:, 1]] = True
    grid = ndimage.binary_fill_holes(ndimage.binary_closing(grid, iterations=2))
    lines = contourpy.contour_generator(z=grid.astype(np.float64)).lines(0.5)
    longest = np.asarray(max(lines, key=lambda line: len(line)))  # (x = column, y = row)
    rows = origin[0] + (longest[:, 1] + 0.5) * cell
    cols = origin[1] + (longest[:, 0] + 0.5) * cell
    return np.stack([rows, cols], axis=1)
