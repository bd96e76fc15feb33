"""Real peers over loopback: dcmtk echoscu/storescu and Orthanc forwarding to the listener."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from dicom_listener import JobState, Listener
from tests.conftest import require_shared, require_tool
from tests.listener_data import dataset_bytes, running_listener, write_study
from tests.orthanc import ORTHANC, OrthancServer

pytestmark = pytest.mark.integration

J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TCP_NODELAY": "1"}
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, check=False)


def stored_by_uid(listener: Listener) -> dict[str, tuple[bytes, str]]:
    """SOP Instance UID -> (dataset bytes, transfer syntax) of everything indexed."""
    result = {}
    for series in listener.store.list_series():
        for info in listener.store.series_instances(series.series_uid):
            data = listener.spool.path(info.path).read_bytes()
            result[info.sop_instance_uid] = (dataset_bytes(data), info.transfer_syntax_uid)
    return result


def sent_by_uid(files: list[Path]) -> dict[str, tuple[bytes, str]]:
    result = {}
    for path in files:
        ds = dcmread(path, stop_before_pixels=True)
        syntax = str(ds.file_meta.TransferSyntaxUID)
        result[str(ds.SOPInstanceUID)] = (dataset_bytes(path.read_bytes()), syntax)
    return result


def test_dcmtk_echo_and_store_generated_and_jpeg2000_bit_exact(tmp_path: Path) -> None:
    echoscu = require_tool("echoscu", "dcmtk")
    storescu = require_tool("storescu", "dcmtk")
    real = sorted(require_shared("ts_ct_dicom_uids").iterdir())
    study = write_study(tmp_path / "in", slices=8)
    with running_listener(tmp_path / "data") as listener:
        port = str(listener.port)
        echo = run_tool(echoscu, "-aet", "DCMTK", "-aec", "SPINESCREEN", "127.0.0.1", port)
        assert echo.returncode == 0, echo.stderr
        plain = run_tool(
            storescu,
            "-aet",
            "DCMTK",
            "-aec",
            "SPINESCREEN",
            "127.0.0.1",
            port,
            *map(str, study.files),
        )
        assert plain.returncode == 0, plain.stderr
        j2k = run_tool(
            storescu,
            "-xv",
            "-aet",
            "DCMTK",
            "-aec",
            "SPINESCREEN",
            "127.0.0.1",
            port,
            *map(str, real),
        )
        assert j2k.returncode == 0, j2k.stderr
        stored = stored_by_uid(listener)
        expected = sent_by_uid([*study.files, *real])
        assert set(stored) == set(expected), f"{len(stored)} stored, {len(expected)} sent"
        mismatched = [uid for uid in expected if stored[uid] != expected[uid]]
        assert mismatched == [], f"{len(mismatched)} instances differ from what was sent"
        assert {stored[dcmread(p, stop_before_pixels=True).SOPInstanceUID][1] for p in real} == {
            J2K_LOSSLESS
        }


def test_refused_calling_ae_with_dcmtk(tmp_path: Path) -> None:
    echoscu = require_tool("echoscu", "dcmtk")
    with running_listener(tmp_path / "data", allowed_calling_ae_titles=["PACS"]) as listener:
        port = str(listener.port)
        refused = run_tool(echoscu, "-aet", "INTRUDER", "-aec", "SPINESCREEN", "127.0.0.1", port)
        allowed = run_tool(echoscu, "-aet", "PACS", "-aec", "SPINESCREEN", "127.0.0.1", port)
    assert refused.returncode != 0, "association from INTRUDER was accepted"
    assert "Calling AE Title Not Recognized" in refused.stderr + refused.stdout
    assert allowed.returncode == 0, allowed.stderr


def test_orthanc_forwards_a_study_and_every_instance_arrives(tmp_path: Path) -> None:
    if not Path(ORTHANC).exists():
        require_tool("Orthanc", "orthanc")
    real = sorted(require_shared("ts_ct_dicom_uids").iterdir())
    study = write_study(tmp_path / "in", slices=10)
    with running_listener(tmp_path / "data", quiet_period_s=1.0) as listener:
        modality = ("SPINESCREEN", "127.0.0.1", listener.port)
        with OrthancServer(tmp_path / "orthanc", {"spinescreen": modality}) as orthanc:
            study_ids = {orthanc.upload(p)["ParentStudy"] for p in [*study.files, *real]}
            assert len(study_ids) == 2
            orthanc.store_to("spinescreen", sorted(study_ids))
        stored = stored_by_uid(listener)
        expected = sent_by_uid([*study.files, *real])
        assert set(stored) == set(expected), f"{len(stored)} of {len(expected)} arrived"
        assert all(stored[uid][0] == expected[uid][0] for uid in expected), "bytes changed"
        deadline = time.monotonic() + 10
        while len(listener.queue.list_jobs()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        jobs = listener.queue.list_jobs()
        assert len(jobs) == 2 and all(j.state is JobState.QUEUED for j in jobs), jobs
