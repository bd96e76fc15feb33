"""``spinescreen phantom`` writes the documented files, readable by nibabel."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from spinescreen.cli import main

SMALL = ["--matrix", "96", "--pixel-spacing", "3.0", "--slice-thickness", "3.0"]


def test_cli_writes_nifti_phantoms_with_verse_centroids_and_truth(tmp_path: Path) -> None:
    code = main(
        [
            "phantom",
            "--out",
            str(tmp_path),
            "--count",
            "2",
            "--seed",
            "7",
            "--fracture",
            "L1:2:wedge",
            "--field-of-view",
            "thoracolumbar",
            *SMALL,
        ]
    )
    assert code == 0
    folders = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(folders) == 2
    for folder in folders:
        names = {p.name for p in folder.iterdir()}
        expected = {
            "ct.nii.gz",
            "vertebrae.nii.gz",
            "subregions.nii.gz",
            "centroids.json",
            "ground_truth.json",
        }
        assert expected <= names, names
        ct = nib.load(folder / "ct.nii.gz")
        labels = np.asarray(nib.load(folder / "vertebrae.nii.gz").dataobj)
        assert ct.shape == labels.shape
        assert np.allclose(ct.affine, nib.load(folder / "vertebrae.nii.gz").affine)
        centroids = json.loads((folder / "centroids.json").read_text())
        assert centroids[0] == {"direction": list(nib.aff2axcodes(ct.affine))}
        for entry in centroids[1:]:
            ijk = tuple(round(entry[a]) for a in ("X", "Y", "Z"))
            assert labels[ijk] == entry["label"], f"centroid {entry} not inside its label"
        truth = json.loads((folder / "ground_truth.json").read_text())
        assert "not for clinical use" in truth["note"]
        l1 = next(v for v in truth["vertebrae"] if v["level"] == "L1")
        assert (l1["genant_grade"], l1["morphology"]) == (2, "wedge")
        assert truth["study"]["max_grade"] >= 2 or not l1["complete"]
        assert set(l1["heights_mm"]) == {"anterior", "middle", "posterior"}
        assert len(l1["morphometry_points_mm"]) == 6


def test_cli_rejects_a_malformed_fracture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["phantom", "--out", str(tmp_path), "--fracture", "L1-2-wedge", *SMALL])
    assert code != 0
    assert "LEVEL:GRADE:TYPE" in capsys.readouterr().err


def test_cli_writes_a_dicom_study_and_a_radiograph(tmp_path: Path) -> None:
    pydicom = pytest.importorskip("pydicom")
    args = ["--count", "1", "--seed", "3", "--field-of-view", "partial", *SMALL]
    assert (
        main(
            [
                "phantom",
                "--out",
                str(tmp_path / "ct"),
                "--format",
                "dicom",
                "--transfer-syntax",
                "rle",
                *args,
            ]
        )
        == 0
    )
    (study,) = (tmp_path / "ct").iterdir()
    assert (study / "ground_truth.json").is_file()
    slices = sorted((study / "dicom").rglob("*.dcm"))
    assert slices, "no DICOM files written"
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in slices]
    axial = [ds for ds in headers if "AXIAL" in ds.get("ImageType", [])]
    assert axial, "no axial CT images in the study"
    rle = "1.2.840.10008.1.2.5"
    assert all(ds.file_meta.TransferSyntaxUID == rle for ds in axial), "not RLE encoded"

    assert (
        main(
            [
                "phantom",
                "--out",
                str(tmp_path / "dx"),
                "--kind",
                "radiograph",
                "--format",
                "nifti",
                *args,
            ]
        )
        == 0
    )
    (radiograph,) = (tmp_path / "dx").iterdir()
    names = {p.name for p in radiograph.iterdir()}
    assert {"image.nii.gz", "ground_truth_2d.json", "ground_truth.json"} <= names, names
