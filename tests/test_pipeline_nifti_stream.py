"""NIfTI .nii.gz images are inflated in slabs into float32: the same values as nibabel's."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import pipeline.nifti as nifti
from pipeline.nifti import read_nifti, write_nifti
from spinescreen.errors import InputRejected


def _nibabel_float32(path: Path) -> np.ndarray:
    array = np.asarray(nib.load(path).dataobj)
    return np.asarray(array[..., 0] if array.ndim == 4 else array, dtype=np.float32)


@pytest.fixture(autouse=True)
def _small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slabs and chunks much smaller than the test images, so every boundary case occurs."""
    monkeypatch.setattr(nifti, "SLAB_BYTES", 1000)
    monkeypatch.setattr(nifti, "CHUNK_BYTES", 333)


@pytest.mark.parametrize("stored", ["<i2", ">i2", "<u2", "<i4", "<f4", ">f8"])
def test_gzipped_image_reads_as_nibabel_reads_it(tmp_path: Path, stored: str) -> None:
    rng = np.random.default_rng(5)
    values = rng.integers(-1024, 3000, (13, 11, 7)).astype(stored)
    path = tmp_path / "ct.nii.gz"
    image = nib.Nifti1Image(values, np.diag([0.8, 0.8, 1.5, 1.0]))
    image.header.set_data_dtype(values.dtype)
    nib.save(image, path)
    read = read_nifti(path).array
    assert read.dtype == np.float32
    np.testing.assert_array_equal(read, _nibabel_float32(path))


def test_four_d_single_volume_and_several_gzip_members(tmp_path: Path) -> None:
    values = np.arange(9 * 8 * 5, dtype=np.int16).reshape(9, 8, 5, 1)
    plain = tmp_path / "ct.nii"
    nib.save(nib.Nifti1Image(values, np.eye(4)), plain)
    data = plain.read_bytes()
    path = tmp_path / "ct.nii.gz"
    path.write_bytes(b"".join(gzip.compress(data[i : i + 500]) for i in range(0, len(data), 500)))
    np.testing.assert_array_equal(read_nifti(path).array, _nibabel_float32(path))


def test_scaled_image_keeps_nibabel_scaling(tmp_path: Path) -> None:
    path = tmp_path / "ct.nii.gz"
    image = nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(5, 4, 3), np.eye(4))
    image.header.set_slope_inter(0.5, -1024.0)
    nib.save(image, path)
    np.testing.assert_array_equal(read_nifti(path).array, _nibabel_float32(path))
    assert read_nifti(path).array[0, 0, 1] == pytest.approx(-1023.5)


def test_truncated_gzip_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "ct.nii.gz"
    rng = np.random.default_rng(1)
    write_nifti(rng.integers(0, 1000, (20, 20, 20)).astype(np.int16), np.eye(4), path)
    path.write_bytes(path.read_bytes()[:-2000])
    with pytest.raises(InputRejected, match="cannot read NIfTI file"):
        read_nifti(path)


@pytest.mark.parametrize("stored", ["u1", "<i2", ">i2"])
def test_label_maps_keep_their_stored_values_and_type(tmp_path: Path, stored: str) -> None:
    labels = np.random.default_rng(2).integers(0, 26, (12, 9, 10)).astype(stored)
    path = tmp_path / "labels.nii.gz"
    image = nib.Nifti1Image(labels, np.eye(4))
    image.header.set_data_dtype(labels.dtype)
    image.header.set_slope_inter(2.0, 1.0)  # ignored for label maps, as before
    nib.save(image, path)
    read = read_nifti(path, modality="SEG", dtype=None).array
    expected = nib.load(path).dataobj.get_unscaled()
    assert read.dtype == expected.dtype
    np.testing.assert_array_equal(read, expected)
