"""Benchmark ``spinescreen analyze`` stage by stage on a 512 x 512 x 400 CT at 0.8 mm.

Not a timed test: run it by hand on the target machine (2 CPU cores) and report the figures.

    nice -n 19 .venv/bin/python bench/analyze.py [--dicom] [--seed 7] [--threads 2] [--mirror]
        [--keep DIR [--reuse]]

The CT is a phantom (``training.phantoms``; the benchmark may use it, the runtime does not).
When a model card is installed in models/weights/segmenter the segmenter stage runs the
shipped segmenter; otherwise it uses the phantom's own labels (the oracle). Either way the
benchmark says which, and likewise for the grader. The stages call what ``spinescreen
analyze`` calls (``pipeline.run``), including loading the models: the command pays those
imports (torch, onnxruntime, monai) even when no weights are installed. Peak memory is the
process's maximum resident set size after each stage (it never decreases). The last line
is the total of the stages.
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
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

if TYPE_CHECKING:
    from models import Grader, Segmenter
    from models.settings import ModelSettings

INPUTS = "inputs.json"  # what --make-only wrote into the folder, for --reuse


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


def load_models(settings: ModelSettings, threads: int) -> tuple[Segmenter | None, Grader | None]:
    """The shipped segmenter and grader when a card is installed; None where none is.

    A card that is there but fails to load (checksum, backend) is an error, not a silent
    fall-back to the oracle: the figures must be for the model that ships."""
    import torch

    torch.set_num_threads(threads)
    from models import load_grader, load_segmenter, model_folder
    from models.card import CARD_JSON

    loaded: list[Any] = []
    for kind, load in (("segmenter", load_segmenter), ("grader", load_grader)):
        folder = model_folder(settings, kind)
        loaded.append(load(settings) if (folder / CARD_JSON).is_file() else None)
    return loaded[0], loaded[1]


def describe(kind: str, model: Segmenter | Grader | None, fallback: str) -> str:
    if model is None:
        return f"{kind}: no weights installed (models/weights/{kind}): {fallback}"
    return f"{kind}: shipped " + " + ".join(f"{c.name} {c.version}" for c in model.cards)


def bench(
    image_path: Path, labels: Path, sub: Path, out: Path, threads: int, mirror: bool = False
) -> Stopwatch:
    from models.settings import ModelSettings
    from pipeline.analysis import (
        VOXEL_AXES_DICOM,
        VOXEL_AXES_NIFTI,
        labels_from_file,
        segment_with_model,
    )
    from pipeline.nifti import is_nifti
    from pipeline.run import (
        FINDINGS,
        LABEL_MAP,
        OVERVIEW,
        run_analysis,
        write_findings,
        write_label_map,
        write_overview,
    )
    from pipeline.volume import load_input

    watch = Stopwatch()
    settings = ModelSettings(mirror=mirror)
    segmenter, grader = watch.run("load models", lambda: load_models(settings, threads))
    print("  " + describe("segmenter", segmenter, "the phantom's own labels (oracle)"))
    print("  " + describe("grader", grader, "morphometry only"))
    image = watch.run("load input", lambda: load_input(image_path).volume)
    if segmenter is not None:
        maps = watch.run("segment (model)", lambda: segment_with_model(image, settings, segmenter))
    else:
        maps = watch.run(
            "labels (oracle, no weights)", lambda: labels_from_file(image, labels, sub)
        )
    name = "measure + grade" + (" + grader" if grader else " (morphometry)")
    axes = VOXEL_AXES_NIFTI if is_nifti(image_path) else VOXEL_AXES_DICOM
    output = watch.run(name, lambda: run_analysis(image, maps, grader, str(image_path), axes))
    out.mkdir(parents=True, exist_ok=True)
    watch.run(FINDINGS, lambda: write_findings(output, out / FINDINGS))
    watch.run(LABEL_MAP, lambda: write_label_map(output, out / LABEL_MAP))
    watch.run(OVERVIEW, lambda: write_overview(output, out / OVERVIEW, "bench"))
    total = sum(row[1] for row in watch.rows)
    print(f"{'total':<28} {total:7.2f} s   peak RSS {peak_mb():8.0f} MB")
    print(f"fractured levels: {output.result.fractured_levels}; outputs in {out}")
    return watch


def inputs(folder: Path, seed: int, dicom: bool, reuse: bool) -> tuple[Path, Path, Path]:
    """The phantom's input files, made in a child process (keeps its memory out of the
    measured peak), or those of an earlier run with ``reuse`` and the same seed and kind."""
    made = folder / INPUTS
    if reuse and made.is_file():
        recorded = json.loads(made.read_text())
        if recorded["seed"] == seed and recorded["dicom"] == dicom:
            print(f"(reusing the inputs in {folder})")
            image_path, labels, sub = (Path(p) for p in recorded["paths"])
            return image_path, labels, sub
    started = time.perf_counter()
    command = [sys.executable, __file__, "--make-only", "--keep", str(folder)]
    command += ["--seed", str(seed)] + (["--dicom"] if dicom else [])
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    paths = json.loads(output.strip().splitlines()[-1])
    made.write_text(json.dumps({"seed": seed, "dicom": dicom, "paths": paths}))
    print(f"(phantom generation {time.perf_counter() - started:.1f} s, not counted)")
    image_path, labels, sub = (Path(p) for p in paths)
    return image_path, labels, sub


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dicom", action="store_true", help="DICOM series input instead of NIfTI")
    parser.add_argument("--threads", type=int, default=2, help="torch / BLAS threads")
    parser.add_argument(
        "--mirror", action="store_true", help="models.mirror: levels also from the mirror"
    )
    parser.add_argument("--keep", type=Path, help="keep the inputs and outputs in this folder")
    parser.add_argument(
        "--reuse", action="store_true", help="with --keep: reuse the inputs an earlier run made"
    )
    parser.add_argument("--make-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_only:  # child process: keeps generation out of the measured peak memory
        paths = make_input(args.keep, args.seed, args.dicom)
        print(json.dumps([str(p) for p in paths]))
        return 0
    with tempfile.TemporaryDirectory() as temp:
        folder = args.keep or Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        image_path, labels, sub = inputs(folder, args.seed, args.dicom, args.reuse)
        bench(image_path, labels, sub, folder / "out", args.threads, args.mirror)
    return 0


if __name__ == "__main__":
    sys.exit(main())
