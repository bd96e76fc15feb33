"""TID 1500 SR: built from findings, read back with highdicom, checked by dciodvfy and dsrdump."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import highdicom as hd
import pydicom
import pytest
from pydicom.dataset import Dataset

from pipeline.outputs import codes as c
from pipeline.outputs.identity import AlgorithmIdentity
from pipeline.outputs.sr import build_sr
from tests.conftest import require_tool
from tests.test_phantom_dicom_toy import make_toy_phantom
from training.phantoms.dicom_writer import write_ct_study

IDENTITY = AlgorithmIdentity.from_models([("vertebra-segmenter", "0.1.0", "ab" * 32)])


def vertebra(level: str, label: int, grade: int, ha: float, hp: float, **kw: Any) -> dict[str, Any]:
    entry = {
        "level": level,
        "label": label,
        "complete": True,
        "centroid_mm": [1.0, -40.0, 10.0 * label],
        "centroid_voxel": [10, 20, label],
        "heights_mm": {"anterior": ha, "middle": (ha + hp) / 2, "posterior": hp},
        "height_loss": round(1 - ha / hp, 3),
        "genant_grade": grade,
        "morphology": "wedge" if grade else "normal",
        "fracture_probability": 0.9 if grade else 0.05,
        "confidence": 0.97,
    }
    entry.update(kw)
    return entry


FINDINGS: dict[str, Any] = {
    "vertebrae": [
        vertebra("T12", 19, 0, 23.0, 24.5),
        vertebra("L1", 20, 2, 16.0, 25.0),
        vertebra("L2", 21, 0, 26.0, 26.5),
        vertebra("L3", 22, 0, 20.0, 27.0, complete=False, genant_grade=None),
    ],
    "study": {
        "fracture": True,
        "max_grade": 2,
        "fractured_levels": ["L1"],
        "numbering": {"caveat": "The last rib-bearing vertebra is named T11 (test)."},
    },
}


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> list[Dataset]:
    folder = tmp_path_factory.mktemp("ct")
    paths = write_ct_study(make_toy_phantom(), folder, include_extras=False)
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]


@pytest.fixture(scope="module")
def sr_file(evidence: list[Dataset], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sr") / "sr.dcm"
    build_sr(FINDINGS, evidence, IDENTITY).save_as(path, enforce_file_format=True)
    return path


def groups_by_level(sr: hd.sr.Comprehensive3DSR) -> dict[str, Any]:
    groups = sr.content.get_planar_roi_measurement_groups()
    return {g.tracking_identifier.removeprefix("Vertebra "): g for g in groups}


def test_every_complete_vertebra_round_trips(sr_file: Path) -> None:
    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(sr_file))
    groups = groups_by_level(sr)
    assert sorted(groups) == ["L1", "L2", "T12"], "incomplete L3 must not be reported as graded"
    for expected in FINDINGS["vertebrae"][:3]:
        group = groups[expected["level"]]
        values = {m.name.value: m.value for m in group.get_measurements()}
        heights = expected["heights_mm"]
        assert values["VBH-A"] == pytest.approx(heights["anterior"])
        assert values["VBH-M"] == pytest.approx(heights["middle"])
        assert values["VBH-P"] == pytest.approx(heights["posterior"])
        assert values["VBHL"] == pytest.approx(100 * expected["height_loss"], abs=0.05)
        evaluations = {e.name.value: e.value.value for e in group.get_qualitative_evaluations()}
        assert evaluations["GENANT"] == f"G{expected['genant_grade']}"
        assert evaluations["125605004"] == ("121053" if expected["genant_grade"] else "121054")
        site = group.finding_sites[0].value.value
        assert site == c.vertebra_code(expected["level"]).value
        point = group.roi.value
        assert list(point[0]) == pytest.approx(expected["centroid_mm"])


def test_header_identifies_algorithm_and_private_scheme(
    sr_file: Path, evidence: list[Dataset]
) -> None:
    ds = pydicom.dcmread(sr_file)
    assert ds.ContentSequence is not None
    assert ds.ConceptNameCodeSequence[0].CodeValue == "126000"
    assert ds.StudyInstanceUID == evidence[0].StudyInstanceUID
    ours = [e for e in ds.ContributingEquipmentSequence if "DeviceUID" in e]
    assert [e.DeviceUID for e in ours] == [IDENTITY.device_uid]
    assert ours[0].ManufacturerModelName == "SpineScreen VCF"
    assert "NOT FOR CLINICAL USE" in ds.SeriesDescription
    schemes = [s.CodingSchemeDesignator for s in ds.CodingSchemeIdentificationSequence]
    assert c.PRIVATE_SCHEME in schemes


def test_device_uid_changes_with_weights() -> None:
    other = AlgorithmIdentity.from_models([("vertebra-segmenter", "0.1.0", "cd" * 32)])
    assert other.device_uid != IDENTITY.device_uid
    same = AlgorithmIdentity.from_models([("vertebra-segmenter", "0.1.0", "ab" * 32)])
    assert same.device_uid == IDENTITY.device_uid


def test_reanalysis_gets_new_uid_and_references_predecessor(
    sr_file: Path, evidence: list[Dataset]
) -> None:
    first = pydicom.dcmread(sr_file)
    second = build_sr(FINDINGS, evidence, IDENTITY, predecessor=first)
    assert second.SOPInstanceUID != first.SOPInstanceUID
    referenced = second.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0]
    assert referenced.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID


def test_negative_study_recommends_no_referral(evidence: list[Dataset]) -> None:
    negative = {
        "vertebrae": [vertebra("L2", 21, 0, 26.0, 26.5)],
        "study": {"fracture": False, "max_grade": 0, "fractured_levels": []},
    }
    sr = hd.sr.Comprehensive3DSR.from_dataset(build_sr(negative, evidence, IDENTITY))
    summary = sr.content.get_image_measurement_groups()
    evaluations = {e.name.value: e.value.value for e in summary[0].get_qualitative_evaluations()}
    assert evaluations == {"VCF": "121054", "GENANT-MAX": "G0", "121075": "NOFLS"}


@pytest.mark.integration
def test_dciodvfy_reports_no_errors(sr_file: Path) -> None:
    dciodvfy = require_tool("dciodvfy", "dicom3tools")
    result = subprocess.run([dciodvfy, str(sr_file)], capture_output=True, text=True, check=False)
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "Error" in line]
    assert not errors, "\n".join(errors)


@pytest.mark.integration
def test_dsrdump_renders_the_report(sr_file: Path) -> None:
    dsrdump = require_tool("dsrdump", "dcmtk")
    result = subprocess.run([dsrdump, str(sr_file)], capture_output=True, text=True, check=True)
    assert "Imaging Measurement Report" in result.stdout
    assert "Vertebra L1" in result.stdout
    assert "Genant grade 2" in result.stdout
    assert 'TEXT:(,,"Comment")="Level numbering: The last r' in result.stdout  # (cut short)


def test_negative_study_without_numbering_caveat_has_no_comment(evidence: list[Dataset]) -> None:
    negative = {
        "vertebrae": [vertebra("L2", 21, 0, 26.0, 26.5)],
        "study": {"fracture": False, "max_grade": 0, "fractured_levels": [], "numbering": None},
    }
    sr = build_sr(negative, evidence, IDENTITY)
    summary = hd.sr.Comprehensive3DSR.from_dataset(sr).content.get_image_measurement_groups()
    names = [i.ConceptNameCodeSequence[0].CodeMeaning for i in summary[0][0].ContentSequence]
    assert "Comment" not in names
