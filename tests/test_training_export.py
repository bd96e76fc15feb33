"""ONNX export: torch/onnxruntime parity, size limit, card and version tied to the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.card import read_card, sha256_of
from models.networks import build_network
from training.config import parse_training_config
from training.export import PARITY_ATOL, check_parity, export_checkpoint
from training.loop import load_checkpoint, save_checkpoint, train

from .test_training_loop import tiny_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("segmenter")
    return train(parse_training_config(tiny_config("segmenter", out)))


def test_export_writes_onnx_with_parity_and_a_card(checkpoint: Path, tmp_path: Path) -> None:
    card = export_checkpoint(checkpoint, tmp_path / "segmenter", {"mean_dice": 0.5})
    onnx_path = tmp_path / "segmenter" / "model.onnx"
    assert card.sha256 == sha256_of(onnx_path)
    assert onnx_path.stat().st_size <= 25 * 2**20
    assert read_card(tmp_path / "segmenter") == card
    assert card.version.endswith(card.sha256[:8]), card.version
    assert card.metrics == {"mean_dice": 0.5}
    network = build_network(card.architecture)
    network.load_state_dict(torch.load(tmp_path / "segmenter" / "model.pt", weights_only=True))
    network.eval()
    odd_shape = torch.rand((1, 1, 24, 32, 40), generator=torch.Generator().manual_seed(1))
    parity = check_parity(network, onnx_path, [odd_shape])
    assert parity.max_abs_diff <= PARITY_ATOL, (
        f"torch vs onnxruntime max abs diff {parity.max_abs_diff:.2e} > {PARITY_ATOL}"
    )


def test_new_weights_give_a_new_version_and_device_uid(checkpoint: Path, tmp_path: Path) -> None:
    first = export_checkpoint(checkpoint, tmp_path / "a")
    state = load_checkpoint(checkpoint)
    state["model"] = {
        k: v + 0.01 if v.is_floating_point() else v for k, v in state["model"].items()
    }
    changed = tmp_path / "changed.pt"
    save_checkpoint(changed, state)
    second = export_checkpoint(changed, tmp_path / "b")
    assert second.sha256 != first.sha256
    assert second.version != first.version
    assert second.device_uid != first.device_uid


def test_grader_exports_with_a_fixed_patch(tmp_path: Path) -> None:
    checkpoint = train(parse_training_config(tiny_config("grader", tmp_path / "grader")))
    card = export_checkpoint(checkpoint, tmp_path / "export")
    assert card.kind == "grader"
    assert set(card.labels) >= {"grade_0", "grade_3", "morphology_wedge"}
    assert np.isfinite(list(card.preprocessing.spacing_mm)).all()
