"""``spinescreen evaluate CONFIG|WEIGHTS``: evaluation report (JSON, Markdown, PNG plots).

WEIGHTS is a folder with ``segmenter/`` (and optionally ``grader/``) model cards; it is
evaluated on held-out realistic phantoms (seeds below 1000, never used for training), by
default drawn on a 256 matrix at 1.5 mm in-plane (the segmenter works at 3 mm anyway).
CONFIG is an evaluation YAML (configs/training/evaluation.yaml) naming weights, data and output.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spinescreen.cli import Invocation
    from training.config import EvaluationConfig

NAME = "evaluate"
HELP = "evaluate models on held-out phantoms or a dataset; writes a report with plots"
ORDER = 61


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", type=Path, metavar="CONFIG|WEIGHTS")
    parser.add_argument("--phantoms", type=int, default=30, help="held-out phantoms (WEIGHTS)")
    parser.add_argument("--first-seed", type=int, default=0, help="first evaluation seed")
    parser.add_argument("--out", type=Path, help="report folder (default: WEIGHTS/report)")
    parser.add_argument("--backend", choices=["onnxruntime", "torch"], default="onnxruntime")
    parser.add_argument(
        "--mirror",
        action="store_true",
        help="name levels from the image and its left-right mirror (models.mirror; WEIGHTS)",
    )
    parser.add_argument(
        "--full-resolution",
        action="store_true",
        help="phantoms at their drawn 512 matrix (default: 256 matrix at 1.5 mm, 5x faster)",
    )


def run(invocation: Invocation) -> int:
    from rich.progress import Progress

    from models import load_grader, load_segmenter
    from models.settings import ModelSettings
    from spinescreen.errors import ModelError
    from training.evaluation import evaluate_cases
    from training.report import write_report
    from training.samplers import open_source

    invocation.settings()
    config = _config(invocation.args)
    settings = ModelSettings(
        backend=config.backend,
        weights_dir=config.weights_dir,
        threads=config.threads,
        mirror=config.mirror,
    )
    segmenter = load_segmenter(settings)
    try:
        grader = load_grader(settings)
    except ModelError as exc:
        print(f"no grader ({exc}): fracture scores from morphometry alone")
        grader = None
    sources = [open_source(s) for s in config.data]
    total = sum(len(s) for s in sources)
    with Progress() as bar:
        task = bar.add_task("evaluate", total=total)
        cases = (s.load(i) for s in sources for i in range(len(s)))
        result = evaluate_cases(segmenter, grader, cases, lambda _: bar.advance(task))
    meta = {
        "segmenter": " + ".join(f"{c.name} {c.version}" for c in segmenter.cards),
        "grader": f"{grader.card.name} {grader.card.version}" if grader else "none",
        "backend": config.backend,
        "mirror": "levels from the image and its left-right mirror"
        if config.mirror
        else "levels from the image alone",
        "data": "; ".join(
            f"{s.kind} seeds {s.first_seed}-{s.first_seed + s.count - 1} {s.params}"
            if s.kind in ("phantoms", "synthetic")
            else f"{s.kind} {s.root}"
            for s in config.data
        ),
    }
    path = write_report(result.summary(), config.output_dir, meta)
    print((path.parent / "evaluation.md").read_text(encoding="utf-8"))
    return 0


def _config(args: argparse.Namespace) -> EvaluationConfig:
    from training.config import EvaluationConfig, SourceConfig, load_evaluation_config

    if args.target.is_file():
        config = load_evaluation_config(args.target)
        return config.model_copy(update={"mirror": True}) if args.mirror else config
    phantoms = SourceConfig(
        kind="phantoms",
        first_seed=args.first_seed,
        count=args.phantoms,
        params=(
            {"mode": "realistic"}
            if args.full_resolution
            else {"mode": "realistic", "matrix": 256, "pixel_spacing_mm": 1.5}
        ),
    )
    return EvaluationConfig(
        weights_dir=args.target,
        backend=args.backend,
        mirror=args.mirror,
        data=[phantoms],
        output_dir=args.out or args.target / "report",
    )
