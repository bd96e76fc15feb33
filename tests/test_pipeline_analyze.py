"""``spinescreen analyze`` end to end with a given label map (NIfTI and DICOM input)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pipeline.nifti import write_nifti
from pipeline.volume import load_input
from spinescreen.cli import main
from tests.conftest import require_shared
from tests.pipeline_data import BodyShape, spine_label_map, write_volume_series

STACK = (BodyShape(19, 25.0, 26.0), BodyShape(20, 15.0, 25.0), BodyShape(21, 27.0, 27.0))
VERTEBRA_KEYS = {
    "level", "label", "complete", "centroid_mm", "centroid_voxel", "heights_mm", "height_loss",
    "genant_grade", "morphology", "fracture_probability", "confidence",
}  # fmt: skip


def _phantom(spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels, _, affine = spine_label_map(STACK, spacing, half_size_mm=(30.0, 50.0, 50.0))
    hu = np.where(labels > 0, 400.0, 0.0).astype(np.float32)
    return labels, hu, affine


def _check_outputs(out: Path, shape: tuple[int, ...], affine_ras: np.ndarray) -> dict:
    findings = json.loads((out / "findings.json").read_text())
    assert "NOT FOR CLINICAL USE" in findings["disclaimer"]
    for vertebra in findings["vertebrae"]:
        assert set(vertebra) >= VERTEBRA_KEYS, set(vertebra) ^ VERTEBRA_KEYS
    by_level = {v["level"]: v for v in findings["vertebrae"]}
    assert by_level["L1"]["genant_grade"] == 2 and by_level["L1"]["morphology"] == "wedge"
    numbering = {"rib_bearing": None, "last_rib_bearing": None, "transitional": [], "caveat": None}
    assert findings["study"] == {
        "fracture": True,
        "max_grade": 2,
        "fractured_levels": ["L1"],
        "numbering": numbering,  # a given label map: ribs not looked for
    }
    assert findings["models"]["grader"] is None  # --no-grader: morphometry alone
    image = nib.load(out / "vertebrae.nii.gz")
    assert image.shape == shape
    np.testing.assert_allclose(image.affine, affine_ras, atol=1e-4)
    labels = np.asarray(image.dataobj)
    assert set(np.unique(labels)) == {0, 19, 20, 21}
    assert (out / "overview.png").read_bytes()[:4] == b"\x89PNG"
    return findings


def test_analyze_nifti_with_given_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels, hu, affine_lps = _phantom((1.0, 1.0, 1.2))
    write_nifti(hu.astype(np.int16), affine_lps, tmp_path / "ct.nii.gz")
    write_nifti(labels, affine_lps, tmp_path / "labels.nii.gz")
    out = tmp_path / "out"
    ct, given = str(tmp_path / "ct.nii.gz"), str(tmp_path / "labels.nii.gz")
    var = str(tmp_path / "var")
    code = main(
        ["analyze", ct, "--labels", given, "--out", str(out), "--data-dir", var, "--no-grader"]
    )
    assert code == 0
    input_affine = nib.load(tmp_path / "ct.nii.gz").affine
    findings = _check_outputs(out, hu.shape, input_affine)
    l1 = next(v for v in findings["vertebrae"] if v["level"] == "L1")
    voxel = np.array(l1["centroid_voxel"])
    world = (affine_lps @ np.append(voxel, 1.0))[:3]
    assert np.allclose(world, l1["centroid_mm"], atol=0.05), "centroid_voxel and _mm disagree"
    assert "L1" in capsys.readouterr().out


def test_analyze_dicom_folder_with_given_labels(tmp_path: Path) -> None:
    labels, hu, _ = _phantom((1.0, 1.0, 1.5))
    write_volume_series(tmp_path / "dicom", hu, (1.0, 1.0, 1.5))
    volume = load_input(tmp_path / "dicom").volume
    write_nifti(labels, volume.affine, tmp_path / "labels.nii.gz")
    out = tmp_path / "out"
    code = main(["analyze", str(tmp_path / "dicom"), "--labels", str(tmp_path / "labels.nii.gz"),
                 "--out", str(out), "--data-dir", str(tmp_path / "var"),
                 "--no-grader"])  # fmt: skip
    assert code == 0
    findings = _check_outputs(out, hu.shape, volume.affine_ras)
    assert findings["series"]["series_instance_uid"] == volume.series_instance_uid


def test_analyze_without_labels_or_weights_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, hu, affine = _phantom((2.0, 2.0, 2.0))
    write_nifti(hu.astype(np.int16), affine, tmp_path / "ct.nii.gz")
    empty = tmp_path / "no-weights"
    empty.mkdir()
    config = str(_config(tmp_path, empty))
    ct, out, var = str(tmp_path / "ct.nii.gz"), str(tmp_path / "out"), str(tmp_path / "var")
    code = main(["analyze", ct, "--out", out, "--data-dir", var, "--config", config])
    assert code != 0
    assert "--labels" in capsys.readouterr().err


def test_analyze_label_map_alone(tmp_path: Path) -> None:
    mask = require_shared("verse004_mask") / "sub-verse004_seg-vert_msk.nii.gz"
    out = tmp_path / "out"
    code = main(["analyze", str(mask), "--labels-only", "--out", str(out),
                 "--data-dir", str(tmp_path / "var")])  # fmt: skip
    assert code == 0
    findings = json.loads((out / "findings.json").read_text())
    assert {"T9", "T10", "L1"} <= set(findings["study"]["fractured_levels"]), findings["study"]
    np.testing.assert_allclose(
        nib.load(out / "vertebrae.nii.gz").affine, nib.load(mask).affine, atol=1e-4
    )


def _config(tmp_path: Path, weights: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"models:\n  weights_dir: {weights}\n")
    return path
