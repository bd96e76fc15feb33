"""Dataset loaders: a tiny VerSe-layout tree, the real VerSe centroid JSON, folder pairs."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from spinescreen.errors import InputRejected
from tests.conftest import require_shared
from training.datasets import (
    PairFolderSource,
    VerSeSource,
    read_grades,
    read_verse_centroids,
)
from training.datasets.synthetic import SyntheticSource
from training.datasets.types import Case

RAS_TO_PIR = nib.orientations.ornt_transform(
    nib.orientations.axcodes2ornt(("R", "A", "S")), nib.orientations.axcodes2ornt(("P", "I", "R"))
)


def _save_pir(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Store a RAS array as VerSe does: PIR voxel order, affine adjusted to match."""
    pir = nib.orientations.apply_orientation(array, RAS_TO_PIR)
    pir_affine = affine @ nib.orientations.inv_ornt_aff(RAS_TO_PIR, array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(pir, pir_affine), str(path))


def _write_verse_tree(root: Path, case: Case, subject: str = "sub-test01") -> None:
    _save_pir(
        case.image_hu.astype(np.int16),
        case.affine,
        root / "rawdata" / subject / f"{subject}_ct.nii.gz",
    )
    derivatives = root / "derivatives" / subject
    _save_pir(case.vertebrae, case.affine, derivatives / f"{subject}_seg-vert_msk.nii.gz")
    ny, nz = case.vertebrae.shape[1], case.vertebrae.shape[2]
    entries: list[dict[str, object]] = [{"direction": ["P", "I", "R"]}]
    for label in sorted(case.grades):
        i, j, k = np.argwhere(case.vertebrae == label).mean(axis=0)
        entries.append({"label": label, "X": ny - 1 - j, "Y": nz - 1 - k, "Z": i})
    (derivatives / f"{subject}_seg-subreg_ctd.json").write_text(json.dumps(entries))
    grades = {"genant_grade_by_label": {str(k): v for k, v in case.grades.items()}}
    (derivatives / "grades.json").write_text(json.dumps(grades))


def test_verse_loader_reads_a_generated_verse_tree(tmp_path: Path) -> None:
    case = SyntheticSource(1, seed=3).load(0)
    _write_verse_tree(tmp_path, case)
    source = VerSeSource(tmp_path)
    assert len(source) == 1 and source.case_id(0) == "sub-test01"
    loaded = source.load(0)
    assert np.array_equal(loaded.vertebrae, case.vertebrae), "mask not back in RAS order"
    assert np.array_equal(loaded.image_hu, case.image_hu.astype(np.int16).astype(np.float32))
    assert np.allclose(loaded.affine, case.affine)
    assert loaded.grades == case.grades
    for label, expected in case.centroids_mm.items():
        error = float(np.linalg.norm(np.subtract(loaded.centroids_mm[label], expected)))
        assert error < 1e-3, f"centroid of {label} off by {error:.4f} mm"


def test_real_verse_centroids_fall_inside_their_vertebrae() -> None:
    folder = require_shared("verse004_mask")
    mask_path = folder / "sub-verse004_seg-vert_msk.nii.gz"
    centroids = read_verse_centroids(folder / "sub-verse004_seg-subreg_ctd.json", mask_path)
    assert sorted(centroids) == list(range(16, 25))  # T9-L5
    mask = nib.load(str(mask_path))
    data = np.asarray(mask.dataobj)
    to_voxel = np.linalg.inv(mask.affine)
    for label, point in centroids.items():
        voxel = np.round((to_voxel @ np.append(point, 1.0))[:3]).astype(int)
        assert data[tuple(voxel)] == label, f"centroid of {label} lands on {data[tuple(voxel)]}"
    gaps = [np.linalg.norm(np.subtract(centroids[a + 1], centroids[a])) for a in range(16, 24)]
    assert all(18.0 < g < 45.0 for g in gaps), f"neighbour spacing {gaps} mm is not vertebral"
    assert read_grades(folder / "grades.json") == {16: 2, 17: 2, 18: 0, 19: 0, 20: 3, 21: 0, 22: 0}


def test_folder_pairs_and_missing_labels(tmp_path: Path) -> None:
    case = SyntheticSource(1).load(0)
    for sub, array in (("images", case.image_hu), ("labels", case.vertebrae)):
        (tmp_path / sub).mkdir()
        nib.save(nib.Nifti1Image(array, case.affine), str(tmp_path / sub / "a.nii.gz"))
    nib.save(nib.Nifti1Image(case.image_hu, case.affine), str(tmp_path / "images" / "b.nii.gz"))
    source = PairFolderSource(tmp_path)
    assert len(source) == 2
    assert np.array_equal(source.load(0).vertebrae, case.vertebrae)
    with pytest.raises(InputRejected, match=r"has no label file .*b\.nii\.gz"):
        source.load(1)
    with pytest.raises(InputRejected, match="no VerSe images"):
        VerSeSource(tmp_path)


def test_phantom_cases_are_ras_like_every_case() -> None:
    """The generator lays arrays out as DICOM does (LPS); a Case is RAS+ canonical."""
    from scipy import ndimage

    from training.datasets import PhantomSource
    from training.metrics import label_centroids_mm

    case = PhantomSource(0, 1, {"matrix": 128}).load(0)
    assert nib.aff2axcodes(case.affine) == ("R", "A", "S")
    assert case.subregions is not None
    body = ndimage.center_of_mass(case.subregions == 1)
    arch = ndimage.center_of_mass(case.subregions == 2)
    assert body[1] > arch[1] + 5, "the bodies must lie anterior (higher j) of the arches"
    centres = label_centroids_mm(case.vertebrae, case.affine)
    for label, truth in case.centroids_mm.items():
        assert np.linalg.norm(np.subtract(centres[label], truth)) < 2.0, label
