"""NIfTI input and output: the same ``Volume`` type as DICOM, affine converted RAS+ -> LPS."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.types import LPS_FROM_RAS, Volume
from spinescreen.errors import InputRejected

log = logging.getLogger(__name__)


def is_nifti(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith((".nii", ".nii.gz"))


def read_nifti(path: Path, modality: str = "CT", dtype: type[Any] | None = np.float32) -> Volume:
    """Read a NIfTI image as a Volume (array in the file's axis order, affine in LPS).

    ``dtype`` None keeps the stored type (scaling ignored: for label maps)."""
    import nibabel as nib

    try:
        image: Any = nib.load(str(path))
        array = np.asarray(image.dataobj) if dtype is not None else image.dataobj.get_unscaled()
    except (OSError, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise InputRejected(f"cannot read NIfTI file {path}: {exc}; is it a .nii(.gz)?") from exc
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise InputRejected(f"NIfTI file {path} holds a {array.ndim}-D image; need 3-D")
    affine_ras = np.asarray(image.affine, dtype=np.float64)
    if abs(np.linalg.det(affine_ras[:3, :3])) < 1e-9:
        raise InputRejected(f"NIfTI file {path} has a singular affine: no usable geometry")
    return Volume(
        array=array if dtype is None else np.asarray(array, dtype=dtype),
        affine=LPS_FROM_RAS @ affine_ras,
        modality=modality,
        series_description=path.name,
        source=str(path),
    )


def read_label_map(path: Path) -> Volume:
    """A VerSe label map (integer labels 0-255) as a Volume of uint8."""
    volume = read_nifti(path, modality="SEG", dtype=None)
    values = volume.array
    if values.dtype == np.uint8:
        return volume
    if not np.issubdtype(values.dtype, np.integer) and (
        not np.all(np.isfinite(values)) or np.any(values != np.round(values))
    ):
        raise InputRejected(f"label map {path} holds non-integer values; need VerSe labels")
    low, high = values.min(), values.max()
    if low < 0 or high > 255:
        raise InputRejected(f"label map {path} values span {low:g}..{high:g}; need 0-255")
    return volume.with_array(values.astype(np.uint8), modality="SEG")


def write_nifti(array: NDArray[Any], affine_lps: NDArray[np.float64], path: Path) -> None:
    """Write ``array`` on the grid ``affine_lps`` as NIfTI (RAS+ affine, sform and qform)."""
    import nibabel as nib

    image: Any = nib.Nifti1Image(array, LPS_FROM_RAS @ affine_lps)  # type: ignore[no-untyped-call]
    image.set_sform(image.affine, code=1)
    image.set_qform(image.affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    log.info("wrote %s", path)
