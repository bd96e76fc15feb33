"""Write a :class:`CTPhantom` as a DICOM CT study, as a scanner would send it to a PACS.

``write_ct_study`` writes ``CT/0001.dcm ...`` (CT Image Storage, one file per axial slice) and,
with ``include_extras``, the objects a PACS forwards beside it: ``LOCALIZER/`` (two scout images),
``DOSE/`` (a secondary-capture dose screen) and ``DOSE_SR/`` (an X-Ray Radiation Dose SR).
All share one study, patient and frame of reference; UIDs, dates and bytes are deterministic
in ``(phantom_id, seed)``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, JPEG2000Lossless, RLELossless

from spinescreen.errors import ConfigError, GeometryError
from training.phantoms.dicom_common import (
    StudyIdentity,
    add_equipment,
    add_patient_and_study,
    add_series,
    add_sop_common,
    save_dataset,
    start_file_meta,
    study_identity,
)
from training.phantoms.dicom_geometry import SliceGrid, slice_grid
from training.phantoms.types import CTPhantom

log = logging.getLogger(__name__)

TransferSyntax = Literal["explicit", "jpeg2000", "rle"]
_COMPRESSION = {"jpeg2000": JPEG2000Lossless, "rle": RLELossless}
CT_SERIES_NUMBER = 2
CTDI_VOL_MGY = 8.5
HU_OFFSET = 1024  # stored = HU + 1024, RescaleIntercept -1024, as scanners store CT


def write_ct_study(
    phantom: CTPhantom,
    folder: Path | str,
    transfer_syntax: TransferSyntax = "explicit",
    *,
    include_extras: bool = True,
    uid_root: str | None = None,
) -> list[Path]:
    """Write the phantom's CT series (and the PACS extras) under ``folder``; return the files."""
    if transfer_syntax not in ("explicit", "jpeg2000", "rle"):
        raise ConfigError(
            f"transfer_syntax {transfer_syntax!r} is not supported: use 'explicit', "
            "'jpeg2000' or 'rle'"
        )
    root = Path(folder)
    identity = study_identity(phantom.phantom_id, phantom.seed, uid_root)
    grid = slice_grid(phantom.image_hu, phantom.affine)
    written = write_ct_series(phantom, grid, identity, root / "CT", transfer_syntax)
    if include_extras:
        from training.phantoms.dicom_dose_sr import write_dose_sr
        from training.phantoms.dicom_extras import write_dose_screen, write_localizers

        written += write_localizers(phantom, grid, identity, root / "LOCALIZER")
        written += write_dose_screen(phantom, identity, root / "DOSE")
        written += write_dose_sr(phantom, identity, body_part_examined(phantom), root / "DOSE_SR")
    log.info(
        "wrote DICOM study %s: %d files (%s)", identity.study_uid, len(written), transfer_syntax
    )
    return written


def write_ct_series(
    phantom: CTPhantom,
    grid: SliceGrid,
    identity: StudyIdentity,
    folder: Path,
    transfer_syntax: TransferSyntax,
) -> list[Path]:
    """One CT Image Storage file per slice of ``grid``, named ``0001.dcm`` upwards."""
    storage = PixelStorage.for_volume(grid.volume)
    template = ct_series_template(phantom, grid, identity, storage)
    paths = []
    for k in range(grid.volume.shape[2]):
        pixels = storage.encode(grid.volume[:, :, k].T)  # (rows, columns)
        ds = ct_slice(template, grid, identity, k, np.ascontiguousarray(pixels).tobytes())
        if transfer_syntax in _COMPRESSION:
            start_file_meta(ds)
            ds.compress(
                _COMPRESSION[transfer_syntax],
                encoding_plugin="pylibjpeg",
                generate_instance_uid=False,
            )
        paths.append(save_dataset(ds, folder / f"{k + 1:04d}.dcm"))
    return paths


class PixelStorage:
    """How HU are stored: ``stored = HU + 1024``, unsigned when the volume allows it."""

    def __init__(self, signed: bool, bits_stored: int) -> None:
        self.signed = signed
        self.bits_stored = bits_stored

    @classmethod
    def for_volume(cls, image_hu: NDArray[np.int16]) -> PixelStorage:
        low, high = int(image_hu.min()) + HU_OFFSET, int(image_hu.max()) + HU_OFFSET
        signed = low < 0
        if signed:
            bits = max(12, max(int(high).bit_length(), int(-low - 1).bit_length()) + 1)
        else:
            bits = max(12, int(high).bit_length())
        if bits > 16:
            raise GeometryError(
                f"HU range {low - HU_OFFSET}..{high - HU_OFFSET} does not fit 16-bit CT pixels "
                "with intercept -1024: clip the phantom to -32768..31743 HU"
            )
        return cls(signed=signed, bits_stored=bits)

    def encode(self, hu: NDArray[np.int16]) -> NDArray[Any]:
        stored = hu.astype(np.int32) + HU_OFFSET
        return stored.astype(np.int16 if self.signed else np.uint16)


def ct_series_template(
    phantom: CTPhantom, grid: SliceGrid, identity: StudyIdentity, storage: PixelStorage
) -> Dataset:
    """Attributes every slice of the series shares."""
    ds = Dataset()
    add_patient_and_study(ds, identity, "CT SPINE PHANTOM")
    add_series(ds, identity, "CT", CT_SERIES_NUMBER, _series_description(phantom))
    ds.BodyPartExamined = body_part_examined(phantom)
    ds.PatientPosition = str(phantom.acquisition.get("patient_position", "HFS"))
    ds.FrameOfReferenceUID = identity.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    add_equipment(ds)
    _add_image_pixel(ds, grid, storage)
    _add_ct_acquisition(ds, phantom, grid)
    if _has_contrast(phantom):
        ds.ContrastBolusAgent = "IODINATED CONTRAST (SYNTHETIC)"
        ds.ContrastBolusRoute = "IV"
    return ds


def ct_slice(
    template: Dataset, grid: SliceGrid, identity: StudyIdentity, k: int, pixel_data: bytes
) -> Dataset:
    """One axial slice: the template plus its position, numbers and pixels."""
    ds = Dataset()
    ds.update(template)
    add_sop_common(ds, identity, CTImageStorage, "CT", k)
    ds.InstanceNumber = k + 1
    ds.AcquisitionDate = identity.date
    ds.AcquisitionTime = identity.time
    position = grid.position(k)
    ds.ImagePositionPatient = [_ds_number(v) for v in position]
    ds.SliceLocation = _ds_number(float(position @ grid.normal))
    ds.PixelData = pixel_data
    return ds


def _add_image_pixel(ds: Dataset, grid: SliceGrid, storage: PixelStorage) -> None:
    """Image Plane, Image Pixel and VOI LUT attributes shared by all slices."""
    ds.ImageOrientationPatient = [
        _ds_number(v) for v in (*grid.row_direction, *grid.column_direction)
    ]
    ds.PixelSpacing = [_ds_number(v) for v in grid.pixel_spacing]
    ds.SpacingBetweenSlices = _ds_number(grid.slice_spacing)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Columns, ds.Rows = (int(n) for n in grid.volume.shape[:2])
    ds.BitsAllocated = 16
    ds.BitsStored = storage.bits_stored
    ds.HighBit = storage.bits_stored - 1
    ds.PixelRepresentation = 1 if storage.signed else 0
    ds.RescaleIntercept = -HU_OFFSET
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.WindowCenter = [40, 400]
    ds.WindowWidth = [400, 1800]
    ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "BONE"]


def _add_ct_acquisition(ds: Dataset, phantom: CTPhantom, grid: SliceGrid) -> None:
    """CT Image module acquisition attributes (plausible values of a routine helical CT)."""
    acquisition = phantom.acquisition
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SliceThickness = _ds_number(float(acquisition.get("slice_thickness_mm", grid.slice_spacing)))
    ds.KVP = _ds_number(float(acquisition.get("kvp", 120.0)))
    ds.AcquisitionNumber = 1
    ds.ScanOptions = "HELICAL MODE"
    ds.DataCollectionDiameter = 500
    ds.ReconstructionDiameter = _ds_number(grid.volume.shape[0] * grid.pixel_spacing[1])
    ds.DistanceSourceToDetector = 1040
    ds.DistanceSourceToPatient = 570
    ds.GantryDetectorTilt = 0
    ds.TableHeight = 150
    ds.RotationDirection = "CW"
    ds.ExposureTime = 500
    ds.XRayTubeCurrent = 200
    ds.Exposure = 100
    ds.FilterType = "BODY"
    ds.GeneratorPower = 24
    ds.FocalSpots = 1.2
    ds.ConvolutionKernel = str(acquisition.get("kernel", "STANDARD")).upper()[:16]
    ds.CTDIvol = CTDI_VOL_MGY
    ds.CTDIPhantomTypeCodeSequence = [_iec_body_phantom()]


def _iec_body_phantom() -> Dataset:
    item = Dataset()
    item.CodeValue = "113691"
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = "IEC Body Dosimetry Phantom"
    return item


def body_part_examined(phantom: CTPhantom) -> str:
    """BodyPartExamined (DICOM defined terms) from the field of view's vertebral levels."""
    named = phantom.acquisition.get("field_of_view", phantom.params.get("field_of_view"))
    by_name = {
        "chest": "CHEST",
        "abdomen": "ABDOMEN",
        "chest_abdomen_pelvis": "CHESTABDPELVIS",
        "thoracolumbar": "SPINE",
    }
    if isinstance(named, str) and named.lower() in by_name:
        return by_name[named.lower()]
    labels = _labels_in_view(phantom)
    chest = any(8 <= v <= 11 for v in labels)  # T1-T4 in view
    pelvis = 26 in labels
    abdomen = any(21 <= v <= 25 for v in labels)  # L2 or lower
    if chest:
        return "CHESTABDPELVIS" if pelvis else "CHESTABDOMEN" if abdomen else "CHEST"
    if pelvis:
        return "ABDOMENPELVIS"
    if abdomen or labels & {19, 20, 28}:
        return "ABDOMEN"
    return "NECK" if labels and max(labels) <= 7 else "SPINE"


def _labels_in_view(phantom: CTPhantom) -> set[int]:
    """VerSe labels in the field of view: from the truth, else counted on the label map."""
    if phantom.vertebra_truth:
        return {v.label for v in phantom.vertebra_truth}
    counts = np.bincount(phantom.vertebrae.ravel(), minlength=1)
    return {int(v) for v in np.flatnonzero(counts) if v}


def _series_description(phantom: CTPhantom) -> str:
    thickness = phantom.acquisition.get("slice_thickness_mm")
    kernel = phantom.acquisition.get("kernel", "")
    parts = [
        "PHANTOM",
        str(kernel).upper() if kernel else "",
        f"{thickness}MM" if thickness else "",
    ]
    return " ".join(p for p in parts if p)[:64]


def _has_contrast(phantom: CTPhantom) -> bool:
    contrast = phantom.acquisition.get("contrast", False)
    if isinstance(contrast, str):
        return contrast.strip().lower() not in ("", "none", "no", "false", "unenhanced")
    return bool(contrast)


def _ds_number(value: float) -> str:
    """A decimal string of at most 16 characters that keeps sub-micrometre precision."""
    if abs(value) < 5e-11:
        return "0"
    for digits in range(10, 0, -1):
        text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
        if len(text) <= 16:
            return text
    return f"{value:.6g}"
