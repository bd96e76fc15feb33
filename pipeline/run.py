"""One analysis from a loaded volume to its files: shared by ``spinescreen analyze`` and the
service workers, so both write exactly the same ``findings.json``, label map and overview."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.analysis import LabelMaps, Progress, analyze_volume
from pipeline.morphometry import VertebraMeasurement
from pipeline.nifti import write_nifti
from pipeline.overview import render_overview
from pipeline.types import StudyResult, Volume
from spinescreen.durable import atomic_file

if TYPE_CHECKING:
    from models import Grader

FINDINGS = "findings.json"
LABEL_MAP = "vertebrae.nii.gz"
OVERVIEW = "overview.png"


@dataclass(frozen=True)
class AnalysisOutput:
    """Everything one analysis produced; ``image`` is None for a label map analysed alone."""

    result: StudyResult
    maps: LabelMaps
    measurements: tuple[VertebraMeasurement, ...]
    image: Volume | None


def run_analysis(
    image: Volume | None,
    maps: LabelMaps,
    grader: Grader | None,
    input_name: str,
    voxel_axes: str,
    progress: Progress | None = None,
) -> AnalysisOutput:
    result, measurements = analyze_volume(image, maps, grader, input_name, voxel_axes, progress)
    return AnalysisOutput(result, maps, measurements, image)


def write_analysis(output: AnalysisOutput, out: Path, title: str) -> tuple[Path, Path, Path]:
    """Write findings.json, vertebrae.nii.gz (input grid) and overview.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    return (
        write_findings(output, out / FINDINGS),
        write_label_map(output, out / LABEL_MAP),
        write_overview(output, out / OVERVIEW, title),
    )


def write_findings(output: AnalysisOutput, path: Path) -> Path:
    """findings.json, written atomically: the service and users read it while jobs run."""
    with atomic_file(path) as writer:  # readers never see a half-written findings.json
        writer.write((json.dumps(output.result.to_json(), indent=2) + "\n").encode("utf-8"))
    return path


def write_label_map(output: AnalysisOutput, path: Path) -> Path:
    """The vertebra labels as uint8 on the input grid (no copy when they are uint8 already)."""
    labels = output.maps.vertebrae
    write_nifti(labels.array.astype(np.uint8, copy=False), labels.affine, path)
    return path


def write_overview(output: AnalysisOutput, path: Path, title: str) -> Path:
    """overview.png; separate from the other writers so the benchmark can time each file."""
    return render_overview(
        path,
        output.maps.vertebrae,
        output.result.vertebrae,
        output.measurements,
        output.image,
        title=title,
        caveat=None if output.result.numbering is None else output.result.numbering.caveat,
    )
