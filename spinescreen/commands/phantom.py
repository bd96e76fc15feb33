"""``spinescreen phantom``: write synthetic spine phantoms with exact ground truth.

Each phantom goes to ``DIR/<phantom id>/``: ``ground_truth.json`` plus, for CT,
``ct.nii.gz``, ``vertebrae.nii.gz``, ``subregions.nii.gz`` and ``centroids.json`` (NIfTI) or
``dicom/`` (a DICOM study), and for radiographs ``image.nii.gz`` or ``image.dcm`` with
``ground_truth_2d.json``. Phantom ``n`` uses seed ``S + n``, so a run is reproducible.
Synthetic data for testing and training only: not for clinical use.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spinescreen.cli import Invocation
    from training.phantoms.params import PhantomParams

NAME = "phantom"
HELP = "generate synthetic spine CT phantoms or lateral radiographs with ground truth"
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--count", type=int, default=1, metavar="N", help="number of phantoms")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the first one")
    parser.add_argument("--kind", choices=["ct", "radiograph"], default="ct")
    parser.add_argument("--format", choices=["nifti", "dicom"], default="nifti", dest="fmt")
    parser.add_argument("--mode", choices=["realistic", "randomized"], default="realistic")
    parser.add_argument(
        "--fracture",
        action="append",
        default=[],
        metavar="LEVEL:GRADE:TYPE",
        help="requested fracture, e.g. L1:2:wedge (repeatable); none given: drawn at random",
    )
    parser.add_argument("--no-fractures", action="store_true", help="spines without fractures")
    parser.add_argument(
        "--field-of-view",
        choices=["random", "chest", "abdomen", "chest_abdomen_pelvis", "thoracolumbar", "partial"],
        default="random",
    )
    parser.add_argument("--matrix", type=int, default=512, help="in-plane matrix (512)")
    parser.add_argument("--pixel-spacing", type=float, metavar="MM", help="in-plane spacing")
    parser.add_argument("--slice-thickness", type=float, metavar="MM", help="slice thickness")
    parser.add_argument(
        "--transfer-syntax", choices=["explicit", "jpeg2000", "rle"], default="explicit"
    )
    parser.add_argument("--view", choices=["lateral", "ap"], default="lateral")


def phantom_params(args: argparse.Namespace) -> PhantomParams:
    from training.phantoms.params import PhantomParams, parse_fracture

    fractures = [parse_fracture(text) for text in args.fracture]
    return PhantomParams(
        mode=args.mode,
        field_of_view=args.field_of_view,
        fractures=[] if args.no_fractures else (fractures or None),
        matrix=args.matrix,
        pixel_spacing_mm=args.pixel_spacing,
        slice_thickness_mm=args.slice_thickness,
    )


def write_one(seed: int, params: PhantomParams, args: argparse.Namespace) -> Path:
    """Generate and write one phantom; returns its folder."""
    from training.phantoms import make_ct_phantom, write_ct_nifti

    phantom = make_ct_phantom(seed, params)
    folder: Path = args.out / phantom.phantom_id
    if args.kind == "radiograph":
        from training.phantoms.radiograph import make_radiograph, write_radiograph

        radiograph = make_radiograph(phantom, view=args.view)
        write_radiograph(radiograph, folder, args.fmt)
        _write_truth(phantom, folder)
    elif args.fmt == "dicom":
        from training.phantoms.dicom_writer import write_ct_study

        write_ct_study(phantom, folder / "dicom", transfer_syntax=args.transfer_syntax)
        _write_truth(phantom, folder)
    else:
        write_ct_nifti(phantom, folder)
    return folder


def _write_truth(phantom: Any, folder: Path) -> None:
    import json

    from training.phantoms.nifti import ground_truth_record

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ground_truth.json").write_text(json.dumps(ground_truth_record(phantom), indent=1))


def run(invocation: Invocation) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from spinescreen.errors import ConfigError

    args = invocation.args
    invocation.settings()  # configures logging
    if args.count < 1:
        raise ConfigError(f"--count {args.count} must be at least 1")
    params = phantom_params(args)
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), transient=False) as progress:
        task = progress.add_task(f"{args.kind} phantoms", total=args.count)
        for n in range(args.count):
            folder = write_one(args.seed + n, params, args)
            progress.update(task, advance=1, description=f"{args.kind} {folder.name}")
    print(
        f"wrote {args.count} {args.kind} phantom(s) to {args.out} (synthetic, not for clinical use)"
    )
    return 0
