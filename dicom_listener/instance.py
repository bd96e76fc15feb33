"""Reading the few attributes the listener needs from a received dataset, without decoding pixels.

The bytes stay as received; pydicom parses the elements (pixel data stays encoded) so that
missing UIDs, garbage and truncated transfers are refused with a reason.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

from dicom_listener.records import InstanceHeader
from spinescreen.errors import InputRejected

REQUIRED_UIDS = {
    "SOPClassUID": "SOP Class UID (0008,0016)",
    "SOPInstanceUID": "SOP Instance UID (0008,0018)",
    "StudyInstanceUID": "Study Instance UID (0020,000D)",
    "SeriesInstanceUID": "Series Instance UID (0020,000E)",
}
SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
NON_IMAGE_WORDS = ("Secondary Capture", "Presentation State", "Structured Report", "SR Storage")


def read_header(file_bytes: bytes, transfer_syntax_uid: str) -> InstanceHeader:
    """The UIDs and routing attributes of a DICOM file (preamble + meta + dataset)."""
    try:
        ds = dcmread(BytesIO(file_bytes))
        header = _header(ds, transfer_syntax_uid)
    except InputRejected:
        raise
    except Exception as exc:  # pydicom raises many types on garbage
        raise InputRejected(f"cannot decode the dataset: {type(exc).__name__}: {exc}") from exc
    _check_pixel_data(ds, file_bytes, UID(transfer_syntax_uid))
    return header


def is_image_storage(sop_class_uid: str) -> bool:
    """True for image storage SOP classes other than secondary capture."""
    name = UID(sop_class_uid).name
    return "Image Storage" in name and not any(word in name for word in NON_IMAGE_WORDS)


def _header(ds: Dataset, transfer_syntax_uid: str) -> InstanceHeader:
    missing = [label for key, label in REQUIRED_UIDS.items() if not str(ds.get(key, "")).strip()]
    if missing:
        raise InputRejected(
            "dataset lacks " + ", ".join(missing) + "; the sender must fill them in"
        )
    return InstanceHeader(
        sop_class_uid=str(ds.SOPClassUID).strip(),
        sop_instance_uid=str(ds.SOPInstanceUID).strip(),
        study_uid=str(ds.StudyInstanceUID).strip(),
        series_uid=str(ds.SeriesInstanceUID).strip(),
        transfer_syntax_uid=transfer_syntax_uid,
        modality=str(ds.get("Modality", "") or "").strip().upper(),
        image_type=_image_type(ds.get("ImageType")),
        series_number=_int_or_none(ds.get("SeriesNumber")),
    )


def _check_pixel_data(ds: Dataset, file_bytes: bytes, syntax: UID) -> None:
    if "PixelData" not in ds:
        return
    pixels = ds.PixelData
    if syntax.is_encapsulated:
        if SEQUENCE_DELIMITER not in file_bytes[-64:]:
            raise InputRejected(
                "encapsulated pixel data ends without its sequence delimiter: transfer truncated"
            )
        return
    expected = _native_length(ds)
    if expected is not None and len(pixels) < expected:
        raise InputRejected(
            f"pixel data holds {len(pixels)} bytes, expected {expected}: transfer truncated"
        )


def _native_length(ds: Dataset) -> int | None:
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    return (rows * cols * samples * frames * bits + 7) // 8


def _image_type(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value.strip().upper(),)
    return tuple(str(v).strip().upper() for v in value)


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None
