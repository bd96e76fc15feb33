"""Arms resting beside the trunk (arms-down scans): soft tissue on the coarse grid, humerus
and forearm bones at full resolution. Drawn from their own random stream, so whether a
phantom has arms leaves every other draw of its seed unchanged."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.phantoms.grid import F64
from training.phantoms.skeleton import draw_tube
from training.phantoms.spine import BoneLook, Volumes
from training.phantoms.torso import Contour, Landmarks, Painter, Tissue

ARMS_DOWN_PROBABILITY = 0.3


@dataclass(frozen=True)
class Arm:
    side: float  # +1 patient right, -1 left
    path: F64  # shoulder, elbow, wrist (RAS mm), centre line of the limb
    radius: float  # soft-tissue radius of the upper arm


def draw_arms(seed: int, lm: Landmarks, contour: Contour, habitus: float) -> list[Arm]:
    rng = np.random.default_rng([seed, 0xA2])
    if rng.random() >= ARMS_DOWN_PROBABILITY:
        return []
    radius = 38.0 * habitus
    gap = float(rng.uniform(4.0, 25.0))
    shoulder_z = lm.level_z("T1") - 15.0
    elbow_z = lm.level_z("L2") + float(rng.uniform(-20.0, 20.0))
    wrist_z = float(lm.s1_top[2]) - float(rng.uniform(60.0, 140.0))
    arms = []
    for side in (1.0, -1.0):
        points = []
        for z, forward in ((shoulder_z, -0.15), (elbow_z, -0.1), (wrist_z, 0.1)):
            xc, yc, a, b = contour.at(z)
            points.append([xc + side * (a + gap + radius), yc + forward * b, z])
        arms.append(Arm(side, np.array(points), radius))
    return arms


def paint_arms(p: Painter, arms: list[Arm]) -> None:
    for arm in arms:
        radii = np.array([arm.radius, 0.85 * arm.radius, 0.7 * arm.radius])
        p.tube(arm.path, radii, Tissue.FAT)
        p.tube(arm.path, 0.72 * radii, Tissue.MUSCLE)


def draw_arm_bones(vol: Volumes, arms: list[Arm], look: BoneLook) -> None:
    marrow = look.trabecular + 40.0
    for arm in arms:
        shoulder, elbow, wrist = arm.path
        draw_tube(vol, np.array([shoulder, elbow]), 10.0, look.posterior_cortical, look, marrow)
        for offset in (-7.0, 7.0):
            shift = np.array([offset, 0.0, 0.0])
            forearm = np.array([elbow + shift, wrist + shift])
            draw_tube(vol, forearm, 6.0, look.posterior_cortical, look, marrow)
