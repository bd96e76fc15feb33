"""Tiny synthetic spines: boxes stacked along z with VerSe labels (tests and smoke runs).

Each "vertebra" is a bright box (body) with a smaller box behind it (posterior elements),
separated from its neighbours by darker discs. A fractured vertebra loses anterior height.
"""

from __future__ import annotations

import numpy as np

from training.datasets.types import Case

BODY_HU, POSTERIOR_HU, DISC_HU, TISSUE_HU = 400.0, 500.0, 80.0, 30.0


class SyntheticSource:
    """``count`` synthetic spines, ``levels`` vertebrae each, starting at ``first_label``."""

    name = "synthetic"

    def __init__(
        self,
        count: int,
        seed: int = 0,
        shape: tuple[int, int, int] = (40, 40, 64),
        spacing_mm: float = 2.0,
        first_label: int = 18,
        levels: int = 5,
    ) -> None:
        self.count, self.seed, self.shape = count, seed, shape
        self.spacing_mm, self.first_label, self.levels = spacing_mm, first_label, levels

    def __len__(self) -> int:
        return self.count

    def case_id(self, index: int) -> str:
        return f"synthetic-{self.seed + index}"

    def load(self, index: int) -> Case:
        rng = np.random.default_rng(self.seed + index)
        image = np.full(self.shape, TISSUE_HU, dtype=np.float32)
        vertebrae = np.zeros(self.shape, dtype=np.uint8)
        subregions = np.zeros(self.shape, dtype=np.uint8)
        nx, ny, nz = self.shape
        step = (nz - 2) // self.levels  # a slice of tissue below and above: nothing is cut
        grades, centroids = {}, {}
        for n in range(self.levels):
            label = self.first_label + n
            grade = int(rng.choice([0, 0, 0, 2, 3]))
            z0, z1 = n * step + 2, (n + 1) * step
            top_anterior = z1 - (step * grade // 4)
            body = (slice(nx // 4, 3 * nx // 4), slice(ny // 2, 3 * ny // 4), slice(z0, z1))
            image[body], vertebrae[body], subregions[body] = BODY_HU, label, 1
            front = (slice(nx // 4, 3 * nx // 4), slice(5 * ny // 8, 3 * ny // 4))
            image[(*front, slice(top_anterior, z1))] = TISSUE_HU
            vertebrae[(*front, slice(top_anterior, z1))] = 0
            subregions[(*front, slice(top_anterior, z1))] = 0
            post = (slice(3 * nx // 8, 5 * nx // 8), slice(ny // 4, ny // 2), slice(z0, z1))
            image[post], vertebrae[post], subregions[post] = POSTERIOR_HU, label, 2
            image[:, ny // 4 : 3 * ny // 4, z1 : z1 + 1] = DISC_HU
            grades[label] = grade
            centre = np.argwhere(vertebrae == label).mean(axis=0) * self.spacing_mm
            centroids[label] = (float(centre[0]), float(centre[1]), float(centre[2]))
        image += rng.normal(0, 20, self.shape).astype(np.float32)
        return Case(
            case_id=self.case_id(index),
            image_hu=image,
            vertebrae=vertebrae,
            subregions=subregions,
            affine=np.diag([self.spacing_mm] * 3 + [1.0]),
            grades=grades,
            morphologies={k: ("wedge" if g else "normal") for k, g in grades.items()},
            complete=dict.fromkeys(grades, True),
            centroids_mm=centroids,
        )
