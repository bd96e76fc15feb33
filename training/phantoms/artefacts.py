"""Acquisition artefacts on the full-resolution image: kernel noise and streaks.

Noise is drawn for a slab of slices, shaped by the kernel (soft: smooth grain; sharp: fine
grain), and reused along z with random shifts and flips, scaled per slice by the body's
cross-section. Streaks are thin bright and dark lines through the
spine that fade with distance, like beam hardening between dense bone.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from training.phantoms.appearance import Look, noise_slab, streak_pattern
from training.phantoms.spine import Volumes
from training.phantoms.torso import Contour

SLAB = 8
PAD = 48  # noise windows are cut from a slightly larger slab at random offsets
PATTERNS = 4


def add_noise_and_streaks(
    rng: np.random.Generator, vol: Volumes, look: Look, contour: Contour, streaks: bool
) -> NDArray[np.int16]:
    """Add noise (and streaks) in place to the int16 image and clip it to the CT range."""
    grid, image = vol.grid, vol.image
    ni, nj, nk = grid.shape
    slab = noise_slab(rng, (ni + PAD, nj + PAD), SLAB, look.kernel, grid.spacing[0])
    noise = np.rint(slab * np.float32(look.noise_hu)).astype(np.int16, order="F")
    canvas = (
        [
            streak_pattern(rng, (2 * ni, 2 * nj), (ni, nj), int(rng.integers(4, 10)))
            for _ in range(PATTERNS)
        ]
        if streaks and look.streak_hu > 0
        else []
    )
    _, _, z = grid.axes((slice(0, 1), slice(0, 1), slice(0, nk)))
    for k0 in range(0, nk, SLAB):
        k1 = min(k0 + SLAB, nk)
        di, dj = int(rng.integers(0, PAD + 1)), int(rng.integers(0, PAD + 1))
        block = noise[di : di + ni, dj : dj + nj, : k1 - k0]
        region = image[:, :, k0:k1]
        region += block[::-1] if rng.random() < 0.5 else block
        if canvas:
            zc = float(z.ravel()[(k0 + k1 - 1) // 2])
            xc, yc, _, b = contour.at(zc)
            centre = grid.to_voxel(np.array([xc, yc - 0.4 * b, zc]))
            streak = _streaks(rng, canvas, centre, ni, nj, look.streak_hu)
            region += np.rint(streak).astype(np.int16)[:, :, None]
    np.clip(image, -1024, 3071, out=image)
    return image


def _streaks(
    rng: np.random.Generator,
    canvas: list[NDArray[np.float32]],
    centre_vox: NDArray[np.float64],
    ni: int,
    nj: int,
    amplitude: float,
) -> NDArray[np.float32]:
    pattern = canvas[int(rng.integers(0, len(canvas)))]
    ci = int(np.clip(round(float(centre_vox[0])), 0, ni - 1))
    cj = int(np.clip(round(float(centre_vox[1])), 0, nj - 1))
    return np.float32(amplitude) * pattern[ni - ci : 2 * ni - ci, nj - cj : 2 * nj - cj]
