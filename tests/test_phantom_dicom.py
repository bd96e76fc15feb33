"""CT study writer: round trips through pydicom and SimpleITK, LPS geometry, UIDs, determinism."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray

from spinescreen.errors import ConfigError, GeometryError
from tests.test_phantom_dicom_toy import make_toy_phantom, rotation
from training.phantoms.dicom_writer import write_ct_study
from training.phantoms.types import CTPhantom

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
SYNTAXES = {
    "explicit": "1.2.840.10008.1.2.1",
    "jpeg2000": "1.2.840.10008.1.2.4.90",
    "rle": "1.2.840.10008.1.2.5",
}


@pytest.fixture(scope="module")
def phantom() -> CTPhantom:
    """Anisotropic in-plane spacing (so PixelSpacing order matters) and HU below -1024."""
    return make_toy_phantom(shape=(72, 56, 24), spacing=(4.0, 3.5, 7.0), seed=11)


@pytest.fixture(scope="module")
def oblique() -> CTPhantom:
    return make_toy_phantom(
        shape=(60, 48, 20), spacing=(4.0, 3.0, 7.5), rot=rotation(12.0, 25.0), seed=5
    )


def read_with_pydicom(folder: Path) -> tuple[NDArray[np.int32], NDArray[np.float64]]:
    """HU volume (c, r, k) and its RAS affine, slices sorted by position along the normal."""
    slices = [pydicom.dcmread(path) for path in folder.glob("*.dcm")]
    iop = np.array(slices[0].ImageOrientationPatient, dtype=float)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    slices.sort(key=lambda ds: float(np.array(ds.ImagePositionPatient, dtype=float) @ normal))
    hu = np.stack(
        [
            ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
            for ds in slices
        ],
        axis=-1,
    )
    first = np.array(slices[0].ImagePositionPatient, dtype=float)
    last = np.array(slices[-1].ImagePositionPatient, dtype=float)
    row_spacing, col_spacing = (float(v) for v in slices[0].PixelSpacing)
    affine = np.eye(4)
    affine[:3, 0] = row_dir * col_spacing
    affine[:3, 1] = col_dir * row_spacing
    affine[:3, 2] = (last - first) / (len(slices) - 1)
    affine[:3, 3] = first
    return hu.transpose(1, 0, 2), LPS @ affine


def read_with_simpleitk(folder: Path) -> tuple[NDArray[np.int32], NDArray[np.float64]]:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    direction = np.array(image.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    volume = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    return np.rint(volume).astype(np.int32), LPS @ affine


def on_phantom_grid(
    volume: NDArray[np.int32], affine: NDArray[np.float64], phantom: CTPhantom
) -> NDArray[np.int32]:
    """Put a read-back volume on the phantom's voxel order; assert its geometry matches."""
    index_map = np.linalg.inv(phantom.affine) @ affine  # read voxel -> phantom voxel
    rounded = np.rint(index_map)
    mismatch_mm = float(np.abs(phantom.affine @ rounded - affine).max())
    assert mismatch_mm < 1e-4, f"read affine differs from the phantom's by {mismatch_mm:.2e} mm"
    indices = np.indices(volume.shape).reshape(3, -1)
    target = (rounded[:3, :3] @ indices + rounded[:3, 3:4]).astype(int)
    out = np.zeros(phantom.image_hu.shape, np.int32)
    out[tuple(target)] = volume.reshape(-1)
    return out


@pytest.mark.parametrize("syntax", sorted(SYNTAXES))
def test_pydicom_round_trip_is_exact(tmp_path: Path, phantom: CTPhantom, syntax: str) -> None:
    write_ct_study(phantom, tmp_path, syntax, include_extras=False)  # type: ignore[arg-type]
    first = pydicom.dcmread(tmp_path / "CT" / "0001.dcm")
    assert first.file_meta.TransferSyntaxUID == SYNTAXES[syntax]
    volume, affine = read_with_pydicom(tmp_path / "CT")
    diff = np.abs(on_phantom_grid(volume, affine, phantom) - phantom.image_hu).max()
    assert diff == 0, f"{syntax}: max HU difference {diff} after the round trip"


def test_simpleitk_reads_the_same_volume_and_geometry(tmp_path: Path, oblique: CTPhantom) -> None:
    write_ct_study(oblique, tmp_path, "jpeg2000", include_extras=False)
    volume, affine = read_with_simpleitk(tmp_path / "CT")
    diff = np.abs(on_phantom_grid(volume, affine, oblique) - oblique.image_hu).max()
    assert diff == 0, f"SimpleITK: max HU difference {diff} on an oblique phantom"


def test_pydicom_round_trip_on_an_oblique_grid(tmp_path: Path, oblique: CTPhantom) -> None:
    write_ct_study(oblique, tmp_path, "rle", include_extras=False)
    volume, affine = read_with_pydicom(tmp_path / "CT")
    diff = np.abs(on_phantom_grid(volume, affine, oblique) - oblique.image_hu).max()
    assert diff == 0, f"max HU difference {diff} on an oblique phantom"


@pytest.mark.parametrize("rot", [None, rotation(12.0, 25.0)], ids=["axial", "oblique"])
def test_marker_voxel_lands_at_its_lps_position(
    tmp_path: Path, rot: NDArray[np.float64] | None
) -> None:
    base = make_toy_phantom(shape=(40, 36, 20), spacing=(5.0, 4.5, 9.0), rot=rot, noise_hu=0)
    image = base.image_hu.copy()
    marker = (7, 29, 4)
    image[marker] = 3000
    write_ct_study(replace(base, image_hu=image), tmp_path, include_extras=False)
    ras = (base.affine @ np.array([*marker, 1.0]))[:3]
    found = []
    for path in sorted((tmp_path / "CT").glob("*.dcm")):
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array.astype(int) + int(ds.RescaleIntercept)
        for r, c in zip(*np.nonzero(hu == 3000), strict=True):
            iop = np.array(ds.ImageOrientationPatient, dtype=float)
            dr, dc = (float(v) for v in ds.PixelSpacing)
            ipp = np.array(ds.ImagePositionPatient, dtype=float)
            found.append(ipp + c * dc * iop[:3] + r * dr * iop[3:])
    assert len(found) == 1, f"marker found {len(found)} times"
    expected_lps = np.array([-ras[0], -ras[1], ras[2]])
    error = float(np.abs(found[0] - expected_lps).max())
    assert error < 1e-4, f"marker at LPS {found[0]}, expected {expected_lps} (error {error} mm)"


def test_axial_series_is_displayed_like_a_scanner(tmp_path: Path, phantom: CTPhantom) -> None:
    write_ct_study(phantom, tmp_path, include_extras=False)
    ds = pydicom.dcmread(tmp_path / "CT" / "0001.dcm")
    iop = [float(v) for v in ds.ImageOrientationPatient]
    assert iop == [1, 0, 0, 0, 1, 0], f"ImageOrientationPatient {iop}"
    spacing = [float(v) for v in ds.PixelSpacing]
    assert spacing == [3.5, 4.0], f"PixelSpacing (row, column) {spacing}, expected [3.5, 4.0]"
    assert (ds.Rows, ds.Columns) == (56, 72), f"Rows x Columns {ds.Rows} x {ds.Columns}"
    assert float(ds.SliceThickness) == 7.0, f"SliceThickness {ds.SliceThickness}"
    assert float(ds.SpacingBetweenSlices) == 7.0, f"SpacingBetweenSlices {ds.SpacingBetweenSlices}"
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert ds.PixelRepresentation == 1, "HU below -1024 need signed storage"
    assert (ds.RescaleIntercept, ds.RescaleSlope) == (-1024, 1)
    assert ds.BodyPartExamined == "ABDOMEN", f"T11-L3 field of view gave {ds.BodyPartExamined}"
    assert str(ds.PatientName).startswith("PHANTOM^")
    assert ds.Manufacturer == "SpineScreen phantom"
    assert "SYNTHETIC" in ds.ImageComments


def test_unsigned_storage_when_nothing_is_below_minus_1024(tmp_path: Path) -> None:
    base = make_toy_phantom(shape=(30, 24, 8), spacing=(6.0, 6.0, 12.0), noise_hu=0)
    write_ct_study(base, tmp_path, "rle", include_extras=False)
    ds = pydicom.dcmread(tmp_path / "CT" / "0004.dcm")
    assert (ds.PixelRepresentation, ds.BitsStored) == (0, 12), "expected unsigned 12-bit"
    expected = int(base.image_hu[:, :, 3].min()) + 1024
    assert int(ds.pixel_array.min()) == expected, f"lowest stored value, expected {expected}"


def test_uids_are_consistent_and_deterministic(tmp_path: Path, phantom: CTPhantom) -> None:
    first = write_ct_study(phantom, tmp_path / "a", "rle")
    second = write_ct_study(phantom, tmp_path / "b", "rle")
    assert [p.relative_to(tmp_path / "a") for p in first] == [
        p.relative_to(tmp_path / "b") for p in second
    ]
    changed = [
        p.name for p, q in zip(first, second, strict=True) if p.read_bytes() != q.read_bytes()
    ]
    assert not changed, f"{len(changed)} files differ between two writes: {changed[:3]}"
    datasets = [pydicom.dcmread(p) for p in first]
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1, "one study"
    assert len({ds.PatientID for ds in datasets}) == 1, "one patient"
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets), "unique SOP UIDs"
    series = {p.parent.name: set() for p in first}  # type: dict[str, set[str]]
    for path, ds in zip(first, datasets, strict=True):
        series[path.parent.name].add(ds.SeriesInstanceUID)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    expected = {"CT": 1, "LOCALIZER": 1, "DOSE": 1, "DOSE_SR": 1}
    assert {k: len(v) for k, v in series.items()} == expected
    assert len(set.union(*series.values())) == 4, "each object kind in its own series"
    other = write_ct_study(replace(phantom, seed=12), tmp_path / "c", include_extras=False)
    assert pydicom.dcmread(other[0]).StudyInstanceUID != datasets[0].StudyInstanceUID


def test_transfer_syntaxes_decode_to_the_same_pixels(tmp_path: Path, phantom: CTPhantom) -> None:
    arrays = {}
    for syntax in SYNTAXES:
        write_ct_study(phantom, tmp_path / syntax, syntax, include_extras=False)  # type: ignore[arg-type]
        arrays[syntax] = pydicom.dcmread(tmp_path / syntax / "CT" / "0012.dcm").pixel_array
    for syntax, array in arrays.items():
        differing = int(np.count_nonzero(array != arrays["explicit"]))
        assert differing == 0, f"{syntax}: {differing} pixels differ from explicit VR"


def test_extras_are_a_localizer_and_a_dose_screen(tmp_path: Path, phantom: CTPhantom) -> None:
    write_ct_study(phantom, tmp_path)
    scouts = [pydicom.dcmread(p) for p in sorted((tmp_path / "LOCALIZER").glob("*.dcm"))]
    assert [list(ds.ImageType) for ds in scouts] == [["ORIGINAL", "PRIMARY", "LOCALIZER"]] * 2
    lateral = scouts[1].pixel_array.astype(float)
    spine_column = int(np.argmax(lateral.mean(axis=0)))
    assert spine_column > lateral.shape[1] // 2, "the spine should project posteriorly"
    dose = pydicom.dcmread(tmp_path / "DOSE" / "0001.dcm")
    assert dose.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7", f"dose SOP {dose.SOPClassUID}"
    assert int(dose.pixel_array.max()) > 128, "the dose screen should carry rendered text"


def test_bad_arguments_are_refused(tmp_path: Path, phantom: CTPhantom) -> None:
    with pytest.raises(ConfigError, match="transfer_syntax"):
        write_ct_study(phantom, tmp_path, "jpeg-ls")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="uid_root"):
        write_ct_study(phantom, tmp_path, uid_root="not.a.root")
    sheared = phantom.affine.copy()
    sheared[:3, 1] += 0.3 * sheared[:3, 0]
    with pytest.raises(GeometryError, match="orthogonal"):
        write_ct_study(replace(phantom, affine=sheared), tmp_path)


def test_dose_sr_reports_the_ct_dose_of_this_study(tmp_path: Path, phantom: CTPhantom) -> None:
    write_ct_study(phantom, tmp_path)
    sr = pydicom.dcmread(tmp_path / "DOSE_SR" / "0001.dcm")
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.67", "X-Ray Radiation Dose SR"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "10011"
    values = {}
    for item in _walk(sr.ContentSequence):
        name = item.ConceptNameCodeSequence[0].CodeMeaning
        if item.ValueType == "NUM":
            values[name] = float(item.MeasuredValueSequence[0].NumericValue)
        elif item.ValueType == "UIDREF":
            values[name] = item.UID
    ct = pydicom.dcmread(tmp_path / "CT" / "0001.dcm")
    assert values["Study Instance UID"] == ct.StudyInstanceUID
    length_cm = phantom.image_hu.shape[2] * phantom.spacing_mm[2] / 10.0
    expected_dlp = float(ct.CTDIvol) * length_cm
    assert abs(values["DLP"] - expected_dlp) < 0.01, f"DLP {values['DLP']} vs {expected_dlp}"
    assert values["Mean CTDIvol"] == float(ct.CTDIvol)


def _walk(items: pydicom.Sequence) -> list[pydicom.Dataset]:
    found = []
    for item in items:
        found.append(item)
        if "ContentSequence" in item:
            found += _walk(item.ContentSequence)
    return found


@pytest.mark.parametrize("layout", ["k_feet_first", "i_along_y", "fortran"])
def test_any_voxel_layout_round_trips(tmp_path: Path, phantom: CTPhantom, layout: str) -> None:
    """Arrays stored head-first, with i and j swapped, or in Fortran order read back exactly."""
    image, affine = phantom.image_hu, phantom.affine.copy()
    if layout == "k_feet_first":
        image = image[:, :, ::-1]
        affine[:3, 3] += (image.shape[2] - 1) * affine[:3, 2]
        affine[:3, 2] *= -1
    elif layout == "i_along_y":
        image = image.transpose(1, 0, 2)
        affine = affine[:, [1, 0, 2, 3]]
    else:
        image = np.asfortranarray(image)
    changed = replace(
        phantom,
        image_hu=np.ascontiguousarray(image) if layout != "fortran" else image,
        affine=affine,
    )
    write_ct_study(changed, tmp_path, "rle", include_extras=False)
    volume, read_affine = read_with_simpleitk(tmp_path / "CT")
    diff = np.abs(on_phantom_grid(volume, read_affine, changed) - changed.image_hu).max()
    assert diff == 0, f"{layout}: max HU difference {diff}"
    iop = [float(v) for v in pydicom.dcmread(tmp_path / "CT" / "0001.dcm").ImageOrientationPatient]
    assert iop == [1, 0, 0, 0, 1, 0], f"{layout}: ImageOrientationPatient {iop}"
