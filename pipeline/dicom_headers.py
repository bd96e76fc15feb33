"""Read DICOM headers (no pixels) from a folder and summarise them per series for routing."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError

from dicom_listener.instance import REQUIRED_UIDS
from pipeline.routing import SeriesSummary
from spinescreen.errors import InputRejected

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeaderFile:
    path: Path
    header: Dataset


def read_headers(folder: Path) -> list[HeaderFile]:
    """Headers of every DICOM file under ``folder``; files that are not DICOM are skipped.

    Raises InputRejected when a dataset lacks its own UIDs (SOP Class / Instance, Study,
    Series): such files cannot be grouped or referenced, so nothing is guessed.
    """
    found: list[HeaderFile] = []
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    for path in paths:
        try:
            header = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            log.debug("skipping %s: not a DICOM file", path)
            continue
        if "PixelData" not in header and "Rows" not in header:
            log.debug("skipping %s: no image", path)
            continue
        missing = [name for name in REQUIRED_UIDS if not str(header.get(name, "") or "").strip()]
        if missing:
            raise InputRejected(
                f"{path.name}: the dataset lacks {', '.join(missing)} (empty or absent; the "
                "file meta alone does not identify a dataset); fill in the UIDs at the source"
            )
        found.append(HeaderFile(path, header))
    if not found:
        raise InputRejected(f"no DICOM image files found under {folder}")
    return found


def group_by_series(files: list[HeaderFile]) -> dict[str, list[HeaderFile]]:
    groups: dict[str, list[HeaderFile]] = defaultdict(list)
    for f in files:
        groups[str(f.header.SeriesInstanceUID)].append(f)
    return dict(groups)


def summarize_series(files: list[HeaderFile]) -> SeriesSummary:
    """A routing summary of one series (single-frame instances or one multi-frame)."""
    first = files[0].header
    normal, positions = _geometry(files)
    coverage = float(np.ptp(positions)) if len(positions) > 1 else 0.0
    thickness = _thickness(first)
    return SeriesSummary(
        series_instance_uid=str(first.SeriesInstanceUID),
        study_instance_uid=str(first.StudyInstanceUID),
        modality=str(first.get("Modality", "")),
        sop_class_uid=str(first.SOPClassUID),
        image_type=tuple(str(v) for v in (first.get("ImageType") or ())),
        slice_thickness_mm=thickness,
        number_of_slices=max(len(positions), len(files)),
        slice_normal=None if normal is None else (normal[0], normal[1], normal[2]),
        coverage_mm=coverage,
        body_part=str(first.get("BodyPartExamined", "")),
        description=str(first.get("SeriesDescription", "")),
        files=tuple(f.path for f in files),
    )


def _thickness(header: Dataset) -> float | None:
    value = header.get("SliceThickness")
    if value in (None, ""):
        shared = header.get("SharedFunctionalGroupsSequence")
        try:
            value = shared[0].PixelMeasuresSequence[0].SliceThickness
        except (AttributeError, IndexError, TypeError):
            return None
    return float(value)


def _geometry(files: list[HeaderFile]) -> tuple[list[float] | None, list[float]]:
    """Slice normal (LPS) and positions along it, from single- or multi-frame headers."""
    header = files[0].header
    orientation = header.get("ImageOrientationPatient")
    if orientation is None:
        orientation = _functional(header, "PlaneOrientationSequence", "ImageOrientationPatient")
    if orientation is None or len(orientation) != 6:
        return None, []
    row, col = np.array(orientation[:3], float), np.array(orientation[3:], float)
    normal = np.cross(row, col)
    positions = []
    for f in files:
        per_frame = f.header.get("PerFrameFunctionalGroupsSequence")
        if per_frame:
            for item in per_frame:
                try:
                    pos = item.PlanePositionSequence[0].ImagePositionPatient
                except (AttributeError, IndexError):
                    continue
                positions.append(float(np.dot(normal, np.array(pos, float))))
        elif f.header.get("ImagePositionPatient") is not None:
            positions.append(float(np.dot(normal, np.array(f.header.ImagePositionPatient, float))))
    return [float(v) for v in normal], positions


def _functional(header: Dataset, sequence: str, keyword: str) -> object | None:
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        items = header.get(group)
        if items and sequence in items[0]:
            value: object | None = items[0][sequence][0].get(keyword)
            return value
    return None
