"""The body around the spine, painted as tissue classes on a coarse grid (about 2 mm).

Soft tissue is smooth, so it is painted coarse and upsampled; bone is drawn later at full
resolution. The body contour is a superelliptic cylinder whose centre and half-axes vary
along z, anchored to spinal levels (neck, shoulders, chest, abdomen, pelvis) and scaled by
the subject's habitus; the patient lies supine on a curved CT table. Organs are ellipsoids
and tubes placed relative to the spine: lungs above a domed diaphragm, mediastinum, heart,
aorta and IVC, liver, spleen, stomach, kidneys, bowel with gas, bladder, psoas, paraspinal
and gluteal muscles, the spinal canal.
"""

# numpy arithmetic is typed as Any in its stubs; the shapes and dtypes are documented.
# mypy: disable-error-code="no-any-return"

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from training.phantoms.anatomy import PlacedVertebra
from training.phantoms.grid import F32, F64, Grid, capsule, ellipsoid, segment_box


class Tissue(IntEnum):
    AIR = 0
    FAT = 1
    MUSCLE = 2
    LUNG = 3
    MEDIASTINUM = 4
    BLOOD = 5
    LIVER = 6
    KIDNEY = 7
    SPLEEN = 8
    BOWEL = 9
    GAS = 10
    CSF = 11
    URINE = 12
    TABLE = 13
    FOAM = 14
    VISCERAL_FAT = 15
    AORTA = 16
    SKIN = 17
    STOMACH = 18


@dataclass(frozen=True)
class Landmarks:
    """z (mm) of level centres and spine position as functions of z, from the placed spine."""

    z: dict[str, float]
    spine_z: F64  # ascending z of body centres
    spine_x: F64
    spine_y: F64
    s1_top: F64

    def spine_at(self, z: float | F64) -> tuple[F64, F64]:
        x = np.asarray(np.interp(z, self.spine_z, self.spine_x), np.float64)
        y = np.asarray(np.interp(z, self.spine_z, self.spine_y), np.float64)
        return x, y

    def level_z(self, name: str) -> float:
        return self.z.get(name, self.z.get("T12", 0.0) if name == "T13" else 0.0)


def landmarks(placed: list[PlacedVertebra], s1_top: F64) -> Landmarks:
    order = sorted(placed, key=lambda p: float(p.centre[2]))
    zs = np.array([p.centre[2] for p in order])
    return Landmarks(
        {p.shape.level: float(p.centre[2]) for p in placed},
        zs,
        np.array([p.centre[0] for p in order]),
        np.array([p.centre[1] for p in order]),
        s1_top,
    )


@dataclass(frozen=True)
class Contour:
    """Body cross-section along z: centre (x, y) and half-axes (a lateral, b AP), mm."""

    z: F64
    a: F64
    b: F64
    xc: F64
    yc: F64
    fat: float
    wall: float
    table_y: float

    def at(self, z: float) -> tuple[float, float, float, float]:
        return tuple(float(np.interp(z, self.z, v)) for v in (self.xc, self.yc, self.a, self.b))  # type: ignore[return-value]


def body_contour(lm: Landmarks, habitus: float, rng: np.random.Generator) -> Contour:
    """Anchored half-axes (lateral, AP) from pelvis to neck, scaled by habitus."""
    s1 = float(lm.s1_top[2])
    t1 = lm.level_z("T1")
    anchors = [  # z, a, b, back distance (spine body centre to skin)
        (s1 - 160.0, 175.0, 110.0, 85.0),
        (s1, 175.0, 118.0, 95.0),
        (lm.level_z("L3"), 158.0, 122.0, 88.0),
        (lm.level_z("T12"), 152.0, 118.0, 85.0),
        (lm.level_z("T8"), 158.0, 115.0, 82.0),
        (lm.level_z("T3"), 160.0, 105.0, 78.0),
        (t1 + 12.0, 125.0, 85.0, 72.0),
        (lm.level_z("C5"), 62.0, 58.0, 58.0),
        (lm.level_z("C1") + 60.0, 75.0, 90.0, 55.0),
    ]
    z, a, b, back = (np.array(col, np.float64) for col in zip(*anchors, strict=True))
    order = np.argsort(z)
    z, a, b, back = z[order], a[order], b[order], back[order]
    girth = habitus * (1.0 + 0.04 * rng.standard_normal())
    fat = float(np.clip(8.0 + 45.0 * (habitus - 0.85), 4.0, 45.0))
    a, b = a * girth, b * (0.9 + 0.25 * (habitus - 0.85)) * girth
    sx, sy = lm.spine_at(z)
    back_y = sy - back * (0.9 + 0.35 * (habitus - 0.85))
    trunk = (z > s1 - 120.0) & (z < t1)
    table_y = float(back_y[trunk].min()) + 4.0
    # the back lies flat on the table; the neck and head are raised on a support
    neck = np.clip((z - t1) / 80.0, 0.0, 1.0)
    back_y = table_y + np.maximum(back_y - table_y, 0.0) * (0.08 + 0.92 * neck)
    return Contour(z, a, b, 0.6 * sx, back_y + b, fat, float(rng.uniform(8.0, 16.0)), table_y)


class Painter:
    """Paint tissue codes into a coarse label grid, shape by shape, inside boxes."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.tissue = np.zeros(grid.shape, np.uint8)

    def ellipsoid(
        self,
        centre: F64,
        axes: tuple[float, float, float],
        code: Tissue,
        within: NDArray[np.bool_] | None = None,
    ) -> None:
        box = self.grid.box(centre - np.array(axes), centre + np.array(axes))
        if box is None:
            return
        x, y, z = self.grid.axes(box)
        inside = (
            ellipsoid(
                x - np.float32(centre[0]),
                y - np.float32(centre[1]),
                z - np.float32(centre[2]),
                axes,
            )
            < 0
        )
        if within is not None:
            inside &= within[box]
        self.tissue[box][inside] = code

    def tube(self, points: F64, radii: F64, code: Tissue) -> None:
        for n in range(len(points) - 1):
            a, b = points[n], points[n + 1]
            r = float(max(radii[n], radii[n + 1]))
            box = self.grid.box(*segment_box(a, b, r))
            if box is None:
                continue
            x, y, z = self.grid.axes(box)
            sdf = capsule(x, y, z, a, b, r)
            self.tissue[box][sdf < 0] = code


def contour_field(grid: Grid, c: Contour, shrink: float) -> F32:
    """Superelliptic 'radius' (< 1 inside) of the body contour shrunk by ``shrink`` mm."""
    x, y, z = grid.axes((slice(0, grid.shape[0]), slice(0, grid.shape[1]), slice(0, grid.shape[2])))
    zz = z.ravel().astype(np.float64)
    a = np.maximum(np.interp(zz, c.z, c.a) - shrink, 5.0).astype(np.float32)[None, None, :]
    b = np.maximum(np.interp(zz, c.z, c.b) - shrink, 5.0).astype(np.float32)[None, None, :]
    xc = np.interp(zz, c.z, c.xc).astype(np.float32)[None, None, :]
    yc = np.interp(zz, c.z, c.yc).astype(np.float32)[None, None, :]
    dx, dy = np.abs(x - xc) / a, np.abs(y - yc) / b
    return (dx * dx * np.sqrt(dx) + dy * dy * np.sqrt(dy)).astype(np.float32)


def paint_body(p: Painter, c: Contour) -> tuple[NDArray[np.bool_], F32]:
    """Skin, fat, muscle wall and the inner cavity; returns (cavity mask, y grid)."""
    g = p.grid
    outer = contour_field(g, c, 0.0) < 1.0
    _, y, _ = g.axes((slice(0, 1), slice(0, g.shape[1]), slice(0, 1)))
    above_table = y > np.float32(c.table_y)
    outer &= above_table
    p.tissue[outer] = Tissue.SKIN
    p.tissue[outer & (contour_field(g, c, 2.5) < 1.0)] = Tissue.FAT
    wall = contour_field(g, c, c.fat) < 1.0
    p.tissue[wall & above_table] = Tissue.MUSCLE
    cavity = (contour_field(g, c, c.fat + c.wall) < 1.0) & above_table
    return cavity, y


def paint_table(p: Painter, c: Contour) -> None:
    g = p.grid
    x, y, _ = g.axes((slice(0, g.shape[0]), slice(0, g.shape[1]), slice(0, 1)))
    top = np.float32(c.table_y) - (x / 260.0) ** 2 * 25.0
    foam = (y < top) & (y > top - 16.0) & (np.abs(x) < 240.0)
    shell = foam & ((y > top - 3.5) | (y < top - 12.5))
    plane = np.broadcast_to(foam, (g.shape[0], g.shape[1], 1))[:, :, 0]
    p.tissue[plane] = Tissue.FOAM
    p.tissue[np.broadcast_to(shell, (g.shape[0], g.shape[1], 1))[:, :, 0]] = Tissue.TABLE
