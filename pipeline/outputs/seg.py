"""The vertebra label map as a DICOM Segmentation (highdicom), one labelled segment per level.

Segments carry the SNOMED CT code of their level as segmented property type (category:
anatomical structure), the algorithm identification (AI family) and a tracking UID equal to
the SR's tracking UID for the same study and level, so viewers can link report and mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from pipeline.outputs import codes as c
from pipeline.outputs.identity import DISCLAIMER_SHORT, MANUFACTURER, AlgorithmIdentity, stable_uid
from spinescreen.errors import InputRejected

SEG_SERIES_NUMBER = 9902
LEVEL_BY_LABEL: dict[int, str] = {
    **{n: f"C{n}" for n in range(1, 8)},
    **{n: f"T{n - 7}" for n in range(8, 20)},
    **{n: f"L{n - 19}" for n in range(20, 26)},
    26: "S",
    28: "T13",
}


def build_seg(
    labels: NDArray[np.integer],
    evidence: Sequence[Dataset],
    identity: AlgorithmIdentity,
    *,
    series_instance_uid: str | None = None,
) -> hd.seg.Segmentation:
    """A SEG of ``labels`` (VerSe numbers, shape (slices, rows, columns)) over ``evidence``.

    ``evidence[k]`` is the source instance of slice ``k`` (same order as ``labels``).
    """
    if labels.ndim != 3 or labels.shape[0] != len(evidence):
        raise InputRejected(
            f"label map of shape {labels.shape} does not match {len(evidence)} source slices; "
            "give one (rows, columns) plane per source instance, in the same order"
        )
    present = [int(v) for v in np.unique(labels) if v != 0]
    if not present:
        raise InputRejected("the label map holds no vertebra; there is nothing to segment")
    segment_of = {label: number for number, label in enumerate(present, start=1)}
    lookup = np.zeros(int(labels.max()) + 1, dtype=np.uint8)
    for label, number in segment_of.items():
        lookup[label] = number
    study_uid = str(evidence[0].StudyInstanceUID)
    return hd.seg.Segmentation(
        source_images=list(evidence),
        pixel_array=lookup[labels],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[
            _segment(number, label, identity, study_uid) for label, number in segment_of.items()
        ],
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=identity.name,
        software_versions=identity.version,
        device_serial_number=identity.device_uid[-16:],
        content_label="VERTEBRAE",
        content_description=f"Vertebrae (VerSe levels); {DISCLAIMER_SHORT}",
        series_description=f"SpineScreen vertebrae ({DISCLAIMER_SHORT})",
        contributing_equipment=[identity.contributing_equipment()],
    )


def _segment(
    number: int, label: int, identity: AlgorithmIdentity, study_uid: str
) -> hd.seg.SegmentDescription:
    level = LEVEL_BY_LABEL.get(label, f"label {label}")
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=level if level != "S" else "Sacrum",
        segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=c.vertebra_code(level),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=identity.name,
            family=codes.DCM.ArtificialIntelligence,
            version=identity.version,
        ),
        tracking_uid=stable_uid(study_uid, "vertebra", level),
        tracking_id=f"Vertebra {level}",
    )
