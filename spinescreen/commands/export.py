"""``spinescreen export CHECKPOINT``: ONNX + torch weights + model card, with a parity check."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spinescreen.cli import Invocation

NAME = "export"
HELP = "export a training checkpoint to ONNX with a model card (torch/onnxruntime parity checked)"
ORDER = 62


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, metavar="WEIGHTS", help="checkpoint (last.pt)")
    parser.add_argument(
        "--out", type=Path, help="folder for the card and weights (default: next to the checkpoint)"
    )
    parser.add_argument(
        "--report", type=Path, help="evaluation.json whose summary metrics go into the card"
    )


def run(invocation: Invocation) -> int:
    from training.export import export_checkpoint
    from training.loop import config_of_checkpoint, load_checkpoint

    invocation.settings()
    args = invocation.args
    out = args.out
    if out is None:
        config = config_of_checkpoint(load_checkpoint(args.checkpoint))
        out = args.checkpoint.parent / "export" / config.model
    card = export_checkpoint(args.checkpoint, out, _metrics(args.report))
    print(f"{card.name} {card.version} -> {out}")
    print(f"sha256 {card.sha256}  device UID {card.device_uid}")
    return 0


def _metrics(report: Path | None) -> dict[str, float]:
    if report is None:
        return {}
    summary = json.loads(report.read_text(encoding="utf-8"))["summary"]
    metrics = {
        key: float(summary[key])
        for key in ("mean_dice", "identification_rate", "mean_localisation_error_mm")
        if summary.get(key) is not None
    }
    fracture = summary.get("fracture") or {}
    for target in ("grade>=1", "grade>=2"):
        for level in ("vertebra", "patient"):
            stats = fracture.get(target, {}).get(level, {})
            for name in ("sensitivity", "specificity", "auc"):
                if stats.get(name) is not None:
                    metrics[f"{target} {level} {name}"] = float(stats[name])
    return metrics
