"""Synthetic inputs for the pipeline tests: small DICOM CT series written with pydicom, and
analytic vertebra label maps (boxes and wedges at known heights, in any pose)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
ROWS = COLS = 12
PIXEL_MM = 0.8


def expected_hu(k: int) -> NDArray[np.float32]:
    """HU of slice k (k-th position from the feet) as the series writers store it: [i, j]."""
    i, j = np.meshgrid(np.arange(COLS), np.arange(ROWS), indexing="ij")
    return (10.0 * k + i + 100.0 * j - 500.0).astype(np.float32)


@dataclass(frozen=True)
class SeriesSpec:
    n: int = 8
    step_mm: float = 1.5
    tilt_deg: float = 0.0  # gantry tilt: positions step off the normal in y
    bits: int = 16
    photometric: str = "MONOCHROME2"
    modality: str = "CT"
    rescale: bool = True
    slope: float = 1.0
    intercept: float = -1024.0
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
    thickness_mm: float = 1.5
    series_uid: str = ""
    study_uid: str = "1.2.826.0.1.3680043.8.498.1"


def _short_uid() -> str:
    """A UID short enough to append instance numbers (64 characters at most)."""
    return generate_uid()[:40].rstrip(".").replace(".0", ".1")


def _base(spec: SeriesSpec, series_uid: str, sop_class: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = spec.study_uid + ".9"
    ds.Modality = spec.modality
    ds.ImageType = list(spec.image_type)
    ds.SliceThickness = spec.thickness_mm
    ds.SeriesDescription = "synthetic"
    ds.BodyPartExamined = "ABDOMEN"
    ds.Rows, ds.Columns = ROWS, COLS
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = spec.photometric
    ds.BitsAllocated = 8 if spec.bits == 8 else 16
    ds.BitsStored = spec.bits
    ds.HighBit = spec.bits - 1
    ds.PixelRepresentation = 0
    return ds


def _stored(hu: NDArray[np.float32], spec: SeriesSpec, slope: float) -> bytes:
    dtype = np.uint8 if spec.bits == 8 else np.uint16
    values = np.round((hu - spec.intercept) / slope) if spec.rescale else hu - hu.min()
    return np.clip(values, 0, np.iinfo(dtype).max).astype(dtype).T.tobytes()  # rows first


def write_series(
    folder: Path,
    spec: SeriesSpec = SeriesSpec(),
    order: Sequence[int] | None = None,
    skip: Sequence[int] = (),
    duplicate: Sequence[int] = (),
    slopes: Sequence[float] | None = None,
) -> list[Path]:
    """Single-frame CT files; slice k at z = k * step (feet to head), HU = expected_hu(k)."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = spec.series_uid or _short_uid()
    ks = [k for k in (order if order is not None else range(spec.n)) if k not in skip]
    paths = []
    for number, k in enumerate([*ks, *duplicate]):
        slope = slopes[k] if slopes else spec.slope
        ds = _base(spec, series_uid, CT_IMAGE)
        ds.SOPInstanceUID = f"{series_uid}.{k}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        shift = math.tan(math.radians(spec.tilt_deg)) * k * spec.step_mm
        ds.ImagePositionPatient = [-4.0, -4.0 + shift, k * spec.step_mm]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [PIXEL_MM, PIXEL_MM]
        if spec.rescale:
            ds.RescaleSlope, ds.RescaleIntercept = slope, spec.intercept
        ds.PixelData = _stored(expected_hu(k), spec, slope)
        path = folder / f"slice{number:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_enhanced_ct(folder: Path, spec: SeriesSpec = SeriesSpec()) -> Path:
    """One multi-frame Enhanced CT instance: frames in reverse order, rescale per frame."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = spec.series_uid or _short_uid()
    ds = _base(spec, series_uid, ENHANCED_CT)
    ds.SOPInstanceUID = series_uid + ".1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.NumberOfFrames = spec.n
    shared = Dataset()
    orient, measures = Dataset(), Dataset()
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing = [PIXEL_MM, PIXEL_MM]
    measures.SliceThickness = spec.thickness_mm
    shared.PlaneOrientationSequence = [orient]
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames, pixels = [], []
    for k in reversed(range(spec.n)):
        frame, plane, transform = Dataset(), Dataset(), Dataset()
        plane.ImagePositionPatient = [-4.0, -4.0, k * spec.step_mm]
        slope = 1.0 + 0.5 * (k % 2)
        transform.RescaleSlope, transform.RescaleIntercept = slope, spec.intercept
        transform.RescaleType = "HU"
        frame.PlanePositionSequence = [plane]
        frame.PixelValueTransformationSequence = [transform]
        frames.append(frame)
        pixels.append(_stored(expected_hu(k), spec, slope))
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = b"".join(pixels)
    path = folder / "enhanced.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


# ---- analytic vertebrae ----------------------------------------------------------------


@dataclass(frozen=True)
class BodyShape:
    """A vertebral body in its local frame (u posterior, v superior, w left; mm): a box whose
    height falls linearly from ``posterior_mm`` to ``anterior_mm`` (a wedge), optionally with
    a central depression (biconcave), and a posterior element behind a canal."""

    label: int
    anterior_mm: float
    posterior_mm: float
    depth_mm: float = 32.0
    width_mm: float = 38.0
    middle_dip_mm: float = 0.0  # biconcave: total central loss of height
    arch: bool = True

    def height_at(self, fraction: float) -> float:
        linear = self.anterior_mm + fraction * (self.posterior_mm - self.anterior_mm)
        return linear - self.middle_dip_mm * max(0.0, 1.0 - abs(fraction - 0.5) / 0.5)

    @property
    def heights(self) -> dict[str, float]:
        return {
            k: self.height_at(f)
            for k, f in (("anterior", 0.1), ("middle", 0.5), ("posterior", 0.9))
        }


def rotation(
    pitch_deg: float = 0.0, yaw_deg: float = 0.0, roll_deg: float = 0.0
) -> NDArray[np.float64]:
    """Rotation about x (pitch: tilt in the sagittal plane), z (yaw: axial rotation), y."""
    a, b, c = (math.radians(x) for x in (pitch_deg, yaw_deg, roll_deg))
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    rz = np.array([[math.cos(b), -math.sin(b), 0], [math.sin(b), math.cos(b), 0], [0, 0, 1]])
    ry = np.array([[math.cos(c), 0, math.sin(c)], [0, 1, 0], [-math.sin(c), 0, math.cos(c)]])
    return np.asarray(rz @ rx @ ry, dtype=np.float64)


def spine_label_map(
    bodies: Sequence[BodyShape],
    spacing_mm: tuple[float, float, float] = (0.5, 0.5, 0.5),
    pose: NDArray[np.float64] | None = None,
    gap_mm: float = 8.0,
    half_size_mm: tuple[float, float, float] = (36.0, 50.0, 55.0),
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.float64]]:
    """Labels, sub-regions (1 body, 2 arch) and the LPS affine of a stack of bodies.

    Bodies are stacked head (first) to feet along local v, centred on the middle one; the
    whole stack is turned by ``pose`` (local u, v, w = patient +y, +z, +x before turning).
    """
    pose = np.eye(3) if pose is None else pose
    shape = tuple(int(2 * h / s) for h, s in zip(half_size_mm, spacing_mm, strict=True))
    affine = np.diag([*spacing_mm, 1.0])
    affine[:3, 3] = [-h + 0.37 * s for h, s in zip(half_size_mm, spacing_mm, strict=True)]
    idx = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = affine[:3, :3] @ idx + affine[:3, 3:4]
    # local coordinates: world x -> w, y -> u, z -> v before the pose
    local = (pose.T @ world).astype(np.float32)
    u, v, w = local[1], local[2], local[0]
    labels = np.zeros(idx.shape[1], dtype=np.uint8)
    sub = np.zeros(idx.shape[1], dtype=np.uint8)
    centres = np.cumsum(
        [0.0]
        + [-(a.posterior_mm + b.posterior_mm) / 2 - gap_mm for a, b in itertools.pairwise(bodies)]
    )
    centres -= centres[len(bodies) // 2]
    for body, centre in zip(bodies, centres, strict=True):
        fraction = (u + body.depth_mm / 2) / body.depth_mm  # 0 anterior .. 1 posterior
        linear = body.anterior_mm + fraction * (body.posterior_mm - body.anterior_mm)
        dip = body.middle_dip_mm * np.clip(1.0 - np.abs(fraction - 0.5) / 0.5, 0, 1)
        half = (linear - dip) / 2
        in_body = (np.abs(u) <= body.depth_mm / 2) & (np.abs(w) <= body.width_mm / 2)
        in_body &= np.abs(v - centre) <= half
        labels[in_body] = body.label
        sub[in_body] = 1
        if body.arch:
            arch = (u >= body.depth_mm / 2 + 12) & (u <= body.depth_mm / 2 + 28)
            arch &= (np.abs(w) <= 7) & (np.abs(v - centre) <= 7)
            labels[arch] = body.label
            sub[arch] = 2
    return labels.reshape(shape), sub.reshape(shape), affine


def write_volume_series(
    folder: Path, hu: NDArray[np.floating], spacing_mm: tuple[float, float, float]
) -> list[Path]:
    """A CT series of ``hu[i, j, k]`` (i columns, j rows, k slices from the feet), axial LPS."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = SeriesSpec(n=hu.shape[2], step_mm=spacing_mm[2], thickness_mm=spacing_mm[2])
    series_uid = _short_uid()
    paths = []
    for k in range(hu.shape[2]):
        ds = _base(spec, series_uid, CT_IMAGE)
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[0]
        ds.SOPInstanceUID = f"{series_uid}.{k}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImagePositionPatient = [0.0, 0.0, k * spacing_mm[2]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing_mm[1], spacing_mm[0]]  # row spacing (j), column spacing (i)
        ds.RescaleSlope, ds.RescaleIntercept = 1.0, spec.intercept
        ds.PixelData = _stored(hu[:, :, k].astype(np.float32), spec, 1.0)
        path = folder / f"slice{k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
