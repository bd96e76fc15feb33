"""Build and save the DICOM results of one analysis: SR, SEG and key image, as configured."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from pipeline.outputs.identity import AlgorithmIdentity
from pipeline.outputs.key_image import build_key_image, load_rgb
from pipeline.outputs.seg import build_seg
from pipeline.outputs.sr import build_sr
from pipeline.run import AnalysisOutput
from spinescreen.durable import atomic_file
from spinescreen.errors import InputRejected

log = logging.getLogger(__name__)

OBJECT_KINDS = ("sr", "seg", "key_image")


def write_dicom_results(
    output: AnalysisOutput,
    evidence: Sequence[Dataset],
    identity: AlgorithmIdentity,
    folder: Path,
    overview_png: Path,
    *,
    kinds: Collection[str] = OBJECT_KINDS,
    fls_referral_grade: int = 2,
    predecessor: Dataset | None = None,
) -> list[Path]:
    """Save the requested objects as ``folder/<kind>.dcm``; returns their paths.

    ``evidence`` are the instances of the analysed series (headers suffice). A SEG needs one
    single-frame instance per slice; when the series is multi-frame it is skipped (logged).
    """
    unknown = set(kinds) - set(OBJECT_KINDS)
    if unknown:
        raise InputRejected(f"unknown result objects {sorted(unknown)}; allowed: {OBJECT_KINDS}")
    folder.mkdir(parents=True, exist_ok=True)
    findings = output.result.to_json()
    written: list[Path] = []
    if "sr" in kinds:
        sr = build_sr(
            findings, evidence, identity,
            fls_referral_grade=fls_referral_grade, predecessor=predecessor,
        )  # fmt: skip
        written.append(_save(sr, folder / "sr.dcm"))
    if "seg" in kinds:
        ordered = _slice_ordered(output, evidence)
        if ordered is not None:
            labels = np.transpose(output.maps.vertebrae.array, (2, 1, 0))
            written.append(_save(build_seg(labels, ordered, identity), folder / "seg.dcm"))
    if "key_image" in kinds:
        image = build_key_image(load_rgb(overview_png), evidence[0], identity)
        written.append(_save(image, folder / "key_image.dcm"))
    return written


def _slice_ordered(output: AnalysisOutput, evidence: Sequence[Dataset]) -> list[Dataset] | None:
    volume = output.image
    if volume is None or not volume.slice_sources:
        log.info("no SEG: the analysed volume has no DICOM slice sources")
        return None
    if any(s.frame_number is not None for s in volume.slice_sources):
        log.info("no SEG: multi-frame source series are not supported for SEG output yet")
        return None
    by_uid = {str(ds.SOPInstanceUID): ds for ds in evidence}
    try:
        return [by_uid[s.sop_instance_uid] for s in volume.slice_sources]
    except KeyError as exc:
        raise InputRejected(f"slice source {exc} is missing from the evidence instances") from exc


def _save(dataset: Dataset, path: Path) -> Path:
    with atomic_file(path) as writer:
        dataset.save_as(writer, enforce_file_format=True)
    return path
