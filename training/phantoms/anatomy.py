"""Level-dependent vertebral dimensions and the spine as a chain of local frames.

Dimensions follow DOMAIN.md (Panjabi's tabulation; Cook & Baker 2021 for L5; disc heights
per level; Masharawi 2010 normal wedging), interpolated between the tabulated levels and
scaled per subject. The spine is built bottom-up from the S1 endplate: each disc's anterior
and posterior heights tilt the next vertebra (lordosis and kyphosis arise from disc and body
wedging, scaled to a drawn curvature), plus lateral bending (scoliosis) and axial rotation.
Every vertebra gets a right-handed local frame: columns ``e_u`` (patient right, RAS +x at
rest), ``e_v`` (anterior), ``e_w`` (superior, along the vertebra's own axis).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from training.phantoms.params import CERVICAL, LUMBAR, THORACIC, VERSE_LABEL

F64 = NDArray[np.float64]

# level index (C1 = 0 ... L5 = 23): body width, depth, posterior height (mm)
_BODY_TABLE = {
    0: (20.0, 10.0, 10.0), 1: (18.0, 15.0, 15.0), 2: (17.5, 15.0, 13.5), 6: (20.0, 17.0, 14.0),
    7: (24.0, 18.0, 17.0), 10: (26.0, 22.0, 19.0), 14: (30.0, 27.0, 21.5), 18: (37.0, 32.0, 24.0),
    19: (40.0, 33.0, 25.0), 21: (44.0, 35.0, 27.0), 23: (50.0, 37.0, 26.0),
}  # fmt: skip
# normal Ha/Hp (physiological wedging), Masharawi 2010 converted with the body depth
_WEDGE_RATIO = {
    0: 1.0,
    6: 1.0,
    7: 0.96,
    14: 0.95,
    15: 0.94,
    16: 0.94,
    17: 0.91,
    18: 0.91,
    19: 0.92,
    20: 0.97,
    21: 1.0,
    22: 1.05,
    23: 1.13,
}
# disc below the level: (anterior, posterior) height in mm
_DISC_TABLE = {
    0: (3.0, 3.0),
    2: (5.5, 4.0),
    6: (5.0, 4.0),
    7: (4.0, 4.2),
    10: (3.5, 3.8),
    14: (4.5, 4.8),
    16: (5.5, 5.5),
    18: (8.0, 6.5),
    19: (10.8, 7.3),
    20: (13.1, 8.6),
    21: (15.2, 9.1),
    22: (18.1, 10.1),
    23: (18.7, 8.5),
}
# pedicle width (mm): T4 smallest, L1-L5 8.7 / 9.5 / 11.2 / 13.8 / 17.5
_PEDICLE_TABLE = {
    0: 6.0,
    6: 5.5,
    7: 6.5,
    10: 4.5,
    18: 8.0,
    19: 8.7,
    20: 9.5,
    21: 11.2,
    22: 13.8,
    23: 17.5,
}
# transverse process length from the pedicle (mm), longest at L3
_TRANSVERSE_TABLE = {0: 18.0, 6: 14.0, 7: 20.0, 14: 17.0, 18: 10.0, 19: 16.0, 21: 26.0, 23: 20.0}
# spinous process length (mm) and downward angle (deg)
_SPINOUS_TABLE = {
    0: (8.0, 5.0),
    6: (28.0, 25.0),
    7: (32.0, 35.0),
    12: (38.0, 60.0),
    18: (32.0, 25.0),
    21: (30.0, 8.0),
    23: (24.0, 5.0),
}


def interpolate(table: dict[int, float], index: float) -> float:
    keys = sorted(table)
    return float(np.interp(index, keys, [table[k] for k in keys]))


def interpolate_vec(table: dict[int, tuple[float, ...]], index: float) -> tuple[float, ...]:
    keys = sorted(table)
    width = len(table[keys[0]])
    return tuple(float(np.interp(index, keys, [table[k][n] for k in keys])) for n in range(width))


@dataclass
class LevelShape:
    """Nominal (unfractured) dimensions of one vertebra in its local frame (mm)."""

    level: str
    label: int
    index: float  # position in the C1..L5 table (T13 and L6 get in-between values)
    width: float
    depth: float
    height_posterior: float
    wedge_ratio: float  # Ha / Hp
    concavity_superior: float
    concavity_inferior: float
    pedicle_width: float
    canal_width: float
    canal_depth: float
    transverse_length: float
    spinous_length: float
    spinous_angle_deg: float
    disc_anterior: float  # disc below this vertebra
    disc_posterior: float
    has_rib: bool = False


@dataclass
class PlacedVertebra:
    """A vertebra placed on the spine: body centre and local frame in RAS mm."""

    shape: LevelShape
    centre: F64
    frame: F64  # 3x3, columns e_u, e_v, e_w
    confounders: list[str] = field(default_factory=list)


def level_sequence(
    rng: np.random.Generator, variants: bool, t13_rate: float, l6_rate: float
) -> list[tuple[str, float]]:
    """Presacral levels with their table index; a T13 or an L6 (transitional vertebrae) in a
    share ``t13_rate`` / ``l6_rate`` of spines when ``variants``."""
    thoracic = list(THORACIC)
    lumbar = list(LUMBAR)
    draw = rng.random() if variants else 1.0
    if draw < t13_rate:
        thoracic.append("T13")
    elif draw < t13_rate + l6_rate:
        lumbar.append("L6")
    levels = [(n, float(i)) for i, n in enumerate(CERVICAL)]
    levels += [(n, 7.0 + 11.0 * i / max(len(thoracic) - 1, 1)) for i, n in enumerate(thoracic)]
    levels += [(n, 19.0 + 4.0 * i / max(len(lumbar) - 1, 1)) for i, n in enumerate(lumbar)]
    return levels


def level_shape(name: str, index: float, scale: float, rng: np.random.Generator) -> LevelShape:
    """Nominal dimensions at ``index`` with per-vertebra jitter (about 2 %)."""
    width, depth, height = interpolate_vec(_BODY_TABLE, index)  # type: ignore[arg-type]
    jitter = 1.0 + 0.02 * rng.standard_normal(3)
    disc_a, disc_p = interpolate_vec(_DISC_TABLE, index)  # type: ignore[arg-type]
    spin_len, spin_angle = interpolate_vec(_SPINOUS_TABLE, index)  # type: ignore[arg-type]
    lumbar = index >= 18.5
    return LevelShape(
        level=name,
        label=VERSE_LABEL[name],
        index=index,
        width=width * scale * jitter[0],
        depth=depth * scale * jitter[1],
        height_posterior=height * scale * jitter[2],
        wedge_ratio=interpolate(_WEDGE_RATIO, index) + 0.015 * rng.standard_normal(),
        concavity_superior=float(rng.uniform(0.4, 1.2)) * scale,
        concavity_inferior=float(rng.uniform(0.4, 1.2)) * scale,
        pedicle_width=interpolate(_PEDICLE_TABLE, index) * scale,
        canal_width=(23.0 if lumbar or index < 7 else 17.0) * scale,
        canal_depth=(17.0 if lumbar else 15.5) * scale,
        transverse_length=interpolate(_TRANSVERSE_TABLE, index) * scale,
        spinous_length=spin_len * scale * float(rng.uniform(0.9, 1.1)),
        spinous_angle_deg=spin_angle,
        disc_anterior=disc_a * scale,
        disc_posterior=disc_p * scale,
        has_rib=name.startswith("T"),
    )


def _rotate(frame: F64, axis: int, angle: float) -> F64:
    """Rotate the frame about one of its own axes (0 = e_u, 1 = e_v, 2 = e_w)."""
    a, b = [n for n in range(3) if n != axis]
    c, s = np.cos(angle), np.sin(angle)
    out = frame.copy()
    out[:, a] = c * frame[:, a] + s * frame[:, b]
    out[:, b] = -s * frame[:, a] + c * frame[:, b]
    return out


@dataclass(frozen=True)
class Curvature:
    """Drawn sagittal and coronal shape of one subject's spine (degrees)."""

    sacral_slope: float
    lordosis: float
    kyphosis: float
    scoliosis_cobb: float
    scoliosis_apex: float  # table index of the apex
    rotation_per_cobb: float


def draw_curvature(rng: np.random.Generator) -> Curvature:
    scoliotic = rng.random() < 0.15
    return Curvature(
        sacral_slope=float(rng.uniform(25.0, 42.0)),
        lordosis=float(np.clip(rng.normal(37.0, 11.0), 12.0, 65.0)),
        kyphosis=float(np.clip(rng.normal(32.0, 8.0), 15.0, 55.0)),
        scoliosis_cobb=float(rng.uniform(12.0, 40.0) if scoliotic else rng.uniform(0.0, 6.0)),
        scoliosis_apex=float(rng.uniform(12.0, 21.0)),
        rotation_per_cobb=float(rng.uniform(0.3, 0.6)),
    )


def _joint_angles(shapes: list[LevelShape], curve: Curvature) -> tuple[F64, F64]:
    """Sagittal (extension +) and lateral bend angle of each disc, from the bottom up."""
    n = len(shapes)
    sagittal = np.zeros(n)
    for i, s in enumerate(shapes):  # disc below vertebra i, i.e. between i and i+1
        wedge_disc = np.arctan((s.disc_anterior - s.disc_posterior) / s.depth)
        wedge_body = np.arctan((s.wedge_ratio - 1.0) * s.height_posterior / s.depth)
        sagittal[i] = wedge_disc + wedge_body
    idx = np.array([s.index for s in shapes])
    lumbar = idx >= 18.5
    thoracic = (idx >= 7.0) & ~lumbar
    for mask, target in ((lumbar, curve.lordosis), (thoracic, None)):
        if target is None:
            extra = -np.radians(curve.kyphosis) - sagittal[mask].sum()
        else:
            extra = np.radians(target) - sagittal[mask].sum()
        sagittal[mask] += extra / max(int(mask.sum()), 1)
    bend = np.exp(-0.5 * ((idx - curve.scoliosis_apex) / 3.0) ** 2)
    bend -= 0.5 * np.exp(-0.5 * ((idx - curve.scoliosis_apex - 7.0) / 3.0) ** 2)
    lateral = np.radians(curve.scoliosis_cobb) * bend / max(bend.sum(), 1e-6) * 0.5
    return sagittal, lateral


def place_spine(
    shapes: list[LevelShape], curve: Curvature, s1_top: F64
) -> tuple[list[PlacedVertebra], F64]:
    """Stack vertebrae upward from the S1 endplate centre; shapes are ordered C1..L5.

    Returns the placed vertebrae (same order) and the S1 frame.
    """
    slope = np.radians(curve.sacral_slope)
    s1_frame = np.eye(3)
    s1_frame = _rotate(s1_frame, 0, -slope)  # superior axis tilted anteriorly
    frame = s1_frame.copy()
    point = s1_top.astype(np.float64)
    bottom_up = shapes[::-1]
    sagittal, lateral = _joint_angles(bottom_up, curve)
    placed: list[PlacedVertebra] = []
    offset = 0.0
    for i, s in enumerate(bottom_up):
        disc_mid = 0.5 * (s.disc_anterior + s.disc_posterior)
        half = _rotate(_rotate(frame, 0, 0.5 * sagittal[i]), 1, 0.5 * lateral[i])
        point = point + half[:, 2] * disc_mid
        frame = _rotate(_rotate(frame, 0, sagittal[i]), 1, lateral[i])
        h_mid = 0.5 * s.height_posterior * (1.0 + s.wedge_ratio)
        centre = point + frame[:, 2] * 0.5 * h_mid
        offset += lateral[i]
        twist = curve.rotation_per_cobb * offset
        placed.append(PlacedVertebra(s, centre, _rotate(frame, 2, twist)))
        point = centre + frame[:, 2] * 0.5 * h_mid
    return placed[::-1], s1_frame
