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
TILE = 24  # rays per side of a bundle marched together


@dataclass(frozen=True)
class Exposure:
    """Acquisition settings drawn per radiograph (replayable from the seed)."""

    kvp: float
    mas: float
    quanta_behind_body: float  # automatic exposure control: median quanta per pixel in the body
    scatter_fraction: float  # scatter / (scatter + primary) behind the body
    scatter_sigma_mm: float
    electronic_noise: float  # quanta, standard deviation
    bone_gain: float  # bilinear HU > 0 scaling for the radiograph's lower effective energy
    shoulder_water_mm: float  # extra water path of the shoulders on a lateral view


def attenuation_volume(
    image_hu: NDArray[np.int16],
    affine: NDArray[np.float64],
    sampling_mm: float,
    beam_direction: NDArray[np.float64],
    beam_sampling_mm: float,
    bone_gain: float = 1.0,
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Linear attenuation (1/mm), block-averaged towards ``sampling_mm`` across the beam and
    ``beam_sampling_mm`` along it (block means keep line integrals; resolution along a ray
    does not show on the image); with its affine. C-contiguous whatever the input order.

    ``mu = mu_water * (1 + HU / 1000)``, with positive HU multiplied by ``bone_gain``: a
    bilinear model of the stronger bone contrast of an 80-95 kVp beam (effective energy
    ~45 keV) than of the CT's ~70 keV, from which the HU come.
    """
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    along = int(np.argmax(np.abs(beam_direction @ (affine[:3, :3] / spacing))))
    targets = [beam_sampling_mm if axis == along else sampling_mm for axis in range(3)]
    factors = [max(1, round(t / s)) for t, s in zip(targets, spacing, strict=True)]
    sizes = [n // f for n, f in zip(image_hu.shape, factors, strict=True)]
    # Accumulate in place and in the input's memory order: big allocations are slow.
    fortran = image_hu.flags.f_contiguous and not image_hu.flags.c_contiguous
    mu = np.zeros(sizes, np.float32, order="F" if fortran else "C")
    for offset in np.ndindex(*factors):
        mu += image_hu[
            tuple(slice(o, n * f, f) for o, n, f in zip(offset, sizes, factors, strict=True))
        ]
    mu /= np.float32(np.prod(factors))  # mean HU per block
    np.multiply(mu, np.float32(bone_gain), out=mu, where=mu > 0)  # bone: lower energy
    mu *= np.float32(MU_WATER_PER_MM / 1000.0)
    mu += np.float32(MU_WATER_PER_MM)
    np.maximum(mu, np.float32(0.0), out=mu)
    scaled = affine.copy()
    scaled[:3, :3] = affine[:3, :3] * np.array(factors, dtype=np.float64)
    scaled[:3, 3] = affine[:3, 3] + affine[:3, :3] @ ((np.array(factors) - 1) / 2.0)
    if fortran:  # reversed axes give a C-contiguous view: no copy
        return mu.T, scaled[:, [2, 1, 0, 3]]
    return mu, scaled


BODY_MASK_MM = 3.0  # grid of the body mask that drops the CT table


def keep_patient_only(mu: NDArray[np.float32], affine: NDArray[np.float64]) -> None:
    """Zero (in place) all but the largest connected body: a radiograph has no CT table.

    The mask is found on a ~3 mm subsampled grid (denser than -500 HU), eroded by one cell so
    thin structures touching the patient (table shells) separate, then dilated by two.
    """
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    stride = [max(1, round(BODY_MASK_MM / s)) for s in spacing]
    coarse = mu[:: stride[0], :: stride[1], :: stride[2]] > MU_WATER_PER_MM * 0.5
    coarse = ndimage.binary_erosion(coarse, iterations=1)  # cut thin contacts (table shells)
    labels, count = ndimage.label(coarse)
    if count <= 1:
        return
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = ndimage.binary_dilation(labels == int(np.argmax(sizes)), iterations=2)
    for axis, (size, step) in enumerate(zip(mu.shape, stride, strict=True)):
        body = np.repeat(body, step, axis=axis)
        body = np.take(body, np.arange(size), axis=axis)
    mu[~body] = 0.0


def line_integrals(
    mu: NDArray[np.float32],
    affine: NDArray[np.float64],
    geometry: ProjectionGeometry,
    rows: NDArray[np.float64],
    cols: NDArray[np.float64],
    step_mm: float,
) -> NDArray[np.float32]:
    """Integral of mu along the ray source -> detector pixel (rows x cols grid), unitless.

    Rays are marched in square bundles (TILE x TILE rays, all depths in one vectorised
    ``map_coordinates`` call): a bundle reads a thin tube of the volume that stays in cache,
    whatever the volume's memory layout.
    """
    inverse = np.linalg.inv(affine)
    depths = geometry.depth(_corners(mu.shape, affine))
    near, far = float(depths.min()), float(depths.max())
    steps = max(1, int(np.ceil((far - near) / step_mm)))
    t = (near + (np.arange(steps) + 0.5) * (far - near) / steps) / geometry.sid_mm
    source_v = inverse[:3, :3] @ geometry.source_mm + inverse[:3, 3]
    out = np.zeros((rows.size, cols.size), np.float32)
    for r0 in range(0, rows.size, TILE):
        for c0 in range(0, cols.size, TILE):
            tile_rows, tile_cols = rows[r0 : r0 + TILE], cols[c0 : c0 + TILE]
            detector = geometry.detector_points(tile_rows[:, None], tile_cols[None, :])
            detector_v = detector.reshape(-1, 3) @ inverse[:3, :3].T + inverse[:3, 3]
            delta = detector_v - source_v  # (rays, 3) per unit of t
            coords = source_v[:, None, None] + delta.T[:, None, :] * t[None, :, None]
            samples = ndimage.map_coordinates(
                mu, coords.reshape(3, -1), order=1, mode="constant", cval=0.0
            )
            sums = samples.reshape(steps, -1).sum(axis=0)
            ray_length = np.linalg.norm(delta @ affine[:3, :3].T, axis=1) / geometry.sid_mm
            out[r0 : r0 + TILE, c0 : c0 + TILE] = (
                sums * ray_length * (far - near) / steps
            ).reshape(tile_rows.size, tile_cols.size)
    return out


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
    body: NDArray[np.bool_],
    exposure: Exposure,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float32], float]:
    """Poisson quanta of primary plus scatter with electronic noise; and the unattenuated
    quanta per pixel that automatic exposure control chose (the body's median gets
    ``quanta_behind_body``)."""
    signal = primary + scatter
    reference = float(np.median(signal[body])) if body.any() else 1.0
    unattenuated = exposure.quanta_behind_body / max(reference, 1e-9)
    quanta = rng.poisson(signal * unattenuated).astype(np.float32)
    quanta += rng.normal(0.0, exposure.electronic_noise, signal.shape).astype(np.float32)
    return quanta, unattenuated


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


@dataclass(frozen=True)
class Processing:
    """Vendor-style image processing of a for-presentation radiograph (drawn per image)."""

    range_compression: float = 0.9  # fraction of the wide-scale density removed
    range_sigma_mm: float = 40.0
    detail_gain: float = 1.5  # unsharp-mask gain
    detail_sigma_mm: float = 5.0
    gamma: float = 1.8  # > 1 darkens the mid-tones (soft tissue grey, bone white)


def for_presentation(
    quanta: NDArray[np.float32],
    unattenuated: float,
    body: NDArray[np.bool_],
    pixel_mm: float,
    processing: Processing,
) -> tuple[NDArray[np.uint16], float, float]:
    """Log transform, multi-scale processing and windowing to 12-bit MONOCHROME2; (image, WC, WW).

    As detector vendors do: the wide-scale density is partly subtracted (dynamic range
    compression, so thorax and abdomen fit one window) and fine detail is boosted.
    """
    density = -np.log(np.clip(quanta, 0.5, None) / unattenuated)
    step = max(2, int(1.0 / pixel_mm))
    detail = _low_pass(density, step, processing.detail_sigma_mm / (pixel_mm * step))
    wide = _low_pass(density, step * 4, processing.range_sigma_mm / (pixel_mm * step * 4), body)
    enhanced = (
        density - processing.range_compression * wide + processing.detail_gain * (density - detail)
    )
    inside = enhanced[body] if body.any() else enhanced.ravel()
    lo, hi = (float(v) for v in np.percentile(inside, [0.5, 99.8]))
    scaled = np.clip((enhanced - lo) / max(hi - lo, 1e-6), 0.0, 1.0) ** processing.gamma
    top = 2**BITS_STORED - 1
    image = np.rint(scaled * top).astype(np.uint16)
    image[~body] = np.minimum(image[~body], np.uint16(top // 20))  # collimated air stays dark
    return image, top / 2.0, float(top)


def _low_pass(
    density: NDArray[np.float32],
    step: int,
    sigma_px: float,
    body: NDArray[np.bool_] | None = None,
) -> NDArray[np.float32]:
    """Gaussian blur computed on a grid reduced by ``step`` (fast at full size).

    With ``body``, the blur is normalised over the body only, so that air next to the skin
    does not pull the wide-scale density down (no halo at the body edge).
    """
    small = density[::step, ::step]
    blurred = ndimage.gaussian_filter(small, sigma_px, mode="nearest")
    if body is not None:
        weight = body[::step, ::step].astype(np.float32)
        spread = ndimage.gaussian_filter(small * weight, sigma_px, mode="nearest")
        norm = ndimage.gaussian_filter(weight, sigma_px, mode="nearest")
        blurred = np.where(norm > 1e-3, spread / np.maximum(norm, 1e-3), blurred)
    return resize_linear(blurred.astype(np.float32), density.shape[:2], step, 0.0)
