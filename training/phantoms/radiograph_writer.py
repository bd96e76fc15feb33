"""Write a radiograph as DX DICOM (for presentation) or NIfTI, plus ``ground_truth_2d.json``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import DigitalXRayImageStorageForPresentation

from spinescreen.errors import ConfigError
from training.phantoms.dicom_common import (
    add_equipment,
    add_patient_and_study,
    add_series,
    add_sop_common,
    save_dataset,
    study_identity,
)

if TYPE_CHECKING:
    from training.phantoms.radiograph import Radiograph

log = logging.getLogger(__name__)
DX_SERIES_NUMBER = 1
_ORIENTATION = {"lateral": ["P", "F"], "ap": ["L", "F"]}  # direction of rows, of columns


def write_radiograph(radiograph: Radiograph, folder: Path | str, fmt: str = "dicom") -> list[Path]:
    """Write ``image.dcm`` (or ``image.nii.gz``) and ``ground_truth_2d.json`` in ``folder``."""
    if fmt not in ("dicom", "nifti"):
        raise ConfigError(f"radiograph format {fmt!r} is not supported: use 'dicom' or 'nifti'")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    image_path = _write_dicom(radiograph, out) if fmt == "dicom" else _write_nifti(radiograph, out)
    truth_path = out / "ground_truth_2d.json"
    truth_path.write_text(json.dumps(ground_truth_json(radiograph), indent=1) + "\n")
    log.info("wrote radiograph of phantom %s to %s", radiograph.phantom_id, image_path.name)
    return [image_path, truth_path]


def ground_truth_json(radiograph: Radiograph) -> dict[str, Any]:
    geometry = radiograph.geometry
    return {
        "phantom_id": radiograph.phantom_id,
        "seed": radiograph.seed,
        "view": radiograph.view,
        "coordinates": "pixel (row, col) of the image; rows run head to feet",
        "rows": int(radiograph.image.shape[0]),
        "columns": int(radiograph.image.shape[1]),
        "imager_pixel_spacing_mm": list(radiograph.pixel_spacing_mm),
        "magnification_at_isocenter": geometry.magnification,
        "source_image_distance_mm": geometry.sid_mm,
        "source_object_distance_mm": geometry.sod_mm,
        "source_mm_ras": [float(v) for v in geometry.source_mm],
        "isocenter_mm_ras": [float(v) for v in geometry.isocenter_mm],
        "vertebrae": [_vertebra_json(v) for v in radiograph.vertebrae],
    }


def _vertebra_json(vertebra: Any) -> dict[str, Any]:
    outline = np.round(vertebra.body_outline_px, 2)
    return {
        "label": vertebra.label,
        "level": vertebra.level,
        "visible": vertebra.visible,
        "hidden_reason": vertebra.hidden_reason,
        "complete": vertebra.complete,
        "genant_grade": vertebra.genant_grade,
        "morphology": vertebra.morphology,
        "height_loss": round(float(vertebra.height_loss), 4),
        "magnification": round(float(vertebra.magnification), 5),
        "points_px": {k: [round(v[0], 2), round(v[1], 2)] for k, v in vertebra.points_px.items()},
        "body_centroid_px": [round(v, 2) for v in vertebra.body_centroid_px],
        "projected_heights_mm": {k: round(v, 3) for k, v in vertebra.projected_heights_mm.items()},
        "body_outline_px": outline.tolist(),
    }


def _write_nifti(radiograph: Radiograph, folder: Path) -> Path:
    """NIfTI with i = column, j = row (SimpleITK reads it back as (rows, cols))."""
    import nibabel as nib

    spacing = radiograph.geometry.pixel_mm
    affine = np.diag([spacing, spacing, 1.0, 1.0])
    image = nib.Nifti1Image(radiograph.image.T[:, :, None], affine)  # type: ignore[no-untyped-call]
    path = folder / "image.nii.gz"
    nib.save(image, path)
    return path


def _write_dicom(radiograph: Radiograph, folder: Path) -> Path:
    identity = study_identity(radiograph.phantom_id, radiograph.seed, kind="XR")
    ds = Dataset()
    add_patient_and_study(ds, identity, "XR SPINE PHANTOM")
    view = "LAT" if radiograph.view == "lateral" else "AP"
    add_series(ds, identity, "DX", DX_SERIES_NUMBER, f"{radiograph.body_part} {view}")
    ds.SeriesInstanceUID = identity.uid("series", "DX", radiograph.view)
    ds.PresentationIntentType = "FOR PRESENTATION"
    add_equipment(ds)
    add_sop_common(ds, identity, DigitalXRayImageStorageForPresentation, "DX", radiograph.view)
    ds.InstanceNumber = 1
    ds.AcquisitionDate, ds.AcquisitionTime = identity.date, identity.time
    ds.ImageType = ["DERIVED", "PRIMARY"]
    _add_anatomy_and_positioning(ds, radiograph)
    _add_detector_and_exposure(ds, radiograph)
    _add_pixels(ds, radiograph)
    return save_dataset(ds, folder / "image.dcm")


def _add_anatomy_and_positioning(ds: Dataset, radiograph: Radiograph) -> None:
    geometry = radiograph.geometry
    ds.BodyPartExamined = radiograph.body_part
    ds.ImageLaterality = "U"
    ds.AnatomicRegionSequence = [_code("421060004", "SCT", "Spine")]
    ds.PatientOrientation = _ORIENTATION[radiograph.view]
    ds.ViewPosition = geometry.view_position
    ds.ViewCodeSequence = [
        _code("399067008", "SCT", "lateral")
        if radiograph.view == "lateral"
        else _code("399348003", "SCT", "antero-posterior")
    ]
    ds.PatientPosition = ""
    ds.DistanceSourceToDetector = f"{geometry.sid_mm:.2f}"
    ds.DistanceSourceToPatient = f"{geometry.sod_mm:.2f}"
    ds.EstimatedRadiographicMagnificationFactor = f"{geometry.magnification:.5f}"
    ds.PositionerType = "COLUMN"
    ds.Grid = "FOCUSED"
    ds.AcquisitionContextSequence = []


def _add_detector_and_exposure(ds: Dataset, radiograph: Radiograph) -> None:
    spacing = f"{radiograph.geometry.pixel_mm:.4f}"
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.DetectorType = "SCINTILLATOR"
    ds.DetectorConfiguration = "AREA"
    ds.DetectorID = "PHANTOM-DRR"
    exposure = radiograph.exposure
    ds.KVP = f"{exposure.kvp:.1f}"
    ds.ExposureInuAs = round(exposure.mas * 1000)
    ds.ExposureTime = 100
    ds.XRayTubeCurrent = round(exposure.mas * 10)


def _add_pixels(ds: Dataset, radiograph: Radiograph) -> None:
    image = np.ascontiguousarray(radiograph.image, dtype=np.uint16)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = radiograph.photometric_interpretation
    ds.Rows, ds.Columns = (int(n) for n in image.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = radiograph.bits_stored
    ds.HighBit = radiograph.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1  # higher values: less X-ray intensity (bone bright)
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY"
    ds.LossyImageCompression = "00"
    ds.WindowCenter = f"{radiograph.window_center:.1f}"
    ds.WindowWidth = f"{radiograph.window_width:.1f}"
    ds.PixelData = image.tobytes()


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item
