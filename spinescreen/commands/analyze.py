"""``spinescreen analyze``: find, measure and grade the vertebrae of one CT.

INPUT is a DICOM folder (a study or a series; routed by the rules in configs/routing.yaml)
or a NIfTI image. Vertebrae come from the shipped segmenter, or from a label map given with
``--labels`` (an oracle or existing segmentation on the exact grid of INPUT). With
``--labels-only`` INPUT itself is a VerSe label map (no image). Writes into ``--out``:
``findings.json``, ``vertebrae.nii.gz`` (on the grid of INPUT) and ``overview.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.analysis import LabelMaps
    from pipeline.types import StudyResult, Volume
    from spinescreen.cli import Invocation
    from spinescreen.config import Settings

NAME = "analyze"
HELP = "analyse one CT (DICOM folder or NIfTI): vertebrae, heights, Genant grades"
ORDER = 20
CONFIG_FLAGS = {"routing_rules": "analysis.routing_rules"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="INPUT", help="DICOM folder or .nii(.gz)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--labels", type=Path, metavar="FILE", help="VerSe label map on the grid of INPUT"
    )
    parser.add_argument(
        "--subregions",
        type=Path,
        metavar="FILE",
        help="sub-region map for --labels (1 body / 2 posterior, or VerSe 41-50)",
    )
    parser.add_argument(
        "--labels-only",
        action="store_true",
        help="INPUT is itself a VerSe label map (no image): measure and grade the mask",
    )
    parser.add_argument("--routing-rules", type=Path, metavar="FILE", help="routing rules YAML")
    parser.add_argument(
        "--no-grader", action="store_true", help="morphometry only, even if a grader is installed"
    )


def run(invocation: Invocation) -> int:
    from dataclasses import replace

    from rich.console import Console

    from pipeline.run import run_analysis, write_analysis

    args = invocation.args
    settings = invocation.settings()
    console = Console(stderr=True)
    with console.status("reading input") as status:
        image, maps, voxel_axes, rejected = _load(args, settings, status.update)
        grader = None if args.no_grader or image is None else _grader(settings)
        output = run_analysis(image, maps, grader, str(args.input), voxel_axes, status.update)
        if rejected:
            output = replace(output, result=replace(output.result, rejected_series=rejected))
        status.update("writing findings.json, vertebrae.nii.gz, overview.png")
        written = write_analysis(output, args.out, title=f"SpineScreen: {args.input.name}")
    _print_table(output.result)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _load(
    args: argparse.Namespace, settings: Settings, say: Any
) -> tuple[Volume | None, LabelMaps, str, tuple[dict[str, str], ...]]:
    from pipeline.analysis import (
        VOXEL_AXES_DICOM,
        VOXEL_AXES_NIFTI,
        labels_from_file,
        reject_empty,
        segment_with_model,
    )
    from pipeline.nifti import is_nifti
    from pipeline.routing import load_rules
    from pipeline.volume import load_input
    from spinescreen.errors import ModelError

    if args.labels_only:
        return _labels_only(args.input)
    routed = load_input(args.input, load_rules(settings.analysis.routing_rules))
    image = routed.volume
    axes = VOXEL_AXES_NIFTI if is_nifti(args.input) else VOXEL_AXES_DICOM
    rejected = tuple(
        {"series_instance_uid": d.series_instance_uid, "reason": d.reason}
        for d in routed.decisions
        if not d.accepted
    )
    if args.labels is not None:
        maps = labels_from_file(image, args.labels, args.subregions)
    else:
        say("segmenting vertebrae (model)")
        try:
            maps = segment_with_model(image, settings.models)
        except ModelError as exc:
            raise ModelError(
                f"{exc}; to analyse without a segmenter, give a label map with --labels FILE"
            ) from exc
    reject_empty(maps)
    return image, maps, axes, rejected


def _labels_only(path: Path) -> tuple[None, LabelMaps, str, tuple[dict[str, str], ...]]:
    from pipeline.analysis import VOXEL_AXES_NIFTI, LabelMaps, reject_empty
    from pipeline.nifti import read_label_map

    labels = read_label_map(path)
    maps = LabelMaps(
        vertebrae=labels,
        subregions=None,
        confidence={},
        origin={"segmenter": {"name": "given label map (input)", "file": str(path)}},
        default_confidence=1.0,
    )
    reject_empty(maps)
    return None, maps, VOXEL_AXES_NIFTI, ()


def _grader(settings: Settings) -> Any:
    import logging

    from models import load_grader
    from spinescreen.errors import ModelError

    try:
        return load_grader(settings.models)
    except ModelError as exc:
        logging.getLogger(__name__).info("no grader model (%s): morphometry only", exc)
        return None


def _print_table(result: StudyResult) -> None:
    from rich.console import Console
    from rich.table import Table

    from spinescreen import CLINICAL_DISCLAIMER

    sources = {f.probability_source for f in result.vertebrae if f.probability_source}
    note = (
        "P: fracture score (morphometry blended with the grader model), not calibrated. "
        if sources - {"morphometry"}
        else "P: morphometric score, not a model output. "
    )
    table = Table(title="Vertebrae", caption=note + CLINICAL_DISCLAIMER)
    for column in ("level", "complete", "Ha mm", "Hm mm", "Hp mm", "loss", "grade", "morphology"):
        table.add_column(column, justify="right" if "mm" in column or column == "loss" else "left")
    table.add_column("P", justify="right")
    colours = {0: "green", 1: "yellow", 2: "dark_orange", 3: "red"}
    for f in result.vertebrae:
        h = f.heights
        heights = ("-", "-", "-") if h is None else (
            f"{h.anterior:.1f}", f"{h.middle:.1f}", f"{h.posterior:.1f}"
        )  # fmt: skip
        probability = "-" if f.fracture_probability is None else f"{f.fracture_probability:.2f}"
        grade = "-" if f.genant_grade is None else str(int(f.genant_grade))
        style = colours.get(int(f.genant_grade), "") if f.genant_grade is not None else "dim"
        table.add_row(
            f.level,
            "yes" if f.complete else "no (cut)",
            *heights,
            "-" if f.height_loss is None else f"{100 * f.height_loss:.0f} %",
            grade,
            "-" if f.morphology is None else str(f.morphology),
            probability,
            style=style,
        )  # fmt: skip
    console = Console()
    console.print(table)
    study = result.to_json()["study"]
    levels = ", ".join(study["fractured_levels"]) or "none"
    console.print(
        f"fracture: {study['fracture']}  max grade: {study['max_grade']}  levels: {levels}"
    )
    if result.numbering is not None:
        console.print(result.numbering.summary())
