"""The pipeline's side of the model interface: RAS+ canonical input, labels back on the input
grid, and the grader's probabilities fused into the findings (tiny trained weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

import models
from models import load_grader
from models.segmenter import SegmentationResult
from models.settings import ModelSettings
from pipeline.analysis import LabelMaps, analyze_volume, reject_empty, segment_with_model
from pipeline.nifti import write_nifti
from pipeline.types import Volume
from spinescreen.errors import InputRejected
from tests.pipeline_data import BodyShape, rotation, spine_label_map

STACK = (BodyShape(19, 25.0, 26.0), BodyShape(20, 15.0, 25.0), BodyShape(21, 27.0, 27.0))


def _image() -> tuple[Volume, np.ndarray, np.ndarray]:
    labels, sub, affine = spine_label_map(
        STACK, (1.0, 1.2, 1.5), rotation(yaw_deg=90), half_size_mm=(50.0, 40.0, 50.0)
    )
    hu = np.where(labels > 0, 400.0, -50.0).astype(np.float32)
    flipped = affine.copy()  # make the axes non-canonical: i runs right-to-left, j inverted
    flipped[:3, 0] *= -1
    flipped[:3, 3] -= flipped[:3, 0] * (hu.shape[0] - 1)
    return Volume(hu[::-1].copy(), flipped), labels[::-1].copy(), sub[::-1].copy()


class _RecordingSegmenter:
    """A stand-in segmenter: labels bone, and keeps what it was given."""

    card = type(
        "Card", (), {"kind": "segmenter", "name": "recorder", "version": "0", "sha256": "ab" * 32}
    )()
    cards = (card,)

    def __init__(self) -> None:
        self.seen: tuple[np.ndarray, tuple[float, float, float]] | None = None

    def segment(self, image: np.ndarray, spacing_mm: tuple[float, float, float]) -> Any:
        self.seen = (image, spacing_mm)
        labels = np.where(image > 300, 20, 0).astype(np.uint8)
        return SegmentationResult(labels, (labels > 0).astype(np.uint8), {20: 0.9})


def test_segmenter_gets_ras_canonical_input_and_labels_come_back_on_the_grid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume, _, _ = _image()
    recorder = _RecordingSegmenter()
    monkeypatch.setattr(models, "load_segmenter", lambda settings: recorder)
    maps = segment_with_model(volume, ModelSettings())
    write_nifti(volume.array, volume.affine, tmp_path / "ct.nii.gz")
    canonical = nib.as_closest_canonical(nib.load(tmp_path / "ct.nii.gz"))
    assert recorder.seen is not None
    np.testing.assert_array_equal(recorder.seen[0], np.asarray(canonical.dataobj, np.float32))
    assert recorder.seen[1] == pytest.approx(canonical.header.get_zooms()[:3], abs=1e-4)
    np.testing.assert_array_equal(maps.vertebrae.array, np.where(volume.array > 300, 20, 0))
    np.testing.assert_allclose(maps.vertebrae.affine, volume.affine)
    assert maps.confidence == {20: 0.9}
    assert maps.origin == {"segmenter": {"name": "recorder", "version": "0", "sha256": "ab" * 32}}


def test_an_empty_segmentation_is_refused_with_what_to_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    volume, _, _ = _image()
    recorder = _RecordingSegmenter()
    monkeypatch.setattr(models, "load_segmenter", lambda settings: recorder)
    air = volume.with_array(np.full(volume.shape, -1000.0, dtype=np.float32))
    maps = segment_with_model(air, ModelSettings())
    with pytest.raises(InputRejected, match=r"segmenter \(recorder\) found no vertebra .* spine"):
        reject_empty(maps)
    given = LabelMaps(maps.vertebrae, None, {}, {"segmenter": {"name": "given", "file": "x.nii"}})
    with pytest.raises(InputRejected, match=r"label map x.nii holds no vertebra"):
        reject_empty(given)


@pytest.fixture(scope="module")
def tiny_grader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.config import parse_training_config
    from training.export import export_checkpoint
    from training.loop import train

    from .test_training_loop import tiny_config

    root = tmp_path_factory.mktemp("weights")
    checkpoint = train(parse_training_config(tiny_config("grader", root / "run")))
    export_checkpoint(checkpoint, root / "grader")
    return root


@pytest.mark.slow
def test_grader_probabilities_are_reported_beside_morphometry(tiny_grader: Path) -> None:
    volume, labels, sub = _image()
    maps = LabelMaps(volume.with_array(labels, modality="SEG"), sub, {}, default_confidence=1.0)
    grader = load_grader(ModelSettings(weights_dir=tiny_grader, threads=1))
    result, _ = analyze_volume(volume, maps, grader)
    assert result.models["grader"]["name"] == grader.card.name
    for finding in result.graded:
        assert finding.probability_source == "morphometry+model"
        assert finding.model_grade_probabilities is not None
        assert sum(finding.model_grade_probabilities) == pytest.approx(1.0, abs=1e-3)
        assert finding.morphometric_grade is not None
    l1 = next(f for f in result.vertebrae if f.level == "L1")
    assert l1.morphometric_grade == 2 and l1.genant_grade == 2  # grade 2 is never lowered
