"""Bones beyond the presacral spine, at full resolution: ribs with costal cartilage,
sternum, clavicles, scapulae, the sacrum (labelled 26) and the pelvis with femoral heads.

Ribs start at the costovertebral joint of their thoracic vertebra, pass the transverse
process tip and follow the inner chest wall (the body contour shrunk by fat and muscle),
descending anteriorly; ribs 1-7 reach the sternum through cartilage, 8-10 end short of it,
11-12 float (a hypoplastic 12th rib is shorter).
"""

# numpy arithmetic is typed as Any in its stubs; the shapes and dtypes are documented.
# mypy: disable-error-code="no-any-return"

from __future__ import annotations

import numpy as np

from training.phantoms.anatomy import PlacedVertebra
from training.phantoms.grid import F32, F64, capsule, local_coords, segment_box, sub_box
from training.phantoms.spine import (
    BoneLook,
    Raster,
    Volumes,
    _composite,
    _raster,
    compose,
    tight_box,
    union_capsules,
)
from training.phantoms.torso import Contour, Landmarks
from training.phantoms.vertebral_body import BodyModel

RIB_REACH = {
    1: 2.7,
    2: 2.75,
    3: 2.8,
    4: 2.85,
    5: 2.85,
    6: 2.8,
    7: 2.75,
    8: 2.45,
    9: 2.3,
    10: 2.15,
    11: 1.75,
    12: 1.25,
    13: 0.9,
}
CARTILAGE_RIBS = range(1, 8)


def draw_tube(
    vol: Volumes,
    points: F64,
    radius: float,
    hu: float,
    look: BoneLook,
    marrow: float | None = None,
    z_scale: float = 1.0,
) -> None:
    """A bone (or cartilage) tube along a polyline: cortex over marrow, blended at edges."""
    for n in range(len(points) - 1):
        a, b = points[n], points[n + 1]
        box = vol.grid.box(*segment_box(a, b, radius * z_scale))
        if box is None:
            continue
        x, y, z = vol.grid.axes(box)
        sdf = capsule(x, y, z, a, b, radius, z_scale)
        value: F32 | float = hu
        if marrow is not None:
            # shade by the distance to the segment's line, not its end caps: joints between
            # segments then show no cortical rings inside the tube
            depth = capsule(x, y, z, a, b, radius, z_scale, open_ends=True)
            value = marrow + np.float32(hu - marrow) * np.clip(1.0 + depth / 1.5, 0.0, 1.0)
        _composite(vol, box, sdf, value, look.edge_mm)


def rib_path(v: PlacedVertebra, side: float, number: int, contour: Contour, reach: float) -> F64:
    s = v.shape
    h = s.height_posterior
    head = v.centre + v.frame @ np.array([side * 0.42 * s.width, -0.35 * s.depth, 0.45 * h])
    tp_u = side * (0.5 * s.canal_width + s.pedicle_width + s.transverse_length)
    tubercle = v.centre + v.frame @ np.array([tp_u, -0.5 * s.depth - 0.9 * s.canal_depth, 0.2 * h])
    xc, yc, a, b = contour.at(float(tubercle[2]))
    inner_a, inner_b = a - contour.fat - 0.6 * contour.wall, b - contour.fat - 0.6 * contour.wall
    lateral = abs(float(tubercle[0]) - xc) + 22.0
    start = float(np.arcsin(np.clip(lateral / inner_a, 0.0, 0.95)))
    phis = np.linspace(start, max(reach, start + 0.2), 14)
    drop = (18.0 + 2.5 * min(number, 10)) * ((phis - start) / max(np.pi - start, 0.1)) ** 1.2
    # x = +R is the patient's right; ``side`` = +1 is the vertebra's e_u side (right at rest)
    back = float(tubercle[1]) - 14.0  # the rib angle lies just behind the transverse process
    arc = np.stack(
        [
            xc + side * inner_a * np.sin(phis),
            np.maximum(yc - inner_b * np.cos(phis), back),
            tubercle[2] - drop,
        ],
        axis=1,
    )
    return np.vstack([head, tubercle, arc])


def draw_ribs(
    vol: Volumes,
    thoracic: list[tuple[PlacedVertebra, int, float]],
    contour: Contour,
    look: BoneLook,
    sternum_x: float,
) -> list[F64]:
    """Rib pairs for (vertebra, rib number, reach scale); returns the anterior rib ends."""
    ends = []
    rib_hu = 0.75 * look.posterior_cortical
    for v, number, scale in thoracic:
        for side in (-1.0, 1.0):
            path = rib_path(v, side, number, contour, RIB_REACH[number] * scale)
            draw_tube(
                vol,
                path,
                3.4 + 0.1 * min(number, 8),
                rib_hu,
                look,
                marrow=look.trabecular + 40.0,
                z_scale=1.5,
            )
            if number in CARTILAGE_RIBS and scale >= 1.0:
                end = path[-1]
                joint = np.array([sternum_x + side * 14.0, end[1] + 8.0, end[2] - 6.0 - number])
                draw_tube(vol, np.array([end, joint]), 3.2, look.disc + 40.0, look, z_scale=1.4)
            ends.append(path[-1])
    return ends


def draw_sternum(vol: Volumes, lm: Landmarks, contour: Contour, look: BoneLook) -> float:
    """Manubrium and body at the anterior chest wall (T3 to T9 heights); returns its x."""
    pts = []
    for name, offset in (("T2", -10.0), ("T5", -25.0), ("T9", -40.0)):
        z = lm.level_z(name) + offset
        xc, yc, _, b = contour.at(z)
        pts.append([xc, yc + b - contour.fat - 0.5 * contour.wall, z])
    path = np.array(pts)
    for dx in (-9.0, 0.0, 9.0):
        draw_tube(
            vol,
            path + np.array([dx, 0, 0]),
            6.0,
            look.posterior_cortical * 0.8,
            look,
            marrow=look.trabecular + 60.0,
        )
    return float(path[0, 0])


def draw_shoulder_girdle(vol: Volumes, lm: Landmarks, contour: Contour, look: BoneLook) -> None:
    z1 = lm.level_z("T1")
    xc, yc, a, b = contour.at(z1 - 25.0)
    for side in (-1.0, 1.0):
        clav = np.array(
            [
                [xc + side * 18.0, yc + b - 18.0, z1 - 5.0],
                [xc + side * 0.55 * a, yc + 0.3 * b, z1 + 8.0],
                [xc + side * 0.85 * a, yc - 0.1 * b, z1 + 15.0],
            ]
        )
        draw_tube(vol, clav, 6.0, look.posterior_cortical, look, marrow=look.trabecular + 80.0)
        top = np.array([xc + side * 0.62 * a, yc - 0.78 * b, z1 + 5.0])
        bottom = np.array([xc + side * 0.5 * a, yc - 0.8 * b, z1 - 120.0])
        for dx in np.linspace(-24.0, 24.0, 9):  # the blade as a fan of thin tubes
            blade = [
                top + np.array([side * dx, -0.2 * dx, 0]),
                bottom + np.array([side * dx * 0.4, 0, 0]),
            ]
            draw_tube(vol, np.array(blade), 2.6, look.posterior_cortical * 0.7, look)


def draw_sacrum(
    vol: Volumes, s1_top: F64, s1_frame: F64, width: float, depth: float, look: BoneLook, label: int
) -> Raster:
    """S1 body under the L5-S1 disc, alae, and the tapering sacrum curving backwards."""
    height = 26.0
    centre = s1_top - s1_frame[:, 2] * 0.5 * height
    body = BodyModel(width, depth, height, 1.0, 0.8, 0.5)
    lo_local = np.array([-(0.5 * width + 58.0), -(0.5 * depth + 45.0), -128.0])
    hi_local = np.array([0.5 * width + 58.0, 0.5 * depth + 4.0, 0.5 * height + 4.0])
    corners = np.array(
        [
            [x, y, z]
            for x in (lo_local[0], hi_local[0])
            for y in (lo_local[1], hi_local[1])
            for z in (lo_local[2], hi_local[2])
        ]
    )
    world = corners @ s1_frame.T + centre
    box = vol.grid.box(world.min(axis=0), world.max(axis=0))
    if box is None:
        return Raster()
    u, v, w = local_coords(vol.grid, box, centre, s1_frame)
    far = np.float32(1e3)
    body_sdf = np.full(u.shape, far, np.float32)
    ext = np.array([body.a + 3.0, body.b + 3.0, height])
    inner = sub_box(vol.grid, box, centre, s1_frame, -ext, ext)
    if inner is not None:
        body_sdf[inner] = body.sdf(u[inner], v[inner], w[inner])
    caps = [
        (np.array([side * 12.0, -5.0, 0.0]), np.array([side * 48.0, -12.0, -8.0]), 13.0, 1.5)
        for side in (-1.0, 1.0)
    ]
    spine = np.array(
        [
            [0.0, -8.0, 0.0],
            [0.0, -20.0, -35.0],
            [0.0, -32.0, -65.0],
            [0.0, -30.0, -90.0],
            [0.0, -20.0, -108.0],
        ]
    )
    widths = (30.0, 26.0, 18.0, 11.0, 6.0)
    for n in range(len(spine) - 1):
        for side in (-1.0, 1.0):
            a = spine[n] + np.array([side * widths[n] * 0.6, 0, 0])
            b = spine[n + 1] + np.array([side * widths[n + 1] * 0.6, 0, 0])
            caps.append((a, b, 0.45 * widths[n] + 4.0, 1.0))
    rest = union_capsules(
        vol.grid, box, centre, s1_frame, np.full(u.shape, far, np.float32), caps, u, v, w
    )
    sdf = np.minimum(body_sdf, rest)
    tight = tight_box(sdf, look.edge_mm)
    if tight is None:
        return Raster()
    box = compose(box, tight)
    body_sdf, rest, sdf = body_sdf[tight], rest[tight], sdf[tight]
    shell = np.clip(1.0 + sdf / np.float32(look.cortical_mm), 0.0, 1.0)
    hu = look.trabecular + 20.0 + (look.cortical - look.trabecular) * shell
    _composite(vol, box, sdf, hu.astype(np.float32), look.edge_mm)
    inside = sdf < 0
    is_body = inside & (body_sdf <= rest)
    vol.labels[box][inside] = label
    sub = vol.subregions[box]
    sub[inside] = 2
    sub[is_body] = 1
    return _raster(vol.grid, box, inside, is_body)


def draw_pelvis(vol: Volumes, s1_top: F64, look: BoneLook, scale: float) -> None:
    """Iliac wings, acetabula with femoral heads and necks, pubic and ischial rami."""
    o = s1_top
    cort, marrow = look.posterior_cortical * 0.85, look.trabecular + 40.0
    for side in (-1.0, 1.0):

        def at(x: float, y: float, z: float, s: float = side) -> F64:
            return o + np.array([s * x * scale, y * scale, z * scale])

        for dz in np.linspace(34.0, -34.0, 13):  # the wing as a fan of overlapping tubes
            draw_tube(
                vol,
                np.array(
                    [
                        at(45, -30, dz * 0.4 - 20),
                        at(95, -5 + dz * 0.3, dz + 15),
                        at(115, 40, dz * 0.5 + 20),
                    ]
                ),
                4.5,
                cort,
                look,
            )
        draw_tube(
            vol,
            np.array([at(45, -30, -25), at(85, 25, -75), at(92, 45, -95)]),
            13.0,
            cort,
            look,
            marrow,
        )
        draw_tube(vol, np.array([at(92, 48, -98), at(92, 48, -98)]), 22.0, cort, look, marrow)
        draw_tube(
            vol,
            np.array([at(92, 48, -98), at(135, 40, -125), at(140, 35, -260)]),
            13.0,
            cort,
            look,
            marrow,
        )
        draw_tube(vol, np.array([at(80, 60, -98), at(10, 85, -110)]), 8.0, cort, look, marrow)
        draw_tube(
            vol,
            np.array([at(85, 40, -100), at(60, 15, -150), at(15, 75, -125)]),
            9.0,
            cort,
            look,
            marrow,
        )
