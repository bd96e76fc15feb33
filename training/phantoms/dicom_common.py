"""DICOM building blocks shared by the phantom writers: UIDs, patient, study, equipment, saving.

Everything here is deterministic: UIDs come from ``(phantom_id, seed, role)`` through
:func:`pydicom.uid.generate_uid` with ``entropy_srcs``, and dates and times are derived from the
seed, so writing the same phantom twice gives byte-identical files.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_ROOT_UID, UID, ExplicitVRLittleEndian, generate_uid

from spinescreen.errors import ConfigError

SYNTHETIC_NOTE = "SYNTHETIC PHANTOM - NOT A PATIENT"
MANUFACTURER = "SpineScreen phantom"
MODEL_NAME = "SpineScreen synthetic phantom generator"
SOFTWARE_VERSION = "spinescreen-phantoms 1"
_EPOCH = dt.datetime(2020, 1, 1, 8, 0, 0)


@dataclass(frozen=True)
class StudyIdentity:
    """The identity every object of one synthetic study shares (patient, study, dates)."""

    phantom_id: str
    seed: int
    uid_root: str
    study_uid: str
    frame_of_reference_uid: str
    date: str  # DA, YYYYMMDD
    time: str  # TM, HHMMSS
    kind: str = "CT"  # "CT" or "XR": the same patient's CT and radiograph are two studies

    def uid(self, *role: object) -> str:
        """A deterministic UID for one role in this study ("series", "CT", 3...)."""
        return derive_uid(self.uid_root, self.phantom_id, self.seed, *role)


def derive_uid(root: str, phantom_id: str, seed: int, *role: object) -> str:
    return str(generate_uid(prefix=root, entropy_srcs=[phantom_id, str(seed), *map(str, role)]))


def study_identity(
    phantom_id: str, seed: int, uid_root: str | None = None, kind: str = "CT"
) -> StudyIdentity:
    """UIDs, date and time of the ``kind`` study ("CT" or "XR") of ``(phantom_id, seed)``."""
    root = uid_root if uid_root is not None else PYDICOM_ROOT_UID
    if not root.endswith(".") or not UID(root.rstrip(".")).is_valid or len(root) > 32:
        raise ConfigError(
            f"uid_root {root!r} is not a valid DICOM UID prefix: use dotted digits ending "
            "with '.', at most 32 characters (e.g. '1.2.826.0.1.3680043.8.498.')"
        )
    when = _EPOCH + dt.timedelta(days=seed % 2000, minutes=(seed // 7) % 480)
    return StudyIdentity(
        phantom_id=phantom_id,
        seed=seed,
        uid_root=root,
        study_uid=derive_uid(root, phantom_id, seed, *_study_role(kind)),
        frame_of_reference_uid=derive_uid(root, phantom_id, seed, "frame-of-reference", kind),
        date=when.strftime("%Y%m%d"),
        time=when.strftime("%H%M%S"),
        kind=kind,
    )


def _study_role(kind: str) -> tuple[str, ...]:
    return ("study",) if kind == "CT" else ("study", kind)


def add_patient_and_study(ds: Dataset, identity: StudyIdentity, description: str) -> None:
    """Patient and General Study modules: a clearly fake patient and the shared study."""
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = f"PHANTOM^{identity.phantom_id}"
    ds.PatientID = f"PHANTOM-{identity.phantom_id}"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientComments = SYNTHETIC_NOTE
    ds.StudyInstanceUID = identity.study_uid
    ds.StudyDate = identity.date
    ds.StudyTime = identity.time
    ds.ReferringPhysicianName = ""
    ds.StudyID = f"{identity.kind[0]}{identity.seed % 100000:05d}"
    ds.AccessionNumber = f"{identity.kind}{identity.seed % 10**8:08d}"
    ds.StudyDescription = description


def add_series(
    ds: Dataset, identity: StudyIdentity, modality: str, number: int, description: str
) -> None:
    """General Series module (series UID derived from the series number)."""
    ds.Modality = modality
    ds.SeriesInstanceUID = identity.uid("series", number)
    ds.SeriesNumber = number
    ds.SeriesDate = identity.date
    ds.SeriesTime = identity.time
    ds.SeriesDescription = description


def add_equipment(ds: Dataset) -> None:
    """General Equipment module."""
    ds.Manufacturer = MANUFACTURER
    ds.InstitutionName = "SpineScreen synthetic data"
    ds.StationName = "PHANTOM"
    ds.ManufacturerModelName = MODEL_NAME
    ds.DeviceSerialNumber = "0"
    ds.SoftwareVersions = SOFTWARE_VERSION


def add_sop_common(ds: Dataset, identity: StudyIdentity, sop_class_uid: str, *role: object) -> None:
    """SOP Common module plus the image dates of General Image / Acquisition."""
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = identity.uid("instance", *role)
    ds.InstanceCreationDate = identity.date
    ds.InstanceCreationTime = identity.time
    ds.ContentDate = identity.date
    ds.ContentTime = identity.time
    ds.ImageComments = SYNTHETIC_NOTE
    ds.BurnedInAnnotation = "NO"


def start_file_meta(ds: Dataset) -> None:
    """Declare ``ds`` uncompressed (explicit VR little endian), as ``compress`` needs."""
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta


def save_dataset(ds: Dataset, path: Path) -> Path:
    """Write ``ds`` as a DICOM Part 10 file with a file meta header matching its SOP.

    The transfer syntax is the one ``Dataset.compress`` recorded, else explicit VR little endian.
    """
    previous = getattr(ds, "file_meta", None)
    syntax = getattr(previous, "TransferSyntaxUID", None) or ExplicitVRLittleEndian
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
