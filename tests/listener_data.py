"""Small generated DICOM studies for the listener tests (pydicom only, no phantom generator)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_file_meta_info
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE
from pynetdicom import _config as pynetdicom_config
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicom_listener import Listener, open_listener
from dicom_listener.settings import ListenerSettings, StoreSettings

DATASET_OFFSET_TAG = b"DICM"
SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR


@dataclass(frozen=True)
class GeneratedStudy:
    study_uid: str
    series_uids: tuple[str, ...]
    files: tuple[Path, ...]


def ct_slice(
    study_uid: str,
    series_uid: str,
    index: int,
    size: int = 64,
    modality: str = "CT",
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    sop_class_uid: str = CTImageStorage,
) -> Dataset:
    """One uncompressed axial CT slice (int16, HU-like values) with a valid file meta."""
    ds = Dataset()
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.ImageType = list(image_type)
    ds.PatientID = "LISTENER-TEST"
    ds.PatientName = "Test^Listener"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [0.0, 0.0, float(index) * 2.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.8, 0.8]
    ds.SliceThickness = 2.0
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleIntercept = -1024.0
    ds.RescaleSlope = 1.0
    rng = np.random.default_rng(index)
    ds.PixelData = rng.integers(0, 2000, (size, size), dtype=np.int16).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def write_study(
    folder: Path, slices: int, size: int = 64, series_count: int = 1, **kwargs: object
) -> GeneratedStudy:
    """``series_count`` series of ``slices`` CT slices each, written as files under ``folder``."""
    study_uid = generate_uid()
    series_uids = tuple(generate_uid() for _ in range(series_count))
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for series_uid in series_uids:
        for index in range(slices):
            ds = ct_slice(study_uid, series_uid, index, size, **kwargs)  # type: ignore[arg-type]
            path = folder / f"{ds.SOPInstanceUID}.dcm"
            ds.save_as(path, enforce_file_format=True)
            files.append(path)
    return GeneratedStudy(study_uid, series_uids, tuple(files))


def dataset_bytes(file_bytes: bytes) -> bytes:
    """The encoded dataset after the preamble and file meta group (compared bit-exactly)."""
    if file_bytes[128:132] != DATASET_OFFSET_TAG:
        raise ValueError("not a DICOM file: no DICM prefix at offset 128")
    group_length = int.from_bytes(file_bytes[140:144], "little")
    return file_bytes[144 + group_length :]


def to_bytes(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def listener_settings(**overrides: object) -> ListenerSettings:
    """Loopback settings on a free port for in-process listeners."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "quiet_period_s": 0.5,
        "completion_check_s": 0.1,
        "min_free_disk_mb": 0,
        "acse_timeout_s": 5.0,
        "dimse_timeout_s": 10.0,
        "network_timeout_s": 10.0,
    }
    values.update(overrides)
    return ListenerSettings.model_validate(values)


@contextmanager
def running_listener(data_dir: Path, **overrides: object) -> Iterator[Listener]:
    """A started in-process :class:`Listener` with its store under ``data_dir``."""
    config = listener_settings(**overrides)
    store_config = StoreSettings(
        spool_dir=data_dir / "spool", database=data_dir / "index.db", backoff_base_s=1.0
    )
    listener = open_listener(config, store_config)
    listener.start()
    try:
        yield listener
    finally:
        listener.stop(drain_timeout_s=5)
        listener.store.close()


def send_files(
    port: int,
    files: list[Path] | tuple[Path, ...],
    calling_ae: str = "TESTSCU",
    called_ae: str = "SPINESCREEN",
    transfer_syntaxes: list[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> list[int]:
    """C-STORE ``files`` over one pynetdicom association; the status of each, -1 if none."""
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    metas = [read_file_meta_info(f) for f in files]
    syntaxes = transfer_syntaxes or sorted({str(m.TransferSyntaxUID) for m in metas})
    for sop_class in sorted({str(m.MediaStorageSOPClassUID) for m in metas}):
        ae.add_requested_context(sop_class, syntaxes)
    tls_args = (ssl_context, "localhost") if ssl_context is not None else None
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae, tls_args=tls_args)
    if not assoc.is_established:
        close_socket(assoc)
        return [-1] * len(files)
    statuses = []
    chunked = pynetdicom_config.STORE_SEND_CHUNKED_DATASET
    pynetdicom_config.STORE_SEND_CHUNKED_DATASET = True  # send file bytes as they are
    try:
        for path in files:
            status = assoc.send_c_store(path)
            statuses.append(int(status.Status) if "Status" in status else -1)
    finally:
        pynetdicom_config.STORE_SEND_CHUNKED_DATASET = chunked
        assoc.release()
    return statuses


def association_accepted(port: int, calling_ae: str, called_ae: str = "SPINESCREEN") -> bool:
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.network_timeout = 5
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    accepted = bool(assoc.is_established)
    if accepted:
        assoc.release()
    else:
        close_socket(assoc)
    return accepted


def close_socket(assoc: Any) -> None:
    """Close the socket pynetdicom's SCU leaves open after a refused association or TLS."""
    assoc.dul.join(timeout=5)
    raw = getattr(assoc.dul.socket, "socket", None)
    if raw is not None:
        raw.close()
