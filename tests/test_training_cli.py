"""`spinescreen train`, `export` and `evaluate` end to end on tiny synthetic spines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from spinescreen.cli import main

from .test_training_loop import tiny_config


@pytest.mark.slow
def test_train_export_evaluate_through_the_cli(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    for model in ("segmenter", "grader"):
        config = tmp_path / f"{model}.yaml"
        config.write_text(yaml.safe_dump(tiny_config(model, tmp_path / model)))
        assert main(["train", str(config), "--steps", "1"]) == 0
        checkpoint = tmp_path / model / "last.pt"
        assert main(["export", str(checkpoint), "--out", str(weights / model)]) == 0
    evaluation = tmp_path / "evaluation.yaml"
    evaluation.write_text(
        yaml.safe_dump(
            {
                "weights_dir": str(weights),
                "threads": 1,
                "data": [{"kind": "synthetic", "count": 2, "first_seed": 700}],
                "output_dir": str(tmp_path / "report"),
            }
        )
    )
    assert main(["evaluate", str(evaluation)]) == 0
    report = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    summary = report["summary"]
    assert report["meta"]["mirror"] == "levels from the image alone"
    assert summary["cases"] == 2 and summary["vertebrae"] == 10
    assert 0.0 <= summary["mean_dice"] <= 1.0
    assert 0.0 <= summary["identification_rate"] <= 1.0
    # Fracture statistics need vertebrae the one-step model finds; the oracle test in
    # test_training_metrics.py checks them.
    for name in ("evaluation.json", "evaluation.md", "dice_per_level.png"):
        assert (tmp_path / "report" / name).stat().st_size > 100, name


def test_evaluation_config_with_unknown_key_fails_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluation = tmp_path / "evaluation.yaml"
    evaluation.write_text(yaml.safe_dump({"data": [], "output_dir": "x", "wieghts_dir": "y"}))
    assert main(["evaluate", str(evaluation)]) == 2
    assert "unknown key 'wieghts_dir'" in capsys.readouterr().err
