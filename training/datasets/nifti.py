"""NIfTI datasets: VerSe (its real layout), CTSpine1K and a generic folder of pairs.

Every image is brought to RAS+ canonical axis order with nibabel on load, so cases from all
datasets share the convention of :class:`~training.datasets.types.Case`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel
import numpy as np
from numpy.typing import NDArray

from spinescreen.errors import InputRejected
from training.datasets.types import Case, Point

log = logging.getLogger(__name__)
nib: Any = nibabel  # partially typed library: used through Any


def read_canonical(path: Path) -> tuple[NDArray[Any], NDArray[np.float64]]:
    """Array and affine of a NIfTI file, reoriented to RAS+."""
    try:
        image = nib.as_closest_canonical(nib.load(str(path)))
    except Exception as exc:  # nibabel raises several unrelated types
        raise InputRejected(f"cannot read NIfTI file {path}: {exc}") from exc
    return np.asanyarray(image.dataobj), np.asarray(image.affine, dtype=np.float64)


def read_verse_centroids(path: Path, mask_path: Path) -> dict[int, Point]:
    """VerSe ``*_ctd.json`` centroids as RAS mm, keyed by VerSe label.

    The first entry gives the axis codes (e.g. ``["P", "I", "R"]``) of the voxel coordinates
    X, Y, Z that follow; they are mapped through the mask file's own orientation and affine.
    """
    entries = json.loads(path.read_text(encoding="utf-8"))
    if not entries or "direction" not in entries[0]:
        raise InputRejected(f"centroid file {path} lacks its axis codes (first entry 'direction')")
    codes = tuple(str(c) for c in entries[0]["direction"])
    mask = nib.load(str(mask_path))
    to_file = _json_to_file_voxels(codes, mask.header.get_data_shape()[:3], mask.affine)
    centroids: dict[int, Point] = {}
    for entry in entries[1:]:
        voxel = np.array([entry["X"], entry["Y"], entry["Z"]], dtype=np.float64)
        x, y, z = (mask.affine @ np.append(to_file(voxel), 1.0))[:3]
        centroids[int(entry["label"])] = (float(x), float(y), float(z))
    return centroids


def _json_to_file_voxels(codes: Sequence[str], shape: Sequence[int], affine: NDArray[Any]) -> Any:
    """Function mapping voxel coordinates in ``codes`` orientation to the file's voxels."""
    file_ornt = nib.orientations.io_orientation(affine)
    json_ornt = nib.orientations.axcodes2ornt(tuple(codes))
    # transform taking file-space arrays to json-space arrays; invert it for points.
    transform = nib.orientations.ornt_transform(file_ornt, json_ornt)

    def to_file(point: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.zeros(3)
        for file_axis, (json_axis, flip) in enumerate(transform):
            value = point[int(json_axis)]
            out[file_axis] = (shape[file_axis] - 1 - value) if flip < 0 else value
        return out

    return to_file


def read_grades(path: Path) -> dict[int, int]:
    """Genant grades per VerSe label from ``grades.json`` (``genant_grade_by_label``)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    table = data.get("genant_grade_by_label", data)
    return {int(label): int(grade) for label, grade in table.items()}


class VerSeSource:
    """VerSe: ``rawdata/sub-*/**/*_ct.nii.gz`` with ``derivatives/sub-*/**`` masks."""

    name = "verse"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.images = sorted(root.glob("rawdata/sub-*/**/*_ct.nii.gz"))
        if not self.images:
            raise InputRejected(f"no VerSe images (rawdata/sub-*/*_ct.nii.gz) under {root}")

    def __len__(self) -> int:
        return len(self.images)

    def case_id(self, index: int) -> str:
        return self.images[index].name.removesuffix("_ct.nii.gz")

    def load(self, index: int) -> Case:
        image_path = self.images[index]
        case_id = self.case_id(index)
        subject = image_path.relative_to(self.root / "rawdata").parts[0]
        folder = self.root / "derivatives" / subject
        mask_path = _one(folder, f"{case_id}*_seg-vert_msk.nii.gz")
        image, affine = read_canonical(image_path)
        mask, _ = read_canonical(mask_path)
        centroid_files = list(folder.glob(f"{case_id}*_ctd.json"))
        grade_files = list(folder.glob("*grades.json"))
        return Case(
            case_id=case_id,
            image_hu=image.astype(np.float32),
            vertebrae=mask.astype(np.uint8),
            subregions=None,
            affine=affine,
            grades=read_grades(grade_files[0]) if grade_files else {},
            centroids_mm=(
                read_verse_centroids(centroid_files[0], mask_path) if centroid_files else {}
            ),
        )


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if not found:
        raise InputRejected(f"no file matching {pattern} in {folder}")
    return found[0]


class PairFolderSource:
    """Image/label pairs: ``images/<id>.nii.gz`` and ``labels/<id><label_suffix>``.

    CTSpine1K uses the same pairing (masks in VerSe numbering, ``<id>_seg.nii.gz``); its
    layout is selected with ``label_suffix="_seg.nii.gz"``.
    """

    def __init__(
        self,
        root: Path,
        name: str = "folder",
        images: str = "images",
        labels: str = "labels",
        label_suffix: str = ".nii.gz",
    ) -> None:
        self.name = name
        self.label_dir = root / labels
        self.label_suffix = label_suffix
        self.images = sorted((root / images).glob("*.nii.gz"))
        if not self.images:
            raise InputRejected(f"no images (*.nii.gz) in {root / images}")

    def __len__(self) -> int:
        return len(self.images)

    def case_id(self, index: int) -> str:
        return self.images[index].name.removesuffix(".nii.gz")

    def load(self, index: int) -> Case:
        case_id = self.case_id(index)
        label_path = self.label_dir / f"{case_id}{self.label_suffix}"
        if not label_path.is_file():
            raise InputRejected(f"image {self.images[index]} has no label file {label_path}")
        image, affine = read_canonical(self.images[index])
        mask, _ = read_canonical(label_path)
        return Case(
            case_id=case_id,
            image_hu=image.astype(np.float32),
            vertebrae=mask.astype(np.uint8),
            subregions=None,
            affine=affine,
        )
