"""Morphometry and grading against phantom ground truth (oracle labels), and the DICOM path.

The accuracy test draws phantoms until at least 200 complete vertebrae (confounders
included) are measured; it is slow (minutes) and marked so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.analysis import LabelMaps, analyze_volume, labels_from_file
from pipeline.nifti import write_nifti
from pipeline.orientation import to_canonical
from pipeline.types import LPS_FROM_RAS, StudyResult, Volume
from pipeline.volume import load_input
from training.phantoms import CTPhantom, PhantomParams, make_ct_phantom
from training.phantoms.dicom_writer import write_ct_study

MIN_VERTEBRAE = 200
FIRST_SEED = 100


def _oracle(phantom: CTPhantom) -> tuple[StudyResult, Volume]:
    labels = Volume(phantom.vertebrae, LPS_FROM_RAS @ phantom.affine, modality="SEG")
    result, _ = analyze_volume(None, LabelMaps(labels, phantom.subregions, {}))
    return result, labels


@pytest.mark.slow
def test_heights_and_grades_match_phantom_truth() -> None:
    errors: list[float] = []
    agree = total = too_thick = 0
    disagreements, graded_incomplete = [], []
    seed = FIRST_SEED
    while total < MIN_VERTEBRAE:
        phantom = make_ct_phantom(seed, PhantomParams(matrix=256))
        result, _ = _oracle(phantom)
        truth = {t.label: t for t in phantom.vertebra_truth}
        for finding in result.vertebrae:
            t = truth.get(finding.label)
            if t is None or finding.label == 26:  # the sacrum is not measured
                continue
            if not t.complete or not finding.complete:
                if finding.genant_grade is not None and not t.complete:
                    graded_incomplete.append((seed, finding.level))
                continue
            assert finding.heights is not None, (seed, finding.level, finding.note)
            if finding.genant_grade is None:  # slices too thick to grade: measured, not graded
                too_thick += 1
                continue
            for name in ("anterior", "middle", "posterior"):
                errors.append(abs(getattr(finding.heights, name) - t.heights_mm[name]))
            total += 1
            if int(finding.genant_grade or 0) == t.genant_grade:
                agree += 1
            else:
                disagreements.append(
                    (seed, finding.level, int(finding.genant_grade or 0), t.genant_grade)
                )
        seed += 1
    mean, worst, p95 = (
        float(np.mean(errors)),
        float(np.max(errors)),
        float(np.percentile(errors, 95)),
    )
    report = (
        f"{total} graded vertebrae ({too_thick} more not graded: slices > 3 mm) from seeds "
        f"{FIRST_SEED}-{seed - 1}: height error mean {mean:.2f} mm, "
        f"95th percentile {p95:.2f} mm, max {worst:.2f} mm; Genant agreement {agree / total:.1%}; "
        f"disagreements (seed, level, measured, truth) {disagreements}"
    )
    print(report)
    assert not graded_incomplete, f"incomplete vertebrae graded: {graded_incomplete}"
    assert mean <= 1.0, report
    assert agree / total >= 0.95, report


@pytest.mark.slow
def test_dicom_study_with_extras_gives_the_nifti_result(tmp_path: Path) -> None:
    phantom = make_ct_phantom(3, PhantomParams(matrix=256, slice_count=120))
    expected, oracle = _oracle(phantom)
    write_ct_study(phantom, tmp_path / "study", "jpeg2000")
    routed = load_input(tmp_path / "study")
    assert sum(not d.accepted for d in routed.decisions) >= 1, "localizer / dose screen routed"
    grid = routed.volume
    own = to_canonical(grid)
    labels = own.back(to_canonical(oracle).array)
    write_nifti(labels, grid.affine, tmp_path / "labels.nii.gz")
    subregions = own.back(to_canonical(oracle, phantom.subregions).array)
    write_nifti(subregions, grid.affine, tmp_path / "sub.nii.gz")
    maps = labels_from_file(grid, tmp_path / "labels.nii.gz", tmp_path / "sub.nii.gz")
    result, _ = analyze_volume(grid, maps)
    got = {f.level: (f.genant_grade, f.heights) for f in result.vertebrae}
    want = {f.level: (f.genant_grade, f.heights) for f in expected.vertebrae}
    assert got.keys() == want.keys()
    for level, (grade, heights) in want.items():
        assert got[level][0] == grade, (level, got[level], grade)
        if heights is not None:
            measured = got[level][1]
            assert measured is not None
            assert abs(measured.posterior - heights.posterior) < 0.05, (level, measured, heights)
    centroid = np.array(result.vertebrae[0].centroid_mm)
    assert np.allclose(centroid, expected.vertebrae[0].centroid_mm, atol=0.05)
