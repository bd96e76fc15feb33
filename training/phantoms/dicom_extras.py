"""The non-diagnostic objects a PACS forwards with a CT study: scouts and a dose screen.

- ``LOCALIZER/``: CT Image Storage, ImageType ORIGINAL\\PRIMARY\\LOCALIZER, a frontal and a
  lateral parallel projection of the phantom (what a topogram looks like), series 1.
- ``DOSE/``: a Secondary Capture "dose screen" (rendered dose table), series 501, as scanners
  that do not send an X-Ray Radiation Dose SR put it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, SecondaryCaptureImageStorage
from scipy import ndimage

from training.phantoms.dicom_common import (
    StudyIdentity,
    add_equipment,
    add_patient_and_study,
    add_series,
    add_sop_common,
    save_dataset,
)
from training.phantoms.dicom_geometry import SliceGrid
from training.phantoms.dicom_writer import CTDI_VOL_MGY, body_part_examined
from training.phantoms.types import CTPhantom

LOCALIZER_SERIES_NUMBER = 1
DOSE_SERIES_NUMBER = 501
MU_WATER_PER_MM = 0.0193  # linear attenuation of water near 70 keV effective energy
LOCALIZER_SCALE = 400.0  # stored value per unit of line integral (12-bit range)


def write_localizers(
    phantom: CTPhantom, grid: SliceGrid, identity: StudyIdentity, folder: Path
) -> list[Path]:
    """A frontal (AP) and a lateral scout, parallel projections along the grid axes."""
    paths = []
    for number, (axis, name) in enumerate(((1, "AP"), (0, "LATERAL")), start=1):
        image, spacing, iop, ipp = _projection(grid, axis)
        ds = _localizer_dataset(phantom, identity, number, name)
        ds.ImageOrientationPatient = [f"{v:.6f}".rstrip("0").rstrip(".") for v in iop]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in ipp]
        ds.PixelSpacing = [f"{v:.6f}" for v in spacing]
        ds.Rows, ds.Columns = image.shape
        ds.PixelData = image.tobytes()
        ds.WindowCenter, ds.WindowWidth = _window(image)
        paths.append(save_dataset(ds, folder / f"{number:04d}.dcm"))
    return paths


def _projection(
    grid: SliceGrid, axis: int
) -> tuple[NDArray[np.uint16], tuple[float, float], list[float], list[float]]:
    """Parallel projection of attenuation along grid axis 0 (lateral) or 1 (frontal).

    Sums HU directly (no copy of the volume); noise below -1000 HU in air averages out.
    """
    step = float(np.linalg.norm(grid.affine_lps[:3, axis]))
    hu_sum = grid.volume.sum(axis=axis, dtype=np.int64)  # (in-plane axis, k)
    count = grid.volume.shape[axis]
    line_integral = MU_WATER_PER_MM * (count + hu_sum / 1000.0) * step
    across = 1 - axis  # the remaining in-plane axis: columns of the scout
    across_spacing = float(np.linalg.norm(grid.affine_lps[:3, across]))
    n_k = grid.volume.shape[2]
    k_spacing = float(np.linalg.norm(grid.affine_lps[:3, 2]))
    n_rows = max(2, round((n_k - 1) * k_spacing / across_spacing) + 1)
    image = line_integral[:, ::-1].T  # rows: head (last slice) to feet
    image = ndimage.zoom(np.clip(image, 0.0, None), (n_rows / n_k, 1.0), order=1)
    stored = np.clip(np.rint(image * LOCALIZER_SCALE), 0, 4095).astype(np.uint16)
    row_spacing = (n_k - 1) * k_spacing / (n_rows - 1)
    along = grid.affine_lps[:3, across] / across_spacing
    down = -grid.affine_lps[:3, 2] / k_spacing
    middle = (grid.volume.shape[axis] - 1) / 2.0
    first = np.zeros(4)
    first[axis], first[2], first[3] = middle, n_k - 1, 1.0
    position = (grid.affine_lps @ first)[:3]
    return stored, (row_spacing, across_spacing), [*along, *down], [*position]


def _localizer_dataset(
    phantom: CTPhantom, identity: StudyIdentity, number: int, name: str
) -> Dataset:
    ds = Dataset()
    add_patient_and_study(ds, identity, "CT SPINE PHANTOM")
    add_series(ds, identity, "CT", LOCALIZER_SERIES_NUMBER, "TOPOGRAM")
    ds.BodyPartExamined = body_part_examined(phantom)
    ds.PatientPosition = str(phantom.acquisition.get("patient_position", "HFS"))
    ds.FrameOfReferenceUID = identity.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    add_equipment(ds)
    add_sop_common(ds, identity, CTImageStorage, "LOCALIZER", number)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.InstanceNumber = number
    ds.AcquisitionNumber = number
    ds.AcquisitionDate = identity.date
    ds.AcquisitionTime = identity.time
    ds.ImageComments = f"{name} SCOUT - SYNTHETIC PHANTOM - NOT A PATIENT"
    ds.SliceThickness = "0.6"
    ds.KVP = 120
    ds.XRayTubeCurrent = 35
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    return ds


def _window(image: NDArray[np.uint16]) -> tuple[int, int]:
    low, high = np.percentile(image, [1.0, 99.5])
    return int((low + high) / 2), max(1, int(high - low))


def write_dose_screen(phantom: CTPhantom, identity: StudyIdentity, folder: Path) -> list[Path]:
    """A secondary-capture image of the dose table, the way older scanners report dose."""
    ds = Dataset()
    add_patient_and_study(ds, identity, "CT SPINE PHANTOM")
    add_series(ds, identity, "CT", DOSE_SERIES_NUMBER, "PATIENT PROTOCOL")
    ds.BodyPartExamined = body_part_examined(phantom)
    add_equipment(ds)
    ds.ConversionType = "WSD"
    add_sop_common(ds, identity, SecondaryCaptureImageStorage, "DOSE", 1)
    ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.DateOfSecondaryCapture = identity.date
    ds.TimeOfSecondaryCapture = identity.time
    image = _dose_table_image(_dose_lines(phantom))
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = image.tobytes()
    return [save_dataset(ds, folder / "0001.dcm")]


def _dose_lines(phantom: CTPhantom) -> list[str]:
    length_cm = phantom.image_hu.shape[2] * phantom.spacing_mm[2] / 10.0
    dlp = CTDI_VOL_MGY * length_cm
    kvp = float(phantom.acquisition.get("kvp", 120.0))
    return [
        "SYNTHETIC PHANTOM - NOT A PATIENT",
        f"Phantom {phantom.phantom_id}",
        "",
        f"Total mAs 3120    Total DLP {dlp:7.1f} mGy*cm",
        "",
        "            Scan   kV   mAs   CTDIvol   DLP",
        "                              mGy       mGy*cm",
        "Topogram    1      120  35    0.10      0.5",
        f"Spiral      2      {kvp:<4.0f} 200   {CTDI_VOL_MGY:<8.2f}  {dlp:.1f}",
    ]


def _dose_table_image(lines: list[str]) -> NDArray[np.uint8]:
    """Render white monospace text on black, 512 x 512, 8-bit grey (deterministic)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.12, 5.12), dpi=100, facecolor="black")
    canvas = FigureCanvasAgg(figure)
    for row, line in enumerate(lines):
        figure.text(0.03, 0.95 - row * 0.045, line, color="white", family="monospace", size=9)
    canvas.draw()  # type: ignore[no-untyped-call]
    rgba = np.asarray(canvas.buffer_rgba())  # type: ignore[no-untyped-call]
    return np.ascontiguousarray(rgba[:, :, :3].mean(axis=2).round().astype(np.uint8))
