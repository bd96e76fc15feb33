"""Model cards: checksum refusal, missing weights, device UID, JSON round trip."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from models import load_grader, load_segmenter
from models.card import ModelCard, device_uid, read_card, sha256_of, verify_file
from models.networks import segmenter_architecture
from models.preprocessing import PreprocessingSpec
from models.settings import ModelSettings
from spinescreen.errors import ModelError

SPEC = PreprocessingSpec(
    spacing_mm=(3.0, 3.0, 3.0), window_hu=(-300.0, 1200.0), patch_size=(16,) * 3
)


def _card(folder: Path, payload: bytes = b"weights") -> ModelCard:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(payload)
    card = ModelCard(
        name="test-segmenter",
        kind="segmenter",
        version="1.0.0",
        weights_file="model.onnx",
        sha256=sha256_of(folder / "model.onnx"),
        preprocessing=SPEC,
        architecture=segmenter_architecture(),
        labels={"20": "L1"},
    )
    card.save(folder)
    return card


def test_card_round_trips_through_json_and_markdown(tmp_path: Path) -> None:
    card = _card(tmp_path / "segmenter")
    again = read_card(tmp_path / "segmenter")
    assert again == card
    markdown = (tmp_path / "segmenter" / "card.md").read_text()
    assert "Not validated on patients" in markdown
    assert card.sha256 in markdown and card.device_uid in markdown


def test_device_uid_is_a_dicom_uid_that_follows_the_weights() -> None:
    uid = device_uid("seg", "1.0.0", "a" * 64)
    assert uid == device_uid("seg", "1.0.0", "a" * 64)
    assert re.fullmatch(r"2\.25\.[1-9][0-9]*", uid) and len(uid) <= 64, uid
    assert uid != device_uid("seg", "1.0.0", "b" * 64)
    assert uid != device_uid("seg", "1.0.1", "a" * 64)


def test_corrupted_weights_are_refused_naming_file_and_hashes(tmp_path: Path) -> None:
    card = _card(tmp_path / "segmenter")
    weights = tmp_path / "segmenter" / "model.onnx"
    weights.write_bytes(b"weightz")
    with pytest.raises(ModelError) as caught:
        load_segmenter(ModelSettings(weights_dir=tmp_path))
    message = str(caught.value)
    assert str(weights) in message
    assert card.sha256 in message
    assert sha256_of(weights) in message


def test_missing_weights_say_how_to_train_and_export(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"spinescreen train configs/training/grader\.yaml"):
        load_grader(ModelSettings(weights_dir=tmp_path))
    _card(tmp_path / "segmenter")
    (tmp_path / "segmenter" / "model.onnx").unlink()
    with pytest.raises(ModelError, match="is missing: train and export"):
        verify_file(tmp_path / "segmenter" / "model.onnx", "0" * 64)


def test_card_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    _card(tmp_path / "grader")
    with pytest.raises(ModelError, match="not a grader"):
        load_grader(ModelSettings(weights_dir=tmp_path, backend="onnxruntime"))


def test_preprocessing_spec_rejects_bad_values() -> None:
    with pytest.raises(ModelError, match="spacing must be positive"):
        PreprocessingSpec(spacing_mm=(0.0, 1.0, 1.0), window_hu=(0, 1), patch_size=(8, 8, 8))
    with pytest.raises(ModelError, match="window"):
        PreprocessingSpec(spacing_mm=(1.0, 1.0, 1.0), window_hu=(5, 1), patch_size=(8, 8, 8))


def test_a_card_saved_again_lists_its_labels_in_number_order(tmp_path: Path) -> None:
    card = replace(_card(tmp_path / "a"), labels={"1": "C1", "2": "C2", "10": "T3", "26": "S"})
    card.save(tmp_path / "a")
    read_card(tmp_path / "a").save(tmp_path / "a")  # JSON sorts its keys as text
    markdown = (tmp_path / "a" / "card.md").read_text()
    assert [line for line in markdown.splitlines() if line[:3] in ("- 1", "- 2")] == [
        "- 1: C1",
        "- 2: C2",
        "- 10: T3",
        "- 26: S",
    ]
