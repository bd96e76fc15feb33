"""Benchmark (not a timed test): CT phantom generation speed.

Prints the median of 3 runs for one 512 x 512 x 300 CT phantom at 1 mm (the issue's target:
at most 5 s on 2 cores) and for the default size (512 matrix, field of view and spacing drawn
from the seed), each beside a peer operation measured in the same run on the same volume:
nibabel writing it as ``.nii.gz``. The ratio makes the figure comparable across machines
and loads; the process CPU time is printed too (on a shared machine wall time includes
waiting). Run: ``.venv/bin/python bench/phantom_speed.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib

from training.phantoms import CTPhantom, PhantomParams, make_ct_phantom

TARGET = PhantomParams(
    field_of_view="thoracolumbar",
    matrix=512,
    pixel_spacing_mm=1.0,
    slice_thickness_mm=1.0,
    slice_count=300,
)


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    return median_wall_and_cpu(work, repeats)[0]


def median_wall_and_cpu(work: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall-clock and process CPU seconds (CPU time shows the cost on a busy machine)."""
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        work()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall), statistics.median(cpu)


def nifti_write_seconds(phantom: CTPhantom, repeats: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ct.nii.gz"

        def write() -> None:
            nib.save(nib.Nifti1Image(phantom.image_hu, phantom.affine), path)

        return median_seconds(write, repeats)


def bench(name: str, seed: int, params: PhantomParams | None, repeats: int) -> None:
    phantom = make_ct_phantom(seed, params)  # warm-up, and the volume for the peer
    seconds, cpu = median_wall_and_cpu(lambda: make_ct_phantom(seed, params), repeats)
    peer = nifti_write_seconds(phantom, repeats)
    shape = "x".join(str(n) for n in phantom.image_hu.shape)
    spacing = "x".join(f"{s:.2f}" for s in phantom.spacing_mm)
    print(
        f"{name:<22} {shape:>13} @ {spacing} mm: {seconds:6.2f} s (median of {repeats}, "
        f"CPU {cpu:5.2f} s); "
        f"nibabel .nii.gz write {peer:5.2f} s; ratio {seconds / peer:4.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CT phantom generation speed")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    bench("512x512x300 @ 1 mm", 1, TARGET, args.repeats)
    bench("default (seed 2)", 2, None, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
