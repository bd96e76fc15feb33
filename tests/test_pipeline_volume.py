"""Volume building: sorting, duplicates, gaps, tilt, rescale, multi-frame, real JPEG 2000."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom import Dataset, dcmread

from pipeline.nifti import read_nifti, write_nifti
from pipeline.routing import RoutingRules
from pipeline.volume import build_volume, load_dicom_folder, load_input
from spinescreen.errors import InputRejected
from tests.conftest import require_shared
from tests.pipeline_data import PIXEL_MM, SeriesSpec, expected_hu, write_enhanced_ct, write_series

SMALL = RoutingRules(min_slices=3, min_coverage_mm=1.0)


def _volume(paths: list[Path]) -> np.ndarray:
    return build_volume([dcmread(p) for p in paths]).array


def test_shuffled_slices_are_sorted_along_the_normal(tmp_path: Path) -> None:
    paths = write_series(tmp_path, order=[5, 2, 7, 0, 3, 1, 6, 4])
    volume = build_volume([dcmread(p) for p in paths])
    for k in range(8):
        np.testing.assert_allclose(volume.array[:, :, k], expected_hu(k), err_msg=f"slice {k}")
    assert volume.spacing_mm == pytest.approx((PIXEL_MM, PIXEL_MM, 1.5))
    assert volume.affine[:3, 3] == pytest.approx([-4.0, -4.0, 0.0])
    assert [s.sop_instance_uid.rsplit(".", 1)[1] for s in volume.slice_sources] == [
        str(k) for k in range(8)
    ]


def test_exact_duplicates_are_dropped_and_noted(tmp_path: Path) -> None:
    volume = build_volume([dcmread(p) for p in write_series(tmp_path, duplicate=[3])])
    assert volume.shape[2] == 8
    assert "dropped 1 duplicate" in volume.notes[0]


def test_missing_slice_is_rejected_with_its_position(tmp_path: Path) -> None:
    with pytest.raises(InputRejected, match=r"missing slice.*4\.50-7\.50 mm"):
        _volume(write_series(tmp_path, skip=[4]))


def test_gantry_tilt_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputRejected, match=r"gantry tilt 15\.0 deg"):
        _volume(write_series(tmp_path, SeriesSpec(tilt_deg=15.0)))


def test_per_slice_rescale_gives_the_same_hounsfield_units(tmp_path: Path) -> None:
    slopes = [1.0, 2.0, 0.5, 1.0, 2.0, 1.0, 0.5, 1.0]
    array = _volume(write_series(tmp_path, slopes=slopes))
    for k in range(8):
        np.testing.assert_allclose(array[:, :, k], expected_hu(k), atol=1.0, err_msg=f"k={k}")


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (SeriesSpec(bits=8), "8-bit images"),
        (SeriesSpec(rescale=False), "no RescaleSlope"),
        (SeriesSpec(photometric="MONOCHROME1"), "MONOCHROME1"),
        (SeriesSpec(modality="MR"), "Modality MR is not CT"),
    ],
)
def test_values_that_are_not_hu_are_rejected(tmp_path: Path, spec: SeriesSpec, reason: str) -> None:
    with pytest.raises(InputRejected, match=reason):
        _volume(write_series(tmp_path, spec))


def test_inconsistent_orientation_is_rejected(tmp_path: Path) -> None:
    paths = write_series(tmp_path)
    ds = dcmread(paths[3])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0.9, -0.43589]
    ds.save_as(paths[3])
    with pytest.raises(InputRejected, match="inconsistent orientation"):
        _volume(paths)


def test_enhanced_multiframe_ct_reads_frames_in_order(tmp_path: Path) -> None:
    path = write_enhanced_ct(tmp_path)
    volume = build_volume([dcmread(path)])
    assert volume.shape == (12, 12, 8)
    for k in range(8):
        np.testing.assert_allclose(volume.array[:, :, k], expected_hu(k), atol=1.0)
    assert [s.frame_number for s in volume.slice_sources] == list(range(8, 0, -1))


def test_study_folder_is_routed_to_the_ct_series(tmp_path: Path) -> None:
    write_series(tmp_path / "ct", SeriesSpec(series_uid="1.2.3.1"))
    write_series(
        tmp_path / "scout",
        SeriesSpec(series_uid="1.2.3.2", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")),
    )
    routed = load_dicom_folder(tmp_path, SMALL)
    assert routed.volume.series_instance_uid == "1.2.3.1"
    reasons = {d.series_instance_uid: d.reason for d in routed.decisions}
    assert "LOCALIZER" in reasons["1.2.3.2"], reasons


def test_too_few_slices_is_rejected_by_routing(tmp_path: Path) -> None:
    write_series(tmp_path, SeriesSpec(n=5))
    with pytest.raises(InputRejected, match="5 slices, fewer than 20"):
        load_input(tmp_path)


def test_real_jpeg2000_series_gives_a_sane_hu_volume() -> None:
    folder = require_shared("ts_ct_dicom_uids")
    volume = load_input(folder).volume
    assert volume.shape == (512, 512, 20)
    assert volume.spacing_mm == pytest.approx((0.9765625, 0.9765625, 2.0))
    air = float(np.percentile(volume.array, 5))
    assert -1030 <= air <= -900, f"5th percentile {air} HU is not air"
    assert 500 < float(volume.array.max()) < 4000, "no bone, or values beyond HU"
    assert volume.frame_of_reference_uid


def test_real_files_without_their_uids_are_refused_by_name() -> None:
    folder = require_shared("ts_ct_dicom")
    with pytest.raises(InputRejected) as caught:
        load_input(folder)
    message = str(caught.value)
    for uid in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        assert uid in message
    assert "CT.1.3.12.2.1107" in message  # the file


def test_nifti_round_trip_keeps_grid_and_converts_ras_to_lps(tmp_path: Path) -> None:
    affine_lps = np.array(
        [[0.0, 0.0, -2.0, 10.0], [-1.0, 0.0, 0.0, 5.0], [0.0, 1.5, 0.0, -3.0], [0, 0, 0, 1]]
    )
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    write_nifti(array, affine_lps, tmp_path / "x.nii.gz")
    # On disk the affine is RAS+ (x and y negated), whatever our own reader makes of it.
    expected_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps
    np.testing.assert_allclose(nib.load(tmp_path / "x.nii.gz").affine, expected_ras, atol=1e-5)
    volume = read_nifti(tmp_path / "x.nii.gz")
    np.testing.assert_allclose(volume.affine, affine_lps, atol=1e-5)
    np.testing.assert_array_equal(volume.array, array)


def _reference_hu(ds: Dataset) -> np.ndarray:
    """What slices were before the volume was assembled in place: [i, j] float32 HU."""
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    return (ds.pixel_array.astype(np.float32) * slope + intercept).T


def test_hounsfield_units_are_bit_identical_to_the_rescale_formula(tmp_path: Path) -> None:
    slopes = [0.37, 1.0, 2.5, 0.1, 1.7, 0.9, 3.3, 0.77]
    paths = write_series(
        tmp_path, SeriesSpec(intercept=-1024.3), slopes=slopes, order=[3, 1, 0, 2, 7, 5, 6, 4]
    )
    datasets = {str(ds.SOPInstanceUID): ds for ds in (dcmread(p) for p in paths)}
    volume = build_volume(list(datasets.values()))
    assert volume.array.dtype == np.float32
    for k, source in enumerate(volume.slice_sources):
        np.testing.assert_array_equal(
            volume.array[:, :, k], _reference_hu(datasets[source.sop_instance_uid])
        )


def test_folder_reading_gives_the_volume_of_its_datasets(tmp_path: Path) -> None:
    paths = write_series(tmp_path, order=[5, 2, 7, 0, 3, 1, 6, 4], slopes=[0.5, 2.0] * 4)
    routed = load_dicom_folder(tmp_path, SMALL).volume
    given = build_volume([dcmread(p) for p in paths], source=str(tmp_path))
    np.testing.assert_array_equal(routed.array, given.array)
    np.testing.assert_array_equal(routed.affine, given.affine)
    assert routed.slice_sources == given.slice_sources
    assert routed.series_instance_uid == given.series_instance_uid
    assert routed.notes == given.notes


def test_a_series_without_rescale_is_rejected_from_its_routing_headers(tmp_path: Path) -> None:
    write_series(tmp_path, SeriesSpec(rescale=False))
    with pytest.raises(InputRejected, match="no RescaleSlope"):
        load_dicom_folder(tmp_path, SMALL)
