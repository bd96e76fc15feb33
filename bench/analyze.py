"""Benchmark ``spinescreen analyze`` stage by stage on a 512 x 512 x 400 CT at 0.8 mm.

Not a timed test: run it by hand on the target machine (2 CPU cores) and report the figures.

    .venv/bin/python bench/analyze.py [--dicom] [--seed 7] [--threads 2]

The CT is a phantom (``training.phantoms``; the benchmark may use it, the runtime does not).
Until trained weights are installed the segmenter stage uses the phantom's own labels (the
oracle) and says so; with weights it runs the shipped segmenter and grader. Peak memory is
the process's maximum resident set size after each stage (it never decreases).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Stopwatch:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []

    def run(self, name: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = action()
        self.rows.append((name, time.perf_counter() - started, peak_mb()))
        print(
            f"{name:<28} {self.rows[-1][1]:7.2f} s   peak RSS {self.rows[-1][2]:8.0f} MB",
            flush=True,
        )
        return value


def make_input(folder: Path, seed: int, dicom: bool) -> tuple[Path, Path, Path]:
    from pipeline.nifti import write_nifti
    from pipeline.types import LPS_FROM_RAS
    from training.phantoms import make_ct_phantom
    from training.phantoms.params import PhantomParams

    params = PhantomParams(
        matrix=512, pixel_spacing_mm=0.8, slice_thickness_mm=0.8, slice_count=400
    )
    phantom = make_ct_phantom(seed, params)
    affine_lps = LPS_FROM_RAS @ phantom.affine
    labels, sub = folder / "labels.nii.gz", folder / "subregions.nii.gz"
    if dicom:
        from pipeline.volume import load_input
        from training.phantoms.dicom_writer import write_ct_study

        write_ct_study(phantom, folder / "study", include_extras=True)
        grid = load_input(folder / "study").volume  # the series grid the labels must share
        image_path = folder / "study"
        # The writer keeps the phantom's voxels up to axis flips: reorder, no resampling.
        from pipeline.orientation import to_canonical
        from pipeline.types import Volume

        canon = to_canonical(Volume(phantom.vertebrae, affine_lps, modality="SEG"))
        own = to_canonical(grid)
        write_nifti(own.back(canon.array), grid.affine, labels)
        write_nifti(
            own.back(to_canonical(Volume(phantom.subregions, affine_lps)).array), grid.affine, sub
        )
    else:
        image_path = folder / "ct.nii.gz"
        write_nifti(phantom.image_hu, affine_lps, image_path)
        write_nifti(phantom.vertebrae, affine_lps, labels)
        write_nifti(phantom.subregions, affine_lps, sub)
    print(f"phantom {phantom.phantom_id}: {phantom.image_hu.shape} at {phantom.spacing_mm} mm")
    return image_path, labels, sub


def bench(image_path: Path, labels: Path, sub: Path, out: Path) -> Stopwatch:
    from models import load_grader, load_segmenter
    from models.settings import ModelSettings
    from pipeline.analysis import analyze_volume, labels_from_file, segment_with_model
    from pipeline.nifti import write_nifti
    from pipeline.overview import render_overview
    from pipeline.volume import load_input
    from spinescreen.errors import ModelError

    watch = Stopwatch()
    settings = ModelSettings()
    image = watch.run("load input", lambda: load_input(image_path).volume)
    try:
        load_segmenter(settings)
        maps = watch.run("segment (model)", lambda: segment_with_model(image, settings))
    except ModelError:
        maps = watch.run(
            "labels (oracle, no weights)", lambda: labels_from_file(image, labels, sub)
        )
    try:
        grader = load_grader(settings)
    except ModelError:
        grader = None
    name = "measure + grade" + (" + grader" if grader else " (morphometry)")
    result, measurements = watch.run(name, lambda: analyze_volume(image, maps, grader))
    out.mkdir(parents=True, exist_ok=True)
    watch.run(
        "findings.json", lambda: (out / "findings.json").write_text(json.dumps(result.to_json()))
    )
    watch.run(
        "vertebrae.nii.gz",
        lambda: write_nifti(maps.vertebrae.array, maps.vertebrae.affine, out / "vertebrae.nii.gz"),
    )
    watch.run(
        "overview.png",
        lambda: render_overview(
            out / "overview.png", maps.vertebrae, result.vertebrae, measurements, image
        ),
    )
    total = sum(row[1] for row in watch.rows)
    print(f"{'total':<28} {total:7.2f} s   peak RSS {peak_mb():8.0f} MB")
    print(f"fractured levels: {result.fractured_levels}; outputs in {out}")
    return watch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dicom", action="store_true", help="DICOM series input instead of NIfTI")
    parser.add_argument("--threads", type=int, default=2, help="torch / BLAS threads")
    parser.add_argument("--keep", type=Path, help="keep the inputs and outputs in this folder")
    parser.add_argument("--make-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_only:  # child process: keeps generation out of the measured peak memory
        paths = make_input(args.keep, args.seed, args.dicom)
        print(json.dumps([str(p) for p in paths]))
        return 0
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as temp:
        folder = args.keep or Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        command = [sys.executable, __file__, "--make-only", "--keep", str(folder)]
        command += ["--seed", str(args.seed)] + (["--dicom"] if args.dicom else [])
        made = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        image_path, labels, sub = (Path(p) for p in json.loads(made.strip().splitlines()[-1]))
        print(f"(phantom generation {time.perf_counter() - started:.1f} s, not counted)")
        bench(image_path, labels, sub, folder / "out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
