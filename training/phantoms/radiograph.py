"""Digitally reconstructed radiographs (DRR) of a CT phantom, with 2D ground truth.

``make_radiograph(phantom, view="lateral")`` projects the phantom's HU volume in a cone beam
(source-image distance 100-115 cm, magnification 1.15-1.25 at the spine, detector pixel
0.143-0.2 mm, all drawn from the seed), adds scatter and quantum noise and returns a
12-bit "for presentation" image with each vertebra's projected morphometry points, body outline,
grade and visibility. ``write_radiograph`` stores it as DX DICOM or NIfTI beside
``ground_truth_2d.json``. Speed: the projection is computed on a ~1.25 mm grid and
interpolated to the detector pitch; a 512 x 512 x 300 phantom takes a few seconds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spinescreen.errors import ConfigError
from training.phantoms.radiograph_geometry import ProjectionGeometry, View, make_geometry
from training.phantoms.radiograph_render import (
    BITS_STORED,
    MU_WATER_PER_MM,
    Exposure,
    Processing,
    attenuation_volume,
    detected_quanta,
    for_presentation,
    keep_patient_only,
    line_integrals,
    scatter_field,
    upsample,
    volume_corners,
)
from training.phantoms.radiograph_truth import ProjectedVertebra, project_vertebrae, shoulder_z_mm
from training.phantoms.radiograph_writer import write_radiograph
from training.phantoms.types import CTPhantom

__all__ = ["Radiograph", "make_radiograph", "write_radiograph"]

log = logging.getLogger(__name__)
SAMPLING_MM = 1.25  # coarse detector sampling and volume sampling across the beam
BEAM_SAMPLING_MM = 2.5  # volume sampling and ray step along the beam
PIXEL_PITCHES_MM = (0.143, 0.148, 0.16, 0.175, 0.2)


@dataclass(frozen=True)
class Radiograph:
    """A for-presentation radiograph: ``image[row, col]``, rows head to feet."""

    phantom_id: str
    seed: int
    view: View
    image: NDArray[np.uint16]  # BITS_STORED-bit MONOCHROME2, bone bright
    geometry: ProjectionGeometry
    exposure: Exposure
    processing: Processing
    window_center: float
    window_width: float
    body_part: str  # DICOM BodyPartExamined: "TSPINE", "LSPINE" or "SPINE"
    vertebrae: tuple[ProjectedVertebra, ...]
    bits_stored: int = BITS_STORED
    photometric_interpretation: str = "MONOCHROME2"

    @property
    def pixel_spacing_mm(self) -> tuple[float, float]:
        """ImagerPixelSpacing (row, column) at the detector."""
        return (self.geometry.pixel_mm, self.geometry.pixel_mm)

    @property
    def magnification(self) -> float:
        return self.geometry.magnification

    def ground_truth(self) -> dict[str, Any]:
        """JSON-ready 2D ground truth (pixel coordinates are (row, col))."""
        from training.phantoms.radiograph_writer import ground_truth_json

        return ground_truth_json(self)


def make_radiograph(
    phantom: CTPhantom, view: str = "lateral", seed: int | None = None
) -> Radiograph:
    """Project ``phantom`` as a lateral (or AP) radiograph; deterministic in (phantom, seed)."""
    if view not in ("lateral", "ap"):
        raise ConfigError(f"radiograph view {view!r} is not supported: use 'lateral' or 'ap'")
    started = time.perf_counter()
    rng = np.random.default_rng([phantom.seed if seed is None else seed, 0x5D2])
    sid = float(rng.uniform(1000.0, 1150.0))
    magnification = float(rng.uniform(1.15, 1.25))
    pixel = float(rng.choice(PIXEL_PITCHES_MM))
    exposure = _draw_exposure(rng)
    processing = _draw_processing(rng)
    corners = volume_corners(phantom.image_hu.shape, phantom.affine)
    geometry = make_geometry(view, _isocenter(phantom), corners, sid, magnification, pixel)
    image, center, width = _render(phantom, geometry, exposure, processing, rng)
    radiograph = Radiograph(
        phantom_id=phantom.phantom_id,
        seed=phantom.seed if seed is None else seed,
        view=geometry.view,
        image=image,
        geometry=geometry,
        exposure=exposure,
        processing=processing,
        window_center=center,
        window_width=width,
        body_part=_body_part(phantom),
        vertebrae=project_vertebrae(phantom, geometry),
    )
    log.info(
        "radiograph of phantom %s (%s): %dx%d px at %.3f mm in %.2f s",
        phantom.phantom_id,
        view,
        *image.shape,
        pixel,
        time.perf_counter() - started,
    )
    return radiograph


def _draw_exposure(rng: np.random.Generator) -> Exposure:
    kvp = float(rng.uniform(80.0, 95.0))
    return Exposure(
        kvp=kvp,
        bone_gain=1.4 + 0.4 * (95.0 - kvp) / 15.0,  # softer beam, more bone contrast
        mas=float(rng.uniform(40.0, 120.0)),
        quanta_behind_body=float(rng.uniform(300.0, 1200.0)),
        scatter_fraction=float(rng.uniform(0.25, 0.45)),
        scatter_sigma_mm=float(rng.uniform(25.0, 45.0)),
        electronic_noise=float(rng.uniform(1.0, 4.0)),
        shoulder_water_mm=float(rng.uniform(90.0, 140.0)),
    )


SCREENED_LEVELS = {f"T{n}" for n in range(4, 14)} | {f"L{n}" for n in range(1, 7)}


def _draw_processing(rng: np.random.Generator) -> Processing:
    return Processing(
        range_compression=float(rng.uniform(0.75, 0.92)),
        range_sigma_mm=float(rng.uniform(25.0, 50.0)),
        detail_gain=float(rng.uniform(0.9, 1.7)),
        detail_sigma_mm=float(rng.uniform(3.0, 6.0)),
        gamma=float(rng.uniform(1.4, 2.0)),
    )


def _isocenter(phantom: CTPhantom) -> NDArray[np.float64]:
    """Centre of the screened spine (complete T4-L5 bodies), else of all vertebrae or volume."""
    screened = [v for v in phantom.vertebra_truth if v.complete and v.level in SCREENED_LEVELS]
    chosen = screened or list(phantom.vertebra_truth)
    if chosen:
        centres = np.array([v.body_centroid_mm for v in chosen])
        return np.asarray(centres.mean(axis=0), dtype=np.float64)
    middle = (np.array(phantom.image_hu.shape, dtype=np.float64) - 1) / 2.0
    return np.asarray(phantom.affine[:3, :3] @ middle + phantom.affine[:3, 3], dtype=np.float64)


def _render(
    phantom: CTPhantom,
    geometry: ProjectionGeometry,
    exposure: Exposure,
    processing: Processing,
    rng: np.random.Generator,
) -> tuple[NDArray[np.uint16], float, float]:
    mu, affine = attenuation_volume(
        phantom.image_hu,
        phantom.affine,
        SAMPLING_MM,
        geometry.beam_direction,
        BEAM_SAMPLING_MM,
        exposure.bone_gain,
    )
    keep_patient_only(mu, affine)
    factor = max(1, round(SAMPLING_MM * geometry.magnification / geometry.pixel_mm))
    rows_c, cols_c = (_coarse_centres(n, factor) for n in geometry.shape)
    integral = line_integrals(mu, affine, geometry, rows_c, cols_c, BEAM_SAMPLING_MM)
    integral += _shoulders(phantom, geometry, exposure, rows_c)[:, None]
    scatter = scatter_field(integral, exposure, factor * geometry.pixel_mm)
    full_integral = upsample(integral, factor, geometry.shape)
    primary = np.exp(-full_integral).astype(np.float32)
    body = full_integral > 0.5
    full_scatter = upsample(scatter, factor, geometry.shape)
    quanta, unattenuated = detected_quanta(primary, full_scatter, body, exposure, rng)
    return for_presentation(quanta, unattenuated, body, geometry.pixel_mm, processing)


def _coarse_centres(size: int, factor: int) -> NDArray[np.float64]:
    """Detector pixel coordinates of the coarse samples: ``(f - 1) / 2 + f * m``."""
    return np.asarray((factor - 1) / 2.0 + factor * np.arange(-(-size // factor)), np.float64)


def _shoulders(
    phantom: CTPhantom, geometry: ProjectionGeometry, exposure: Exposure, rows: NDArray[np.float64]
) -> NDArray[np.float32]:
    """Extra attenuation of both shoulders over the upper thoracic spine (lateral view only)."""
    top = shoulder_z_mm(phantom) if geometry.view == "lateral" else None
    if top is None:
        return np.zeros(rows.shape, np.float32)
    edge = geometry.isocenter_mm + np.array([0.0, 0.0, top - geometry.isocenter_mm[2]])
    edge_row = float(geometry.project(edge[None])[0, 0])
    width = 12.0 * geometry.magnification / geometry.pixel_mm
    ramp = 1.0 / (1.0 + np.exp((rows - edge_row) / width))
    return (MU_WATER_PER_MM * exposure.shoulder_water_mm * ramp).astype(np.float32)


def _body_part(phantom: CTPhantom) -> str:
    levels = {v.level[0] for v in phantom.vertebra_truth if v.complete}
    if "T" in levels and "L" in levels:
        return "SPINE"
    return "TSPINE" if "T" in levels else "LSPINE" if "L" in levels else "SPINE"
