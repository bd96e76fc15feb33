"""``spinescreen serve`` end to end, in process: a PACS-like SCU sends a phantom study; the
listener completes it, the worker analyses the routed CT series, the outbox delivers SR, SEG
and key image to the folder destination; the findings match the phantom's ground truth."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import highdicom as hd
import pydicom
import pytest
from pynetdicom import AE, StoragePresentationContexts

from pipeline.service import GivenLabels
from spinescreen.config import load_settings
from spinescreen.service import Service
from tests.conftest import free_port, require_tool
from tests.orthanc import OrthancServer
from training.phantoms import PhantomParams, make_ct_phantom, parse_fracture, write_ct_nifti
from training.phantoms.dicom_writer import write_ct_study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    params = PhantomParams(
        field_of_view="thoracolumbar",
        fractures=[parse_fracture("L1:3:wedge")],
        matrix=256,
        pixel_spacing_mm=1.2,
        slice_thickness_mm=2.0,
        center_level="T12",
    )
    phantom = make_ct_phantom(4242, params)
    folder = tmp_path_factory.mktemp("phantom")
    write_ct_nifti(phantom, folder)
    write_ct_study(phantom, folder / "dicom")
    return folder, phantom


def send(folder: Path, port: int) -> int:
    ae = AE(ae_title="TEST_PACS")
    ae.requested_contexts = StoragePresentationContexts
    assoc = ae.associate("127.0.0.1", port, ae_title="SPINESCREEN")
    assert assoc.is_established
    sent = 0
    for path in sorted(folder.rglob("*.dcm")):
        status = assoc.send_c_store(pydicom.dcmread(path))
        assert status.Status == 0, f"{path.name}: status 0x{status.Status:04X}"
        sent += 1
    assoc.release()
    return sent


def wait_until_delivered(
    service: Service, deliveries: int = 3, timeout_s: float = 180.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = service.status()
        if state["jobs"].get("done") and state["deliveries"].get("done", 0) >= deliveries:
            return state
        if state["jobs"].get("failed") or state["jobs"].get("dead"):
            pytest.fail(
                f"the job failed: {[j.last_error for j in service.listener.queue.list_jobs()]}"
            )  # type: ignore[union-attr]
        time.sleep(0.3)
    pytest.fail(f"nothing delivered within {timeout_s} s: {service.status()}")


def test_study_in_results_out(study: tuple[Path, Any], tmp_path: Path) -> None:
    folder, phantom = study
    health_port = free_port()
    settings = load_settings(
        overrides={
            "data_dir": tmp_path,
            "listener.port": 0,
            "listener.quiet_period_s": 1.0,
            "serve.health_port": health_port,
        },
        environ={},
    )
    ct_series = str(
        pydicom.dcmread(next((folder / "dicom" / "CT").glob("*.dcm"))).SeriesInstanceUID
    )
    service = Service(settings, labels=GivenLabels({ct_series: folder / "vertebrae.nii.gz"}))
    service.start()
    try:
        assert service.listener is not None
        assert send(folder / "dicom", service.listener.port) > 50
        state = wait_until_delivered(service)
        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/health", timeout=5) as r:
            assert json.loads(r.read())["status"] == "ok"
        series = {s.series_uid: s for s in service.listener.store.list_series()}
    finally:
        service.stop()
    assert state["jobs"] == {"done": 1}, "exactly one job: the CT series; extras are not routed"
    assert series[ct_series].routable
    rejected = [s for uid, s in series.items() if uid != ct_series]
    assert rejected and all(s.rejection_reason for s in rejected)

    findings = json.loads(next(tmp_path.glob("results/*/job-*/findings.json")).read_text())
    truth = {v.level: v.genant_grade for v in phantom.vertebra_truth if v.complete}
    graded = {v["level"]: v["genant_grade"] for v in findings["vertebrae"] if v["complete"]}
    assert graded["L1"] == truth["L1"] == 3
    agree = sum(graded[lv] == truth.get(lv) for lv in graded)
    assert agree >= len(graded) - 1, f"grades {graded} vs truth {truth}"

    outbox = sorted((tmp_path / "outbox").glob("*/*.dcm"))
    assert sorted(p.name.split("_")[0] for p in outbox) == ["OT", "SEG", "SR"]
    sr = hd.sr.Comprehensive3DSR.from_dataset(
        pydicom.dcmread(next(p for p in outbox if p.name.startswith("SR_")))
    )
    groups = sr.content.get_planar_roi_measurement_groups()
    by_level = {g.tracking_identifier.removeprefix("Vertebra "): g for g in groups}
    assert set(by_level) == set(graded)
    l1 = {e.name.value: e.value.value for e in by_level["L1"].get_qualitative_evaluations()}
    assert l1["GENANT"] == "G3"


@pytest.mark.integration
def test_orthanc_forwards_a_study_and_gets_the_results_back(
    study: tuple[Path, Any], tmp_path: Path
) -> None:
    """A real PACS: Orthanc holds the study, forwards it over REST (/modalities/.../store),
    and receives SR, SEG and key image back from the service's outbox."""
    require_tool("Orthanc", "orthanc")
    folder, phantom = study
    port = free_port()
    orthanc = OrthancServer(
        tmp_path / "orthanc", modalities={"spinescreen": ("SPINESCREEN", "127.0.0.1", port)}
    )
    pacs = {"name": "orthanc", "ae_title": orthanc.aet, "host": "127.0.0.1",
            "port": orthanc.dicom_port}  # fmt: skip
    settings = load_settings(
        overrides={
            "data_dir": tmp_path / "data",
            "listener.port": port,
            "listener.quiet_period_s": 1.0,
            "serve.health_port": 0,
            "delivery.destinations": [pacs],
        },
        environ={},
    )
    first_ct = next((folder / "dicom" / "CT").glob("*.dcm"))
    ct_series = str(pydicom.dcmread(first_ct, stop_before_pixels=True).SeriesInstanceUID)
    with orthanc:
        study_ids = {orthanc.upload(p)["ParentStudy"] for p in (folder / "dicom").rglob("*.dcm")}
        assert len(study_ids) == 1
        service = Service(settings, labels=GivenLabels({ct_series: folder / "vertebrae.nii.gz"}))
        service.start()
        try:
            orthanc.store_to("spinescreen", sorted(study_ids))
            wait_until_delivered(service, deliveries=6)  # 3 objects x (folder + Orthanc)
        finally:
            service.stop()
        study_id = study_ids.pop()
        series = orthanc.get(f"/studies/{study_id}/series")
        modalities = sorted(s["MainDicomTags"]["Modality"] for s in series)
        sr_instance = next(
            s["Instances"][0] for s in series if s["MainDicomTags"]["Modality"] == "SR"
            and "SpineScreen" in s["MainDicomTags"].get("SeriesDescription", "")
        )  # fmt: skip
        url = f"{orthanc.url}/instances/{sr_instance}/file"
        with urllib.request.urlopen(url, timeout=10) as response:
            sr_bytes = response.read()
    for modality in ("SEG", "OT"):
        assert modality in modalities, f"{modality} did not arrive in Orthanc: {modalities}"
    sr_path = tmp_path / "sr.dcm"
    sr_path.write_bytes(sr_bytes)
    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(sr_path))
    groups = {
        g.tracking_identifier.removeprefix("Vertebra "): g
        for g in sr.content.get_planar_roi_measurement_groups()
    }
    truth = {v.level: v.genant_grade for v in phantom.vertebra_truth if v.complete}
    l1 = {e.name.value: e.value.value for e in groups["L1"].get_qualitative_evaluations()}
    assert l1["GENANT"] == f"G{truth['L1']}"


def test_serve_answers_echo_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPINESCREEN_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "spinescreen", "serve", "--data-dir", str(tmp_path),
         "--port", str(port), "--health-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # logs first; the banner once the service is up
            seen.append(line)
            if line.startswith("spinescreen serve:") or len(seen) > 100:
                break
        assert f"on port {port}" in seen[-1], "".join(seen)
        ae = AE(ae_title="TEST_PACS")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", port, ae_title="SPINESCREEN")
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
        assoc.release()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "stopped cleanly" in output
