"""Radiographs and DICOM studies of the anatomical phantom generator (small, coarse phantoms)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from matplotlib.path import Path as Polygon

from tests.test_phantom_dicom import on_phantom_grid, read_with_simpleitk
from training.phantoms import FractureRequest, PhantomParams, make_ct_phantom
from training.phantoms.dicom_writer import write_ct_study
from training.phantoms.radiograph import Radiograph, make_radiograph, write_radiograph
from training.phantoms.types import CTPhantom


@pytest.fixture(scope="module")
def phantom() -> CTPhantom:
    params = PhantomParams(
        field_of_view="thoracolumbar",
        matrix=128,
        pixel_spacing_mm=3.0,
        slice_thickness_mm=3.0,
        fractures=[FractureRequest("L1", 3, "wedge")],
        center_level="T12",
    )
    return make_ct_phantom(5, params)


@pytest.fixture(scope="module")
def lateral(phantom: CTPhantom) -> Radiograph:
    return make_radiograph(phantom, "lateral")


def test_screened_spine_is_visible_and_ordered(lateral: Radiograph) -> None:
    visible = [v.level for v in lateral.vertebrae if v.visible]
    for level in ("T8", "T12", "L1", "L2"):
        assert level in visible, f"{level} should be visible; visible: {visible}"
    rows = {v.level: v.body_centroid_px[0] for v in lateral.vertebrae if v.visible}
    ordered = sorted(rows, key=rows.__getitem__)
    assert ordered == visible, f"top-to-bottom order {ordered}, truth order {visible}"


def test_truth_points_sit_on_the_projected_bodies(phantom: CTPhantom, lateral: Radiograph) -> None:
    tolerance = max(phantom.spacing_mm) * lateral.magnification / lateral.geometry.pixel_mm
    for vertebra in (v for v in lateral.vertebrae if v.visible):
        outline = vertebra.body_outline_px
        assert Polygon(outline).contains_point(vertebra.body_centroid_px), vertebra.level
        low, high = outline.min(axis=0) - tolerance, outline.max(axis=0) + tolerance
        for name, point in vertebra.points_px.items():
            assert np.all((low <= point) & (point <= high)), f"{vertebra.level} {name} {point}"


def test_projected_heights_agree_with_the_ct_truth(phantom: CTPhantom, lateral: Radiograph) -> None:
    truth = {v.level: v for v in phantom.vertebra_truth}
    for vertebra in (v for v in lateral.vertebrae if v.visible):
        for where, height in vertebra.projected_heights_mm.items():
            expected = truth[vertebra.level].heights_mm[where]
            assert abs(height - expected) < 0.03 * expected, (
                f"{vertebra.level} {where}: projected {height:.2f} mm, CT truth {expected:.2f} mm"
            )
    l1 = next(v for v in lateral.vertebrae if v.level == "L1")
    ratio = l1.projected_heights_mm["anterior"] / l1.projected_heights_mm["posterior"]
    assert l1.genant_grade == 3 and ratio < 0.6, f"L1 grade {l1.genant_grade}, Ha/Hp {ratio:.2f}"


def test_radiograph_files_of_a_phantom(tmp_path: Path, lateral: Radiograph) -> None:
    write_radiograph(lateral, tmp_path, "dicom")
    ds = pydicom.dcmread(tmp_path / "image.dcm")
    assert ds.BodyPartExamined == "SPINE", f"T and L levels gave {ds.BodyPartExamined}"
    assert np.array_equal(ds.pixel_array, lateral.image)


def test_ct_study_of_a_phantom_round_trips(tmp_path: Path, phantom: CTPhantom) -> None:
    write_ct_study(phantom, tmp_path, "jpeg2000")
    volume, affine = read_with_simpleitk(tmp_path / "CT")
    diff = np.abs(on_phantom_grid(volume, affine, phantom) - phantom.image_hu).max()
    assert diff == 0, f"max HU difference {diff} after JPEG 2000 and SimpleITK"
    ds = pydicom.dcmread(tmp_path / "CT" / "0001.dcm")
    assert ds.BodyPartExamined == "SPINE", f"thoracolumbar field of view: {ds.BodyPartExamined}"
    assert ds.ConvolutionKernel == str(phantom.acquisition["kernel"]).upper()
