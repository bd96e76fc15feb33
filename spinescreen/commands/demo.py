"""``spinescreen demo``: the main job end to end on embedded defaults (``make demo``).

Makes two realistic phantom CT studies (one with compression fractures, one without), starts
the service (listener, analysis worker, delivery to the folder outbox) on a free port, sends
both studies through the network as a PACS would (with their localizer and dose objects),
waits for the results, prints the findings beside the phantoms' ground truth, shows where the
SR, SEG and key image went, renders the SR as text and stops the service.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spinescreen.cli import Invocation
    from spinescreen.service import Service
    from training.phantoms import CTPhantom

NAME = "demo"
HELP = "run the main job on two phantom studies: send, analyse, report (make demo)"
ORDER = 1
STUDIES = (  # (seed, fractures): a positive and a negative study
    (20260, "T12:2:wedge L1:3:crush"),
    (20261, ""),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--matrix", type=int, default=320, help="phantom matrix (512 = real)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")


def run(invocation: Invocation) -> int:
    from rich.console import Console

    from spinescreen import CLINICAL_DISCLAIMER

    console = Console()
    base = invocation.settings()
    root = base.data_dir / "demo"
    import shutil

    shutil.rmtree(root, ignore_errors=True)  # the demo's own folder: every run starts empty
    console.rule(f"SpineScreen demo - {CLINICAL_DISCLAIMER}")
    phantoms = _make_studies(root / "phantoms", invocation.args.matrix, console)
    from spinescreen.config import load_settings

    settings = load_settings(  # the same configuration, in the demo's own folder and free port
        invocation.args.config,
        {
            "data_dir": root / "service",
            "listener.port": 0,
            "listener.quiet_period_s": 2.0,
            "serve.health_port": 0,
        },
    )
    service = _start_service(settings, phantoms, console)
    try:
        for folder, _ in phantoms:
            _send_study(folder / "dicom", service, console)
        _wait(service, len(phantoms), invocation.args.timeout, console)
    finally:
        service.stop()
    _report(settings.data_dir, phantoms, console)
    return 0


def _make_studies(root: Path, matrix: int, console: Any) -> list[tuple[Path, CTPhantom]]:
    from training.phantoms import PhantomParams, make_ct_phantom, parse_fracture, write_ct_nifti
    from training.phantoms.dicom_writer import write_ct_study

    made = []
    for seed, fractures in STUDIES:
        params = PhantomParams(
            field_of_view="thoracolumbar",
            fractures=[parse_fracture(f) for f in fractures.split()],
            matrix=matrix,
            pixel_spacing_mm=0.9 * 512 / matrix,
            slice_thickness_mm=2.0,
            center_level="T12",
        )
        with console.status(f"making phantom study (seed {seed})"):
            phantom = make_ct_phantom(seed, params)
            folder = root / phantom.phantom_id
            write_ct_nifti(phantom, folder)
            write_ct_study(phantom, folder / "dicom")
        truth = phantom.study_truth()
        console.print(
            f"phantom {phantom.phantom_id}: {phantom.image_hu.shape} voxels, "
            f"truth: fractured levels {truth['fractured_levels'] or 'none'}"
        )
        made.append((folder, phantom))
    return made


def _start_service(settings: Any, phantoms: list[tuple[Path, CTPhantom]], console: Any) -> Service:
    from pipeline.service import GivenLabels
    from spinescreen.errors import ModelError
    from spinescreen.service import Service

    labels = None
    try:
        from models import load_segmenter

        card = load_segmenter(settings.models).card
        console.print(f"segmenter: {card.name} {card.version} (trained on synthetic phantoms)")
    except ModelError as exc:
        console.print(
            f"[yellow]no trained segmenter installed ({exc}).[/yellow]\n"
            "[yellow]The demo measures the phantoms' ground-truth label maps instead "
            "(GivenLabels); everything else runs as in production.[/yellow]"
        )
        labels = GivenLabels(_label_maps(phantoms))
    service = Service(settings, labels=labels)
    service.start()
    assert service.listener is not None
    console.print(f"service listening on 127.0.0.1:{service.listener.port}")
    return service


def _label_maps(phantoms: list[tuple[Path, CTPhantom]]) -> dict[str, Path]:
    import pydicom

    maps = {}
    for folder, _ in phantoms:
        first = sorted((folder / "dicom" / "CT").glob("*.dcm"))[0]
        series_uid = str(pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID)
        maps[series_uid] = folder / "vertebrae.nii.gz"
    return maps


def _send_study(folder: Path, service: Service, console: Any) -> None:
    """C-STORE every file of the study, as a PACS forwards it (pynetdicom SCU)."""
    import pydicom
    from pynetdicom import AE, StoragePresentationContexts

    assert service.listener is not None
    files = sorted(p for p in folder.rglob("*.dcm"))
    ae = AE(ae_title="DEMO_PACS")
    ae.requested_contexts = StoragePresentationContexts
    assoc = ae.associate(
        "127.0.0.1", service.listener.port, ae_title=service.settings.listener.ae_title
    )
    if not assoc.is_established:
        raise SystemExit("the demo could not open an association to its own listener")
    failed = 0
    with console.status(f"sending {len(files)} instances from {folder.parent.name}"):
        for path in files:
            status = assoc.send_c_store(pydicom.dcmread(path))
            failed += 0 if status and status.Status == 0 else 1
    assoc.release()
    console.print(f"sent {len(files)} instances ({failed} refused) from {folder.parent.name}")


def _wait(service: Service, studies: int, timeout_s: float, console: Any) -> None:
    deadline = time.monotonic() + timeout_s
    with console.status("waiting: quiet period, analysis, delivery") as status:
        while time.monotonic() < deadline:
            state = service.status()
            jobs, deliveries = state["jobs"], state["deliveries"]
            status.update(f"jobs {jobs}, deliveries {deliveries}")
            finished = jobs.get("done", 0) + jobs.get("failed", 0) + jobs.get("dead", 0)
            pending = sum(v for k, v in deliveries.items() if k not in ("done", "dead"))
            if finished >= studies and pending == 0:
                return
            time.sleep(0.5)
    assert service.listener is not None
    reasons = [
        f"{s.series_uid}: {s.rejection_reason}" for s in service.listener.store.list_series()
    ]
    raise SystemExit(
        f"the demo timed out after {timeout_s:.0f} s: {service.status()}; series: {reasons}"
    )


def _report(data_dir: Path, phantoms: list[tuple[Path, CTPhantom]], console: Any) -> None:
    import json
    import shutil
    import subprocess

    from rich.table import Table

    from pipeline.numbering import Numbering

    for folder, phantom in phantoms:
        truth = {v.level: v.genant_grade for v in phantom.vertebra_truth if v.complete}
        found = sorted(data_dir.glob("results/*/job-*/findings.json"))
        for path in found:
            findings = json.loads(path.read_text())
            if findings["series"]["study_instance_uid"] != _study_uid(folder):
                continue
            table = Table(title=f"{phantom.phantom_id}: {path.parent}")
            for col in ("level", "complete", "Ha/Hm/Hp mm", "loss", "grade", "type", "truth"):
                table.add_column(col)
            for v in findings["vertebrae"]:
                h = v["heights_mm"] or {}
                heights = (
                    "/".join(f"{h[k]:.1f}" for k in ("anterior", "middle", "posterior"))
                    if h
                    else "-"
                )
                table.add_row(
                    v["level"], "yes" if v["complete"] else "cut", heights,
                    "-" if v["height_loss"] is None else f"{100 * v['height_loss']:.0f}%",
                    str(v["genant_grade"] if v["genant_grade"] is not None else "-"),
                    str(v["morphology"] or "-"), str(truth.get(v["level"], "-")),
                )  # fmt: skip
            console.print(table)
            study = dict(findings["study"])
            numbering = study.pop("numbering", None)
            console.print(f"study: {study}")
            if numbering is not None:
                console.print(Numbering.from_json(numbering).summary())
    outbox = sorted(data_dir.glob("outbox/*/*.dcm"))
    console.rule("results delivered to the folder outbox")
    for path in outbox:
        console.print(f"  {path}")
    positive = _study_uid(phantoms[0][0])  # render the report of the study with fractures
    srs = [p for p in outbox if p.name.startswith("SR_") and p.parent.name == positive]
    if srs and shutil.which("dsrdump"):
        console.rule(f"SR rendered by dsrdump: {srs[0].name}")
        print(subprocess.run(["dsrdump", str(srs[0])], capture_output=True, text=True).stdout)


def _study_uid(folder: Path) -> str:
    import pydicom

    first = sorted((folder / "dicom" / "CT").glob("*.dcm"))[0]
    return str(pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID)
