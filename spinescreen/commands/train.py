"""``spinescreen train CONFIG``: train the segmenter or the grader from a YAML config.

On a CUDA machine with several GPUs, launch the same entry point with
``torchrun --nproc_per_node N -m spinescreen train CONFIG`` (DDP); on CPU it runs alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spinescreen.cli import Invocation

NAME = "train"
HELP = "train a model (segmenter or grader) from a training YAML (configs/training/)"
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("training_config", type=Path, metavar="CONFIG", help="training YAML")
    parser.add_argument("--resume", type=Path, metavar="CHECKPOINT", help="continue a run")
    parser.add_argument(
        "--init",
        type=Path,
        metavar="WEIGHTS",
        help="start a new run from an exported model's folder (e.g. models/weights/segmenter)",
    )
    parser.add_argument("--steps", type=int, help="override optim.steps")
    parser.add_argument("--output-dir", type=Path, help="override output_dir")


def run(invocation: Invocation) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from training.config import load_training_config
    from training.loop import train

    invocation.settings()  # logging
    args = invocation.args
    config = load_training_config(args.training_config)
    updates: dict[str, object] = {}
    if args.output_dir is not None:
        updates["output_dir"] = args.output_dir
    if args.steps is not None:
        updates["optim"] = config.optim.model_copy(update={"steps": args.steps})
    config = config.model_copy(update=updates)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[loss]}"))
    with Progress(*columns, TimeRemainingColumn()) as bar:
        task = bar.add_task(f"train {config.name}", total=config.optim.steps, loss="")

        def report(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, loss=f"loss {loss:.4f}")

        checkpoint = train(config, resume=args.resume, progress=report, init=args.init)
    print(f"checkpoint: {checkpoint}")
    print(f"curves:     {checkpoint.parent / 'training_curves.png'}")
    return 0
