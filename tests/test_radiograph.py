"""Digitally reconstructed radiographs: geometry, 2D truth, image content, determinism, files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from matplotlib.path import Path as Polygon

from spinescreen.errors import ConfigError
from tests.test_phantom_dicom_toy import make_toy_phantom
from training.phantoms.dicom_common import study_identity
from training.phantoms.radiograph import Radiograph, make_radiograph, write_radiograph
from training.phantoms.types import CTPhantom

UPPER_THORACIC = (("T5", 12), ("T4", 11), ("T3", 10), ("T2", 9), ("T1", 8))


@pytest.fixture(scope="module")
def phantom() -> CTPhantom:
    return make_toy_phantom(shape=(100, 80, 64), spacing=(3.0, 3.0, 3.0), seed=21)


@pytest.fixture(scope="module")
def lateral(phantom: CTPhantom) -> Radiograph:
    return make_radiograph(phantom, "lateral")


def test_geometry_is_that_of_a_lateral_spine_radiograph(lateral: Radiograph) -> None:
    geometry = lateral.geometry
    assert 1000.0 <= geometry.sid_mm <= 1150.0, f"SID {geometry.sid_mm} mm"
    assert 1.15 <= lateral.magnification <= 1.25, f"magnification {lateral.magnification}"
    assert 0.143 <= geometry.pixel_mm <= 0.2, f"pixel {geometry.pixel_mm} mm"
    assert geometry.view_position == "LL"
    assert lateral.image.dtype == np.uint16
    assert int(lateral.image.max()) <= 4095, "12-bit image"
    rows_mm, cols_mm = (n * geometry.pixel_mm for n in lateral.image.shape)
    assert rows_mm <= 430.0 and cols_mm <= 350.0, f"detector {rows_mm} x {cols_mm} mm"


def test_projection_magnifies_by_sid_over_depth(lateral: Radiograph) -> None:
    geometry = lateral.geometry
    iso = geometry.isocenter_mm
    pair = np.array(
        [iso, iso + np.array([0.0, 30.0, -40.0])]
    )  # 50 mm apart, perpendicular to the beam
    rows_cols = geometry.project(pair)
    measured = float(np.linalg.norm(rows_cols[1] - rows_cols[0])) * geometry.pixel_mm
    expected = 50.0 * geometry.sid_mm / geometry.sod_mm
    assert abs(measured - expected) < 1e-6, (
        f"50 mm at the isocentre -> {measured} mm, not {expected}"
    )
    anterior = geometry.project(iso[None] + [0.0, 30.0, 0.0])[0, 1]
    centre = geometry.project(iso[None])[0, 1]
    assert anterior < centre, "anterior should be on the left of a lateral view"


def voxel_px(phantom: CTPhantom, radiograph: Radiograph) -> float:
    """The largest voxel edge as projected on the detector, in pixels: the mask's resolution."""
    return max(phantom.spacing_mm) * radiograph.magnification / radiograph.geometry.pixel_mm


def test_projected_centroids_lie_inside_projected_bodies(
    phantom: CTPhantom, lateral: Radiograph
) -> None:
    assert len(lateral.vertebrae) == 5
    tolerance = voxel_px(phantom, lateral)
    for vertebra in lateral.vertebrae:
        outline = Polygon(vertebra.body_outline_px)
        assert outline.contains_point(vertebra.body_centroid_px), f"{vertebra.level} centroid"
        low = vertebra.body_outline_px.min(axis=0) - tolerance
        high = vertebra.body_outline_px.max(axis=0) + tolerance
        for name, point in vertebra.points_px.items():
            assert np.all((low <= point) & (point <= high)), f"{vertebra.level} {name} {point}"


def test_outline_size_matches_the_magnified_body(phantom: CTPhantom, lateral: Radiograph) -> None:
    for vertebra in lateral.vertebrae:
        depth_px = np.ptp(vertebra.body_outline_px[:, 1])
        expected = 32.0 * vertebra.magnification / lateral.geometry.pixel_mm
        assert abs(depth_px - expected) < voxel_px(phantom, lateral), (
            f"{vertebra.level}: projected depth {depth_px:.0f} px, expected {expected:.0f} px"
        )


def test_projected_heights_match_truth_and_show_the_fracture(
    phantom: CTPhantom, lateral: Radiograph
) -> None:
    truth = {v.level: v for v in phantom.vertebra_truth}
    for vertebra in lateral.vertebrae:
        for where, height in vertebra.projected_heights_mm.items():
            expected = truth[vertebra.level].heights_mm[where]
            assert abs(height - expected) < 0.02 * expected, (
                f"{vertebra.level} {where}: projected {height:.2f} mm, truth {expected:.2f} mm"
            )
    ratios = {
        v.level: v.projected_heights_mm["anterior"] / v.projected_heights_mm["posterior"]
        for v in lateral.vertebrae
    }
    assert ratios["L1"] < 0.75, f"fractured L1 Ha/Hp {ratios['L1']:.2f}"
    assert all(r > 0.95 for level, r in ratios.items() if level != "L1"), f"Ha/Hp {ratios}"
    l1 = next(v for v in lateral.vertebrae if v.level == "L1")
    assert (l1.genant_grade, l1.morphology) == (2, "wedge")


def test_bone_is_brighter_than_the_disc_above_it(lateral: Radiograph) -> None:
    scale = lateral.magnification / lateral.geometry.pixel_mm  # pixels per mm at the spine
    for vertebra in lateral.vertebrae[:-1]:
        row, col = (int(v) for v in vertebra.body_centroid_px)
        disc_row = row - int((25.0 / 2 + 4.0) * scale)  # toy: Hp 25 mm, disc 8 mm
        body = lateral.image[row - 20 : row + 20, col - 40 : col + 40].mean()
        disc = lateral.image[disc_row - 5 : disc_row + 5, col - 40 : col + 40].mean()
        assert body > disc + 100, f"{vertebra.level}: body {body:.0f} vs disc above {disc:.0f}"


def test_radiograph_is_deterministic(phantom: CTPhantom, lateral: Radiograph) -> None:
    again = make_radiograph(phantom, "lateral")
    assert np.array_equal(again.image, lateral.image), "same phantom and seed, other pixels"
    other = make_radiograph(phantom, "lateral", seed=99)
    assert not np.array_equal(other.image, lateral.image), "another seed should differ"


def test_ap_view_keeps_head_up_and_the_spine_centred(phantom: CTPhantom) -> None:
    ap = make_radiograph(phantom, "ap", seed=3)
    assert ap.geometry.view_position == "AP"
    rows = [v.body_centroid_px[0] for v in ap.vertebrae]  # truth order: feet -> head
    assert rows == sorted(rows, reverse=True), f"centroid rows {rows}: head should be on top"
    centre_col = ap.image.shape[1] / 2
    cols = [v.body_centroid_px[1] for v in ap.vertebrae]
    assert max(abs(c - centre_col) for c in cols) < 0.1 * ap.image.shape[1], f"columns {cols}"
    for vertebra in ap.vertebrae:
        assert Polygon(vertebra.body_outline_px).contains_point(vertebra.body_centroid_px)


def test_shoulders_hide_the_upper_thoracic_spine() -> None:
    upper = make_toy_phantom(
        shape=(90, 70, 64), spacing=(3.5, 3.5, 3.0), levels=UPPER_THORACIC, seed=4
    )
    radiograph = make_radiograph(upper, "lateral")
    hidden = {v.level: v.hidden_reason for v in radiograph.vertebrae if not v.visible}
    assert set(hidden) == {"T1", "T2", "T3"}, f"hidden levels {hidden}"
    assert hidden["T3"] == "hidden by the shoulders", f"T3: {hidden['T3']}"
    by_level = {v.level: v for v in radiograph.vertebrae}
    t2_row = int(by_level["T2"].body_centroid_px[0])
    t5_row = int(by_level["T5"].body_centroid_px[0])
    col = int(by_level["T5"].body_centroid_px[1]) - 200
    image = radiograph.image.astype(float)
    shoulder, below = image[t2_row, col - 20 : col + 20].mean(), image[t5_row, col - 20 : col + 20]
    assert shoulder > below.mean() + 100, f"shoulder {shoulder:.0f} vs below {below.mean():.0f}"


def test_dicom_file_carries_the_geometry(tmp_path: Path, lateral: Radiograph) -> None:
    paths = write_radiograph(lateral, tmp_path, "dicom")
    assert [p.name for p in paths] == ["image.dcm", "ground_truth_2d.json"]
    ds = pydicom.dcmread(tmp_path / "image.dcm")
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.1", "DX for presentation"
    assert ds.PresentationIntentType == "FOR PRESENTATION"
    assert (ds.ViewPosition, ds.BodyPartExamined, ds.Modality) == ("LL", "SPINE", "DX")
    assert [float(v) for v in ds.ImagerPixelSpacing] == pytest.approx(
        [lateral.geometry.pixel_mm] * 2
    )
    ratio = float(ds.DistanceSourceToDetector) / float(ds.DistanceSourceToPatient)
    factor = float(ds.EstimatedRadiographicMagnificationFactor)
    assert abs(ratio - factor) < 1e-3, f"SID/SOD {ratio:.4f} vs magnification {factor:.4f}"
    assert np.array_equal(ds.pixel_array, lateral.image), "pixels changed on writing"
    assert str(ds.PatientName).startswith("PHANTOM^") and "SYNTHETIC" in ds.ImageComments
    assert ds.PatientID == f"PHANTOM-{lateral.phantom_id}", "same synthetic patient as the CT"
    ct_study = study_identity(lateral.phantom_id, lateral.seed).study_uid
    assert ds.StudyInstanceUID != ct_study, "the radiograph is a study of its own"
    first = (tmp_path / "image.dcm").read_bytes()
    write_radiograph(lateral, tmp_path / "again", "dicom")
    assert (tmp_path / "again" / "image.dcm").read_bytes() == first, "bytes differ between writes"


def test_nifti_and_json_round_trip(tmp_path: Path, lateral: Radiograph) -> None:
    import SimpleITK as sitk

    write_radiograph(lateral, tmp_path, "nifti")
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "image.nii.gz")))
    assert np.array_equal(np.squeeze(image), lateral.image), "NIfTI pixels differ"
    truth = json.loads((tmp_path / "ground_truth_2d.json").read_text())
    assert (truth["rows"], truth["columns"]) == lateral.image.shape
    assert [v["level"] for v in truth["vertebrae"]] == ["L3", "L2", "L1", "T12", "T11"]
    assert all(len(v["points_px"]) == 6 for v in truth["vertebrae"])
    l1 = next(v for v in truth["vertebrae"] if v["level"] == "L1")
    assert l1["genant_grade"] == 2 and l1["visible"] is True


def test_bad_arguments_are_refused(tmp_path: Path, phantom: CTPhantom, lateral: Radiograph) -> None:
    with pytest.raises(ConfigError, match="view"):
        make_radiograph(phantom, "oblique")
    with pytest.raises(ConfigError, match="format"):
        write_radiograph(lateral, tmp_path, "png")
