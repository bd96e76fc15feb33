"""The shipped weights (models/weights/): cards, checksums, and `spinescreen analyze` end to end
on held-out phantom DICOM studies. Skipped when no weights are installed."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from models import load_grader, load_segmenter
from models.loading import SHIPPED_WEIGHTS
from models.settings import ModelSettings
from spinescreen.cli import main
from tests.conftest import require_shared
from training.phantoms import PhantomParams, make_ct_phantom, parse_fracture
from training.phantoms.dicom_writer import write_ct_study

MAX_ONNX_BYTES = 25 * 1024 * 1024
shipped = pytest.mark.skipif(
    not (SHIPPED_WEIGHTS / "segmenter" / "card.json").is_file(), reason="no shipped weights"
)


@shipped
def test_shipped_models_load_with_checked_hashes_and_stay_small() -> None:
    settings = ModelSettings()
    for card in (load_segmenter(settings).card, load_grader(settings).card):
        assert "not validated" in card.validation.lower(), card.validation
    for onnx in SHIPPED_WEIGHTS.rglob("*.onnx"):
        assert onnx.stat().st_size <= MAX_ONNX_BYTES, onnx
    assert (SHIPPED_WEIGHTS / "report" / "evaluation.json").is_file(), "report beside weights"


# Held-out seeds: evaluation uses 0-29, validation 900-904, training >= 1,000,000.
# A grade >= 2 fracture counts as found when the product flags it (graded >= 1: listed in
# fractured_levels, the study positive), as in the evaluation report's "flagged" figures; a
# normal vertebra must not read grade >= 2.
STUDIES = (
    pytest.param(
        950,
        "L1:3:crush T8:2:wedge",
        marks=pytest.mark.xfail(
            reason="known miss of the shipped weights (README, Training status): the outline "
            "draws T8's borderline grade 2 wedge (true Ha/Hp 15.7/22.1 mm) towards the normal "
            "shape and it reads grade 0",
            strict=False,
        ),
    ),
    (951, "T12:2:biconcave"),
    (952, ""),
)


@shipped
@pytest.mark.slow
@pytest.mark.parametrize(("seed", "fractures"), STUDIES)
def test_analyze_names_levels_and_finds_fractures_on_dicom_phantoms(
    tmp_path: Path, seed: int, fractures: str
) -> None:
    phantom = make_ct_phantom(
        seed,
        PhantomParams(
            field_of_view="thoracolumbar",
            fractures=[parse_fracture(f) for f in fractures.split()],
            matrix=256,
            pixel_spacing_mm=1.5,
            slice_thickness_mm=2.0,
        ),
    )
    write_ct_study(phantom, tmp_path / "dicom", include_extras=False)
    assert main(["analyze", str(tmp_path / "dicom"), "--out", str(tmp_path / "out")]) == 0
    findings = json.loads((tmp_path / "out" / "findings.json").read_text())
    found = findings["vertebrae"]
    truth = {t.label: t for t in phantom.vertebra_truth if t.complete and t.label != 26}
    identified = 0
    for label, t in truth.items():
        centre = np.asarray(t.body_centroid_mm) * (-1, -1, 1)  # RAS -> LPS
        distance = {
            f["label"]: float(np.linalg.norm(np.asarray(f["centroid_mm"]) - centre)) for f in found
        }
        closest = min(distance, key=lambda k: distance[k], default=None)
        identified += closest == label and distance[label] <= 20.0
    assert identified >= 0.9 * len(truth), f"{identified} of {len(truth)} levels named right"
    study = findings["study"]
    assert findings["models"]["grader"]["name"] == "spinescreen-fracture-grader", findings["models"]
    by_label = {f["label"]: f for f in found}
    for label, t in truth.items():
        grade = (by_label.get(label) or {}).get("genant_grade")
        if t.genant_grade >= 2:
            assert grade is not None and grade >= 1, (t.level, grade)
            assert t.level in study["fractured_levels"], (t.level, study)
        elif t.genant_grade == 0:
            assert grade is None or grade < 2, (t.level, grade)
    if any(t.genant_grade >= 2 for t in truth.values()):
        assert study["fracture"], study
    # 12 rib pairs, the junction in view: the ribs end at T12 and nothing needs a caveat
    numbering = study["numbering"]
    assert phantom.params["drawn"]["rib_pairs"] == 12 and {19, 20} <= set(truth), phantom.params
    assert numbering["last_rib_bearing"] == "T12" and numbering["caveat"] is None, numbering


@shipped
@pytest.mark.slow
def test_analyze_names_the_real_lumbar_crop_without_a_level_beyond_it(tmp_path: Path) -> None:
    """The TPTBox crop (../shared: L3 whole, L2 and L4 cut by the crop) comes out as its
    published L3 with L4 below, nothing graded, L3's arch named L3 and no ribs; a piece of
    the cut L4's arch at the crop's end once came out as an L5 of its own."""
    folder = require_shared("tptbox_l3")
    image = folder / "sub-ct_label-22_ct.nii.gz"
    assert main(["analyze", str(image), "--out", str(tmp_path / "out")]) == 0
    findings = json.loads((tmp_path / "out" / "findings.json").read_text())
    levels = {f["level"] for f in findings["vertebrae"]}
    assert "L3" in levels and levels <= {"L2", "L3", "L4"}, levels
    assert not findings["study"]["fracture"], findings["study"]
    labels = np.asarray(nib.load(tmp_path / "out" / "vertebrae.nii.gz").dataobj)
    truth = np.asarray(nib.load(folder / "sub-ct_seg-vert_label-22_msk.nii.gz").dataobj)
    named = labels[(truth == 22) & (labels > 0)]  # of L3's voxels the outline holds
    assert (named == 22).mean() > 0.8, np.unique(named, return_counts=True)
    # L3's arch (sub-regions 41-48) is L3's: the outline trained on thickly drawn arches left
    # most of it out and gave its lamina and spinous process to L4 (3 % named L3; now 26 %)
    subregions = np.asarray(nib.load(folder / "sub-ct_seg-subreg_label-22_msk.nii.gz").dataobj)
    arch = (truth == 22) & (subregions >= 41) & (subregions <= 48)
    assert (labels[arch] == 22).mean() > 0.2, np.unique(labels[arch], return_counts=True)
    # an arch the outline leaves out, transverse processes and all, is no rib pair
    assert findings["study"]["numbering"]["rib_bearing"] == [], findings["study"]["numbering"]
