"""Physics of the digitally reconstructed radiograph: attenuation, exposure, scatter, noise.

1. HU -> linear attenuation ``mu = mu_water * (1 + HU / 1000)`` at ~70 keV effective energy.
2. Line integrals by ray marching through a block-averaged volume (``map_coordinates``, one
   vectorised call per depth step over all rays of a coarse detector grid).
3. Beer-Lambert primary ``exp(-L)``, a blurred scatter component, Poisson quantum noise and
   electronic noise at the detector's pixel pitch.
4. Detector log transform and "for presentation" processing: unsharp masking, windowing to the
   body, a gamma curve, 12-bit MONOCHROME2 (bone bright).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from training.phantoms.radiograph_geometry import ProjectionGeometry

MU_WATER_PER_MM = 0.0193  # water near 70 keV effective energy (0.193 / cm)
BITS_STORED = 12


@dataclass(frozen=True)
class Exposure:
    """Acquisition settings drawn per radiograph (replayable from the seed)."""

    kvp: float
    mas: float
    photons_per_pixel: float  # unattenuated quanta per detector pixel
    scatter_fraction: float  # scatter / (scatter + primary) behind the body
    scatter_sigma_mm: float
    electronic_noise: float  # quanta, standard deviation
    shoulder_water_mm: float  # extra water path of the shoulders on a lateral view


def attenuation_volume(
    image_hu: NDArray[np.int16], affine: NDArray[np.float64], sampling_mm: float
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Linear attenuation (1/mm), block-averaged towards ``sampling_mm``; with its affine."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    factors = [max(1, round(sampling_mm / s)) for s in spacing]
    sizes = [n // f * f for n, f in zip(image_hu.shape, factors, strict=True)]
    cropped = image_hu[: sizes[0], : sizes[1], : sizes[2]]
    shape = tuple(v for n, f in zip(sizes, factors, strict=True) for v in (n // f, f))
    hu = cropped.reshape(shape).mean(axis=(1, 3, 5), dtype=np.float32)
    mu = np.clip(MU_WATER_PER_MM * (1.0 + hu / 1000.0), 0.0, None).astype(np.float32)
    scaled = affine.copy()
    scaled[:3, :3] = affine[:3, :3] * np.array(factors, dtype=np.float64)
    scaled[:3, 3] = affine[:3, 3] + affine[:3, :3] @ ((np.array(factors) - 1) / 2.0)
    return mu, scaled


def line_integrals(
    mu: NDArray[np.float32],
    affine: NDArray[np.float64],
    geometry: ProjectionGeometry,
    rows: NDArray[np.float64],
    cols: NDArray[np.float64],
    step_mm: float,
) -> NDArray[np.float32]:
    """Integral of mu along the ray source -> detector pixel (rows x cols grid), unitless."""
    detector = geometry.detector_points(rows[:, None], cols[None, :]).reshape(-1, 3)
    inverse = np.linalg.inv(affine)
    source_v = inverse[:3, :3] @ geometry.source_mm + inverse[:3, 3]
    detector_v = detector @ inverse[:3, :3].T + inverse[:3, 3]
    delta = (detector_v - source_v).T.astype(np.float32)  # (3, rays), per unit of t
    depths = geometry.depth(_corners(mu.shape, affine))
    near, far = float(depths.min()), float(depths.max())
    steps = max(1, int(np.ceil((far - near) / step_mm)))
    total = np.zeros(delta.shape[1], np.float32)
    source_col = source_v.astype(np.float32)[:, None]
    for n in range(steps):
        t = (near + (n + 0.5) * (far - near) / steps) / geometry.sid_mm
        coords = source_col + np.float32(t) * delta
        total += np.asarray(
            ndimage.map_coordinates(mu, coords, order=1, mode="constant", cval=0.0), np.float32
        )
    ray_length = np.linalg.norm(detector - geometry.source_mm, axis=1) / geometry.sid_mm
    path_mm = (far - near) / steps * ray_length
    integral: NDArray[np.float32] = (total * path_mm).astype(np.float32)
    return integral.reshape(rows.size, cols.size)


def _corners(shape: tuple[int, ...], affine: NDArray[np.float64]) -> NDArray[np.float64]:
    ijk = np.array(np.meshgrid(*[[-0.5, n - 0.5] for n in shape[:3]], indexing="ij"))
    ijk = ijk.reshape(3, -1)
    return np.asarray((affine[:3, :3] @ ijk + affine[:3, 3:4]).T, dtype=np.float64)


def volume_corners(shape: tuple[int, ...], affine: NDArray[np.float64]) -> NDArray[np.float64]:
    """RAS corners (8, 3) of a voxel grid's outer faces."""
    return _corners(shape, affine)


def upsample(
    coarse: NDArray[np.float32], factor: int, shape: tuple[int, int]
) -> NDArray[np.float32]:
    """Linear interpolation of a grid sampled at pixel ``(f - 1) / 2 + f * m`` to full size."""
    return resize_linear(coarse, shape, factor, (factor - 1) / 2.0)


def resize_linear(
    small: NDArray[np.float32], shape: tuple[int, int], step: float, offset: float
) -> NDArray[np.float32]:
    """Separable linear interpolation; sample m of ``small`` sits at ``offset + step * m``."""
    out = np.asarray(small, dtype=np.float32)
    for axis, size in enumerate(shape):
        n = out.shape[axis]
        u = np.clip((np.arange(size) - offset) / step, 0.0, n - 1)
        low = np.minimum(np.floor(u).astype(int), max(n - 2, 0))
        high = np.minimum(low + 1, n - 1)
        weight = (u - low).astype(np.float32)
        weight = weight[:, None] if axis == 0 else weight[None, :]
        below, above = np.take(out, low, axis=axis), np.take(out, high, axis=axis)
        out = below + (above - below) * weight
    return out


def detected_quanta(
    primary: NDArray[np.float32],
    scatter: NDArray[np.float32],
    exposure: Exposure,
    rng: np.random.Generator,
) -> NDArray[np.float32]:
    """Poisson-distributed quanta of primary plus scatter, with electronic noise."""
    expected = exposure.photons_per_pixel * (primary + scatter)
    quanta = rng.poisson(expected).astype(np.float32)
    quanta += rng.normal(0.0, exposure.electronic_noise, expected.shape).astype(np.float32)
    return quanta


def scatter_field(
    line_integral: NDArray[np.float32], exposure: Exposure, coarse_pixel_mm: float
) -> NDArray[np.float32]:
    """Low-frequency scatter from the irradiated body, scaled to the scatter fraction."""
    primary = np.exp(-line_integral)
    body = 1.0 - np.exp(-line_integral / 1.5)  # 0 in air, 1 behind thick tissue
    sigma = exposure.scatter_sigma_mm / coarse_pixel_mm
    spread = ndimage.gaussian_filter(primary * body, sigma, mode="constant")
    weight = ndimage.gaussian_filter(body, sigma, mode="constant")
    ratio = exposure.scatter_fraction / (1.0 - exposure.scatter_fraction)
    local = np.divide(spread, weight, out=np.zeros_like(spread), where=weight > 1e-3)
    return np.asarray(ratio * local * np.clip(weight * 1.5, 0.0, 1.0), dtype=np.float32)


DETAIL_SIGMA_MM = 3.0  # edge enhancement scale
RANGE_SIGMA_MM = 30.0  # dynamic range compression scale
DETAIL_GAIN, RANGE_COMPRESSION = 0.7, 0.65


def for_presentation(
    quanta: NDArray[np.float32], exposure: Exposure, body: NDArray[np.bool_], pixel_mm: float
) -> tuple[NDArray[np.uint16], float, float]:
    """Log transform, multi-scale processing and windowing to 12-bit MONOCHROME2; (image, WC, WW).

    As detector vendors do: the wide-scale density is partly subtracted (dynamic range
    compression, so thorax and abdomen fit one window) and fine detail is boosted.
    """
    density = -np.log(np.clip(quanta, 0.5, None) / exposure.photons_per_pixel)
    step = max(2, int(1.0 / pixel_mm))
    detail = _low_pass(density, step, DETAIL_SIGMA_MM / (pixel_mm * step))
    wide = _low_pass(density, step * 4, RANGE_SIGMA_MM / (pixel_mm * step * 4))
    enhanced = density - RANGE_COMPRESSION * wide + DETAIL_GAIN * (density - detail)
    inside = enhanced[body] if body.any() else enhanced.ravel()
    lo, hi = (float(v) for v in np.percentile(inside, [0.5, 99.8]))
    scaled = np.clip((enhanced - lo) / max(hi - lo, 1e-6), 0.0, 1.0) ** 0.9
    top = 2**BITS_STORED - 1
    image = np.rint(scaled * top).astype(np.uint16)
    image[~body] = np.minimum(image[~body], np.uint16(top // 20))  # collimated air stays dark
    return image, top / 2.0, float(top)


def _low_pass(density: NDArray[np.float32], step: int, sigma_px: float) -> NDArray[np.float32]:
    """Wide Gaussian blur computed on a grid reduced by ``step`` (fast at full size)."""
    small = density[::step, ::step]
    blurred = ndimage.gaussian_filter(small, sigma_px, mode="nearest").astype(np.float32)
    return resize_linear(blurred, (density.shape[0], density.shape[1]), step, 0.0)
