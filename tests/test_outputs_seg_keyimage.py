"""DICOM SEG of the vertebrae and the Secondary Capture key image: build, read back, validate."""

from __future__ import annotations

import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from pipeline.outputs.identity import AlgorithmIdentity, stable_uid
from pipeline.outputs.key_image import build_key_image, load_rgb
from pipeline.outputs.seg import build_seg
from pipeline.volume import build_volume
from spinescreen.errors import InputRejected
from tests.conftest import require_tool
from tests.test_phantom_dicom_toy import make_toy_phantom
from training.phantoms.dicom_writer import write_ct_study

IDENTITY = AlgorithmIdentity.from_models([])


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, list[Dataset]]:
    """Label map as (slices, rows, columns) and the source instances in slice order."""
    phantom = make_toy_phantom()
    paths = write_ct_study(phantom, tmp_path_factory.mktemp("ct"), include_extras=False)
    datasets = [pydicom.dcmread(p) for p in paths]
    volume = build_volume(datasets)
    assert np.array_equal(volume.array, phantom.image_hu), "test premise: series grid = phantom"
    by_uid = {str(ds.SOPInstanceUID): ds for ds in datasets}
    ordered = [by_uid[s.sop_instance_uid] for s in volume.slice_sources]
    return np.transpose(phantom.vertebrae, (2, 1, 0)), ordered


@pytest.fixture(scope="module")
def seg_file(
    series: tuple[np.ndarray, list[Dataset]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    labels, evidence = series
    path = tmp_path_factory.mktemp("seg") / "seg.dcm"
    build_seg(labels, evidence, IDENTITY).save_as(path, enforce_file_format=True)
    return path


def test_seg_round_trips_every_level(
    seg_file: Path, series: tuple[np.ndarray, list[Dataset]]
) -> None:
    labels, evidence = series
    seg = hd.seg.segread(seg_file)
    described = {d.segment_label: d for d in seg.SegmentSequence}
    assert sorted(described) == ["L1", "L2", "L3", "T11", "T12"]
    study_uid = str(evidence[0].StudyInstanceUID)
    l1 = described["L1"]
    assert l1.SegmentedPropertyTypeCodeSequence[0].CodeValue == "66794005"
    assert l1.TrackingUID == stable_uid(study_uid, "vertebra", "L1")
    uids = [str(ds.SOPInstanceUID) for ds in evidence]
    mask = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, segment_numbers=[int(l1.SegmentNumber)]
    )[..., 0]
    expected = labels == 20
    assert mask.shape == expected.shape
    assert np.array_equal(mask.astype(bool), expected), "L1 mask differs from the label map"


def test_seg_refuses_mismatched_or_empty_labels(series: tuple[np.ndarray, list[Dataset]]) -> None:
    labels, evidence = series
    with pytest.raises(InputRejected, match="does not match"):
        build_seg(labels[:-1], evidence, IDENTITY)
    with pytest.raises(InputRejected, match="no vertebra"):
        build_seg(np.zeros_like(labels), evidence, IDENTITY)


def test_key_image_is_marked_ai_output(
    series: tuple[np.ndarray, list[Dataset]], tmp_path: Path
) -> None:
    _, evidence = series
    picture = tmp_path / "overview.png"
    rgb = np.zeros((40, 30, 3), dtype=np.uint8)
    rgb[10:20, 5:25] = (255, 0, 0)
    Image.fromarray(rgb).save(picture)
    sc = build_key_image(load_rgb(picture), evidence[0], IDENTITY)
    assert sc.StudyInstanceUID == evidence[0].StudyInstanceUID
    assert sc.BurnedInAnnotation == "YES"
    assert "NOT FOR CLINICAL USE" in sc.SeriesDescription
    assert np.array_equal(sc.pixel_array, rgb)
    with pytest.raises(InputRejected, match="RGB uint8"):
        build_key_image(rgb[..., 0], evidence[0], IDENTITY)


@pytest.mark.integration
def test_dciodvfy_on_seg_and_key_image(
    seg_file: Path, series: tuple[np.ndarray, list[Dataset]], tmp_path: Path
) -> None:
    dciodvfy = require_tool("dciodvfy", "dicom3tools")
    key = tmp_path / "key.dcm"
    rgb = np.full((32, 32, 3), 128, dtype=np.uint8)
    build_key_image(rgb, series[1][0], IDENTITY).save_as(key, enforce_file_format=True)
    for path in (seg_file, key):
        result = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, check=False)
        errors = [ln for ln in (result.stdout + result.stderr).splitlines() if "Error" in ln]
        assert not errors, f"{path.name}:\n" + "\n".join(errors)
