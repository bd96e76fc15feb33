"""Organs and muscles placed relative to the spine and the body contour (coarse grid)."""

# numpy arithmetic is typed as Any in its stubs; the shapes and dtypes are documented.
# mypy: disable-error-code="no-any-return"

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from training.phantoms.anatomy import PlacedVertebra
from training.phantoms.grid import F32
from training.phantoms.torso import Contour, Landmarks, Painter, Tissue


def _dome(x: F32, y: F32, lm: Landmarks, c: Contour, z_diaphragm: float) -> F32:
    """Height of the diaphragm under each point: domes over each hemithorax, lower at the
    periphery and posteriorly (costophrenic recesses); the right dome sits higher."""
    xc, yc, a, b = c.at(z_diaphragm)
    side = np.abs(x - np.float32(xc)) - np.float32(0.42 * a)
    dome = 40.0 * (1.0 - (side / np.float32(0.55 * a)) ** 2 - ((y - yc) / np.float32(b)) ** 2)
    right = np.where(x > np.float32(xc), np.float32(12.0), np.float32(0.0))
    return np.float32(z_diaphragm) + np.maximum(dome, -45.0) + right


def paint_thorax(
    p: Painter, lm: Landmarks, c: Contour, cavity: NDArray[np.bool_], z_diaphragm: float
) -> None:
    g = p.grid
    x, y, z = g.axes((slice(0, g.shape[0]), slice(0, g.shape[1]), slice(0, g.shape[2])))
    apex = lm.level_z("T1") + 30.0
    xc, _, a, _ = c.at(lm.level_z("T5"))
    rounded = np.float32(apex) - 70.0 * ((np.abs(x - np.float32(xc)) - 0.4 * a) / (0.5 * a)) ** 2
    lungs = cavity & (z > _dome(x, y, lm, c, z_diaphragm)) & (z < rounded)
    p.tissue[lungs] = Tissue.LUNG
    t5x, t5y = lm.spine_at(lm.level_z("T5"))
    front = c.at(lm.level_z("T6"))[1] + c.at(lm.level_z("T6"))[3]
    mid_y = 0.5 * (float(t5y) + front)
    med = ((x - np.float32(t5x)) / 32.0) ** 2 + (
        (y - np.float32(mid_y)) / np.float32(0.5 * (front - float(t5y)))
    ) ** 2 < 1.0
    p.tissue[med & lungs] = Tissue.MEDIASTINUM
    heart_z = z_diaphragm + 50.0
    hx, hy = lm.spine_at(heart_z)
    heart_y = float(hy) + 0.55 * (front - float(hy))
    p.ellipsoid(
        np.array([float(hx) - 28.0, heart_y, heart_z]),
        (55.0, 45.0, 55.0),
        Tissue.BLOOD,
        within=cavity,
    )
    trachea_top = lm.level_z("C5")
    trachea = np.array(
        [[*_spine_front(lm, zz, 16.0), zz] for zz in np.linspace(trachea_top, lm.level_z("T5"), 8)]
    )
    p.tube(trachea, np.full(len(trachea), 8.5), Tissue.GAS)


def _spine_front(lm: Landmarks, z: float, gap: float, x_shift: float = 0.0) -> tuple[float, float]:
    x, y = lm.spine_at(z)
    return float(x) + x_shift, float(y) + gap + 18.0


def aorta_path(lm: Landmarks, p: Painter) -> None:
    code = Tissue.AORTA
    zs = [lm.level_z(n) for n in ("T5", "T7", "T9", "T11", "L1", "L3", "L4")]
    desc = np.array([[*_spine_front(lm, zz, 4.0, -18.0), zz] for zz in zs])
    x3, y3 = lm.spine_at(lm.level_z("T3"))
    arch = np.array(
        [
            [float(x3) + 8.0, float(y3) + 60.0, lm.level_z("T7")],
            [float(x3) + 4.0, float(y3) + 52.0, lm.level_z("T3")],
            [float(x3) - 12.0, float(y3) + 25.0, lm.level_z("T3") + 5.0],
        ]
    )
    path = np.vstack([arch, desc])
    radii = np.linspace(15.0, 10.0, len(path))
    p.tube(path, radii, code)
    s1 = lm.s1_top
    for side in (-1.0, 1.0):
        iliac = np.array([desc[-1], [s1[0] + side * 55.0, s1[1] + 55.0, s1[2] - 40.0]])
        p.tube(iliac, np.array([7.0, 6.0]), code)
    ivc = np.array([[*_spine_front(lm, zz, 6.0, 22.0), zz] for zz in zs[3:]])
    p.tube(ivc, np.full(len(ivc), 10.0), Tissue.BLOOD)


def paint_abdomen(
    p: Painter,
    lm: Landmarks,
    c: Contour,
    cavity: NDArray[np.bool_],
    z_diaphragm: float,
    rng: np.random.Generator,
) -> None:
    g = p.grid
    x, y, z = g.axes((slice(0, g.shape[0]), slice(0, g.shape[1]), slice(0, g.shape[2])))
    floor = float(lm.s1_top[2]) - 110.0
    belly = cavity & (z < _dome(x, y, lm, c, z_diaphragm)) & (z > np.float32(floor))
    p.tissue[belly] = Tissue.VISCERAL_FAT
    xc, yc, a, b = c.at(z_diaphragm - 60.0)
    for _ in range(int(rng.integers(9, 17))):  # bowel loops and gas
        centre = np.array(
            [
                xc + rng.uniform(-0.6, 0.6) * a,
                yc + rng.uniform(-0.1, 0.7) * b,
                rng.uniform(floor + 30.0, z_diaphragm - 60.0),
            ]
        )
        size = tuple(float(v) for v in rng.uniform(12.0, 28.0, 3))
        p.ellipsoid(centre, size, Tissue.BOWEL, within=belly)  # type: ignore[arg-type]
        if rng.random() < 0.35:
            gas = tuple(0.5 * s for s in size)
            p.ellipsoid(centre + np.array([0, 0.3 * size[1], 0]), gas, Tissue.GAS, within=belly)  # type: ignore[arg-type]
    under = belly | (p.tissue == Tissue.VISCERAL_FAT)
    p.ellipsoid(
        np.array([xc + 0.42 * a, yc + 0.05 * b, z_diaphragm - 50.0]),
        (0.55 * a, 0.8 * b, 90.0),
        Tissue.LIVER,
        within=under,
    )
    p.ellipsoid(
        np.array([xc - 0.62 * a, yc - 0.45 * b, z_diaphragm - 45.0]),
        (32.0, 45.0, 55.0),
        Tissue.SPLEEN,
        within=under,
    )
    stomach = np.array([xc - 0.3 * a, yc + 0.35 * b, z_diaphragm - 40.0])
    p.ellipsoid(stomach, (50.0, 38.0, 50.0), Tissue.STOMACH, within=under)
    p.ellipsoid(stomach + np.array([0, 20.0, 15.0]), (35.0, 15.0, 25.0), Tissue.GAS, within=under)
    l1x, l1y = lm.spine_at(lm.level_z("L1"))
    for side, dz in ((-1.0, 0.0), (1.0, -15.0)):
        centre = np.array([float(l1x) + side * 62.0, float(l1y) + 2.0, lm.level_z("L1") + dz])
        p.ellipsoid(centre, (26.0, 24.0, 55.0), Tissue.KIDNEY)
    aorta_path(lm, p)
    bladder = np.array([lm.s1_top[0], c.at(floor)[1] + 0.45 * c.at(floor)[3], floor + 25.0])
    p.ellipsoid(bladder, (45.0, 35.0, 35.0), Tissue.URINE)


def paint_muscles(p: Painter, lm: Landmarks, placed: list[PlacedVertebra]) -> None:
    """Spinal canal, the soft tissue around the column, paraspinal muscles and psoas."""
    canal, column, erector = [], [], {-1.0: [], 1.0: []}  # type: ignore[var-annotated]
    for v in placed:
        s = v.shape
        depth_back = 0.5 * s.depth + 0.5 * s.canal_depth
        canal.append(v.centre - v.frame[:, 1] * depth_back)
        column.append(v.centre - v.frame[:, 1] * 10.0)
        for side in (-1.0, 1.0):
            back = 0.5 * s.depth + s.canal_depth + 14.0
            lateral = 0.5 * s.canal_width + 16.0
            erector[side].append(v.centre - v.frame[:, 1] * back + side * v.frame[:, 0] * lateral)
    rad_col = np.array([0.5 * v.shape.width + 9.0 for v in placed])
    p.tube(np.array(column), rad_col, Tissue.MUSCLE)
    rad_er = np.array([12.0 + 0.3 * v.shape.width for v in placed])
    for side in (-1.0, 1.0):
        p.tube(np.array(erector[side]), rad_er, Tissue.MUSCLE)
    p.tube(np.array(canal), np.array([0.42 * v.shape.canal_width for v in placed]), Tissue.CSF)
    _psoas(p, lm, placed)


def _psoas(p: Painter, lm: Landmarks, placed: list[PlacedVertebra]) -> None:
    lumbar = [v for v in placed if v.shape.level.startswith("L") or v.shape.level == "T12"]
    s1 = lm.s1_top
    for side in (-1.0, 1.0):
        pts = [
            v.centre
            + side * v.frame[:, 0] * (0.5 * v.shape.width + 6.0 + 2.5 * n)
            - v.frame[:, 1] * 6.0
            for n, v in enumerate(lumbar)
        ]
        pts.append(np.array([s1[0] + side * 70.0, s1[1] + 40.0, s1[2] - 70.0]))
        radii = np.linspace(7.0, 24.0, len(pts))
        p.tube(np.array(pts), radii, Tissue.MUSCLE)


def paint_pelvis_muscles(p: Painter, lm: Landmarks) -> None:
    s1 = lm.s1_top
    for side in (-1.0, 1.0):
        centre = np.array([s1[0] + side * 85.0, s1[1] - 35.0, s1[2] - 70.0])
        p.ellipsoid(centre, (55.0, 38.0, 75.0), Tissue.MUSCLE)
