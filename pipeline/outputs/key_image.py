"""The sagittal overview as a Secondary Capture key image for viewers without SR support.

Levels, grades and the "not for clinical use" banner are burned into the pixels (the overview
picture), so the object says Burned In Annotation = YES and names itself as AI output.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pipeline.outputs.identity import DISCLAIMER_SHORT, MANUFACTURER, AlgorithmIdentity
from spinescreen.errors import InputRejected

KEY_IMAGE_SERIES_NUMBER = 9903


def load_rgb(picture: Path) -> NDArray[np.uint8]:
    """An RGB uint8 array (rows, columns, 3) from a PNG file."""
    try:
        with Image.open(picture) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except OSError as exc:
        raise InputRejected(f"cannot read key image picture {picture}: {exc}") from exc


def build_key_image(
    rgb: NDArray[np.uint8],
    reference: Dataset,
    identity: AlgorithmIdentity,
    *,
    series_instance_uid: str | None = None,
) -> hd.sc.SCImage:
    """A Secondary Capture of ``rgb`` in the study of ``reference`` (a source instance)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputRejected(
            f"key image must be RGB uint8 (rows, columns, 3), got {rgb.dtype} {rgb.shape}"
        )
    image = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=reference,
        pixel_array=rgb,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=KEY_IMAGE_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        patient_orientation=("P", "F"),  # the overview: anterior left, head up
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        contributing_equipment=[identity.contributing_equipment()],
        series_description=f"SpineScreen key image ({DISCLAIMER_SHORT})",
    )
    image.ImageComments = DISCLAIMER_SHORT
    image.BurnedInAnnotation = "YES"
    image.Laterality = ""  # the spine is unpaired; type 2C, present and empty
    image.ImageType = ["DERIVED", "SECONDARY"]
    return image
