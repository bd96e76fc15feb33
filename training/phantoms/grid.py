"""The voxel grid and vectorised implicit shapes evaluated only inside bounding boxes.

Voxel axes follow the DICOM pixel layout: ``i`` towards the patient's left, ``j`` towards
posterior, ``k`` towards superior (NIfTI axis codes L, P, S), so the affine is
``diag(-sx, -sy, sz)`` plus the origin. Shapes return approximate signed distances in mm
(negative inside) on broadcast coordinate axes ``(x[:, None, None], y[None, :, None],
z[None, None, :])``, so a box costs one float32 array per shape and never a Python loop.
"""

# numpy arithmetic is typed as Any in its stubs; the shapes and dtypes are documented.
# mypy: disable-error-code="no-any-return"

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class Grid:
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]  # RAS mm of voxel (0, 0, 0)

    @property
    def affine(self) -> F64:
        sx, sy, sz = self.spacing
        aff = np.diag([-sx, -sy, sz, 1.0])
        aff[:3, 3] = self.origin
        return aff

    def to_voxel(self, points: F64) -> F64:
        """RAS mm (..., 3) -> continuous voxel indices (..., 3)."""
        o = np.asarray(self.origin)
        step = np.array([-self.spacing[0], -self.spacing[1], self.spacing[2]])
        return (np.asarray(points, np.float64) - o) / step

    def to_world(self, voxels: F64) -> F64:
        o = np.asarray(self.origin)
        step = np.array([-self.spacing[0], -self.spacing[1], self.spacing[2]])
        return np.asarray(voxels, np.float64) * step + o

    def box(self, lo_mm: F64, hi_mm: F64, margin: float = 2.0) -> Box | None:
        """Voxel box covering the world box [lo, hi] (+ margin mm), clipped; None if empty."""
        corners = np.array([lo_mm - margin, hi_mm + margin])
        vox = self.to_voxel(corners)
        start = np.floor(vox.min(axis=0)).astype(int)
        stop = np.ceil(vox.max(axis=0)).astype(int) + 1
        start = np.maximum(start, 0)
        stop = np.minimum(stop, self.shape)
        if np.any(stop <= start):
            return None
        return (slice(start[0], stop[0]), slice(start[1], stop[1]), slice(start[2], stop[2]))

    def axes(self, box: Box) -> tuple[F32, F32, F32]:
        """Broadcastable world coordinates (mm) of the voxel centres of ``box``."""
        ox, oy, oz = self.origin
        sx, sy, sz = self.spacing
        x = (ox - sx * np.arange(box[0].start, box[0].stop)).astype(np.float32)
        y = (oy - sy * np.arange(box[1].start, box[1].stop)).astype(np.float32)
        z = (oz + sz * np.arange(box[2].start, box[2].stop)).astype(np.float32)
        return x[:, None, None], y[None, :, None], z[None, None, :]


def local_coords(grid: Grid, box: Box, centre: F64, frame: F64) -> tuple[F32, F32, F32]:
    """Coordinates of the box's voxels in a local frame (columns e_u, e_v, e_w)."""
    x, y, z = grid.axes(box)
    dx, dy, dz = x - np.float32(centre[0]), y - np.float32(centre[1]), z - np.float32(centre[2])
    f = frame.astype(np.float32)
    u, v, w = (dx * f[0, n] + dy * f[1, n] + dz * f[2, n] for n in range(3))
    return u, v, w


def sub_box(grid: Grid, box: Box, centre: F64, frame: F64, lo: F64, hi: F64) -> Box | None:
    """Slices, relative to ``box``, covering the local-frame box [lo, hi] (None if outside)."""
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    world = corners @ frame.T + centre
    inner = grid.box(world.min(axis=0), world.max(axis=0), margin=1.0)
    if inner is None:
        return None
    out = []
    for outer_s, inner_s in zip(box, inner, strict=True):
        start = max(inner_s.start, outer_s.start) - outer_s.start
        stop = min(inner_s.stop, outer_s.stop) - outer_s.start
        if stop <= start:
            return None
        out.append(slice(start, stop))
    return (out[0], out[1], out[2])


def capsule(
    u: F32,
    v: F32,
    w: F32,
    a: F64,
    b: F64,
    radius: float,
    w_scale: float = 1.0,
    open_ends: bool = False,
) -> F32:
    """Signed distance to the segment a-b thickened by ``radius``; ``w_scale`` > 1 makes
    the cross-section taller along w (a plate-like process). ``open_ends`` measures to the
    infinite line instead (the radial depth inside a tube, without end caps)."""
    ba = (b - a) * np.array([1.0, 1.0, 1.0 / w_scale])
    pu, pv, pw = u - np.float32(a[0]), v - np.float32(a[1]), (w - np.float32(a[2])) / w_scale
    denom = float(ba @ ba) or 1.0
    t = (pu * ba[0] + pv * ba[1] + pw * ba[2]) / np.float32(denom)
    if not open_ends:
        t = np.clip(t, 0.0, 1.0)
    du, dv, dw = pu - t * ba[0], pv - t * ba[1], pw - t * ba[2]
    return np.sqrt(du * du + dv * dv + dw * dw) - np.float32(radius)


def ellipsoid(u: F32, v: F32, w: F32, axes: tuple[float, float, float]) -> F32:
    """Approximate signed distance to an axis-aligned ellipsoid centred at the origin."""
    a, b, c = axes
    r = np.sqrt((u / a) ** 2 + (v / b) ** 2 + (w / c) ** 2)
    return (r - 1.0) * np.float32(min(axes))


def segment_box(a: F64, b: F64, radius: float) -> tuple[F64, F64]:
    lo = np.minimum(a, b) - radius
    hi = np.maximum(a, b) + radius
    return lo, hi


def occupancy(sdf: F32, edge_mm: float) -> F32:
    """Partial-volume fraction from a signed distance (linear ramp over ``edge_mm``)."""
    return np.clip(0.5 - sdf / np.float32(edge_mm), 0.0, 1.0)
