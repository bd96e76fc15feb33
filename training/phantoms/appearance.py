"""Intensities: published HU per tissue (realistic) or SynthSeg-style random (randomized),
plus acquisition effects: partial volume, kernel noise texture, streaks, bias.

Realistic HU (DOMAIN.md): air -1000; lung -950 to -550; fat -120 to -50; muscle 10-60;
unenhanced blood 30-65; liver 45-70; disc about 70-100; enhanced aorta 150-200 (portal
venous) or 290-360 (late arterial); trabecular bone 50-250 by age; noise 10-20 HU (soft
kernel, iterative) to 30-40 HU (FBP), sharp kernels 2-4x noisier.
"""

# numpy arithmetic is typed as Any in its stubs; the shapes and dtypes are documented.
# mypy: disable-error-code="no-any-return"

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from training.phantoms.grid import F32
from training.phantoms.spine import BoneLook
from training.phantoms.torso import Tissue

I16 = NDArray[np.int16]

# tissue: (low, high) of the subject mean, texture SD
REALISTIC_HU: dict[Tissue, tuple[float, float, float]] = {
    Tissue.AIR: (-1000.0, -1000.0, 0.0), Tissue.FAT: (-115.0, -85.0, 6.0),
    Tissue.MUSCLE: (35.0, 55.0, 5.0), Tissue.LUNG: (-880.0, -820.0, 25.0),
    Tissue.MEDIASTINUM: (-95.0, -60.0, 15.0), Tissue.BLOOD: (35.0, 55.0, 3.0),
    Tissue.LIVER: (50.0, 65.0, 4.0), Tissue.KIDNEY: (28.0, 38.0, 4.0),
    Tissue.SPLEEN: (42.0, 52.0, 3.0), Tissue.BOWEL: (20.0, 45.0, 12.0),
    Tissue.GAS: (-990.0, -900.0, 15.0), Tissue.CSF: (5.0, 15.0, 3.0),
    Tissue.URINE: (0.0, 12.0, 2.0), Tissue.TABLE: (150.0, 350.0, 5.0),
    Tissue.FOAM: (-950.0, -850.0, 10.0), Tissue.VISCERAL_FAT: (-105.0, -70.0, 25.0),
    Tissue.AORTA: (35.0, 55.0, 3.0), Tissue.SKIN: (20.0, 50.0, 5.0),
    Tissue.STOMACH: (5.0, 25.0, 6.0),
}  # fmt: skip
ARTERIAL_AORTA_HU = (290.0, 360.0)  # late arterial phase; portal venous below
CONTRAST_HU = {
    Tissue.AORTA: (150.0, 200.0),
    Tissue.KIDNEY: (140.0, 200.0),
    Tissue.LIVER: (95.0, 120.0),
    Tissue.SPLEEN: (100.0, 130.0),
    Tissue.BLOOD: (120.0, 180.0),
}


@dataclass(frozen=True)
class Look:
    """All intensity choices of one phantom (recorded in the acquisition dict)."""

    tissue_mean: NDArray[np.float32]  # indexed by Tissue
    tissue_texture: NDArray[np.float32]
    bone: BoneLook
    noise_hu: float
    kernel: str
    soft_blur_mm: float
    streak_hu: float
    bias_hu: float
    gain: float


def bone_look(
    rng: np.random.Generator,
    trabecular: float,
    randomized: bool,
    spacing: tuple[float, float, float],
) -> BoneLook:
    edge = max(spacing[0], 0.5 * spacing[2])
    if randomized:
        return BoneLook(
            cortical=float(rng.uniform(200, 1800)),
            trabecular=float(rng.uniform(-100, 600)),
            posterior_cortical=float(rng.uniform(200, 1500)),
            disc=float(rng.uniform(-200, 400)),
            disc_nucleus=float(rng.uniform(-200, 400)),
            gas=float(rng.uniform(-1000, 0)),
            edge_mm=edge * float(rng.uniform(0.6, 2.5)),
            cortical_mm=float(rng.uniform(0.8, 3)),
            arch_scale=float(rng.uniform(0.5, 1.2)),
        )
    return BoneLook(
        cortical=float(rng.uniform(650, 900)),
        trabecular=trabecular,
        posterior_cortical=float(rng.uniform(550, 800)),
        disc=float(rng.uniform(80, 100)),
        disc_nucleus=float(rng.uniform(65, 85)),
        gas=-600.0,
        edge_mm=edge * 1.2,
        cortical_mm=float(rng.uniform(1.2, 1.8)),
    )


def draw_look(
    rng: np.random.Generator,
    randomized: bool,
    contrast_phase: str,
    kernel: str,
    noise_hu: float,
    bone: BoneLook,
) -> Look:
    n = max(t.value for t in Tissue) + 1
    mean, texture = np.zeros(n, np.float32), np.zeros(n, np.float32)
    for t, (lo, hi, sd) in REALISTIC_HU.items():
        mean[t], texture[t] = rng.uniform(lo, hi), sd
        if contrast_phase != "none" and t in CONTRAST_HU:
            arterial = contrast_phase == "arterial" and t == Tissue.AORTA
            mean[t] = rng.uniform(*(ARTERIAL_AORTA_HU if arterial else CONTRAST_HU[t]))
    if randomized:
        mean = rng.uniform(-1000.0, 1200.0, n).astype(np.float32)
        texture = rng.uniform(0.0, 60.0, n).astype(np.float32)
        mean[Tissue.AIR] = rng.uniform(-1024.0, -200.0)
    gain = float(rng.uniform(0.7, 1.3) if randomized else 1.0)
    if randomized:  # contrast change applied to the values themselves (no extra pass)
        mean = ((mean + 1000.0) * gain - 1000.0).astype(np.float32)
        bone = replace(
            bone,
            cortical=(bone.cortical + 1000.0) * gain - 1000.0,
            trabecular=(bone.trabecular + 1000.0) * gain - 1000.0,
        )
    return Look(
        mean,
        texture,
        bone,
        noise_hu,
        kernel,
        soft_blur_mm=float(rng.uniform(0.5, 4.0) if randomized else 1.2),
        streak_hu=float(rng.uniform(0.0, 150.0) if randomized else rng.uniform(8.0, 25.0)),
        bias_hu=float(rng.uniform(0.0, 150.0) if randomized else 0.0),
        gain=gain,
    )


def tissue_image(
    tissue: NDArray[np.uint8],
    look: Look,
    rng: np.random.Generator,
    coarse_spacing: tuple[float, float, float],
) -> I16:
    """HU of the coarse tissue map with smooth per-tissue texture, blur and bias."""
    hu = look.tissue_mean[tissue]
    small = tuple(max(s // 2, 1) for s in tissue.shape)
    tex = ndimage.gaussian_filter(rng.standard_normal(small).astype(np.float32), 1.0) * 2.5
    tex = np.repeat(np.repeat(np.repeat(tex, 2, 0), 2, 1), 2, 2)
    tex = tex[: tissue.shape[0], : tissue.shape[1], : tissue.shape[2]]
    pad = [(0, max(tissue.shape[d] - tex.shape[d], 0)) for d in range(3)]
    tex = np.pad(tex, pad, mode="edge")
    hu += look.tissue_texture[tissue] * tex
    # at least 0.6 coarse voxel, so the coarse grid's staircases melt into the edge profile
    sigma = [max(look.soft_blur_mm / s / 2.355, 0.6) for s in coarse_spacing]
    hu = ndimage.gaussian_filter(hu, sigma, truncate=2.5)
    if look.bias_hu > 0:
        coarse = rng.standard_normal((4, 4, 4)).astype(np.float32)
        zoom = [hu.shape[d] / 4.0 for d in range(3)]
        bias = ndimage.zoom(coarse, zoom, order=3, grid_mode=True, mode="nearest")
        hu += look.bias_hu * bias[: hu.shape[0], : hu.shape[1], : hu.shape[2]]
    np.clip(hu, -1024.0, 3071.0, out=hu)
    return np.rint(hu).astype(np.int16)


def upsample(coarse: I16, factors: tuple[int, int, int], shape: tuple[int, int, int]) -> I16:
    """Nearest-neighbour upsampling by integer factors into a Fortran-ordered array (slices
    along k contiguous, as NIfTI and DICOM writers read them), cropped to ``shape``."""
    fx, fy, fz = factors
    ni, nj, nk = shape
    wide = np.repeat(coarse, fx, axis=0)[:ni]  # (ni, cy, cz), small
    cz, cy = coarse.shape[2], coarse.shape[1]
    out = np.empty((cz, fz, cy, fy, ni), np.int16)
    out[...] = wide.T[:, None, :, None, :]
    flat = out.reshape(cz * fz, cy * fy, ni)[:nk, :nj, :].T
    return flat if flat.flags.f_contiguous else np.asfortranarray(flat)


def noise_slab(
    rng: np.random.Generator, shape: tuple[int, int], depth: int, kernel: str, pixel_mm: float
) -> F32:
    """Unit-SD correlated noise for ``depth`` slices (Fortran order, like the image); sharp
    kernels keep the high frequencies, soft kernels give a coarser grain."""
    white = rng.standard_normal((depth, shape[1], shape[0])).astype(np.float32)
    if kernel == "sharp":
        slab = white - 0.8 * ndimage.gaussian_filter(white, (0.0, 1.0, 1.0), truncate=2.5)
    else:
        sigma = 1.1 / pixel_mm
        slab = ndimage.gaussian_filter(white, (0.0, sigma, sigma), truncate=2.5)
    slab /= max(float(slab.std()), 1e-6)
    return slab.T


def streak_pattern(
    rng: np.random.Generator, shape: tuple[int, int], centre: tuple[float, float], count: int
) -> F32:
    """Thin bright and dark lines through dense bone, fading with distance (unit amplitude)."""
    i = np.arange(shape[0], dtype=np.float32)[:, None] - np.float32(centre[0])
    j = np.arange(shape[1], dtype=np.float32)[None, :] - np.float32(centre[1])
    dist = np.sqrt(i * i + j * j)
    out = np.zeros(shape, np.float32)
    for _ in range(count):
        angle = rng.uniform(0, np.pi)
        across = i * np.float32(np.sin(angle)) - j * np.float32(np.cos(angle))
        out += np.float32(rng.choice([-1.0, 0.6])) * np.exp(-(across**2) / 2.0)
    return out * np.exp(-dist / np.float32(0.12 * shape[0]))
