"""Delivery over loopback: a destination down then back, a restart between, TLS, and Orthanc.

The objects are real results (TID 1500 SR, SEG, key image) built from a toy phantom CT; the
destination is a pynetdicom Storage SCP that counts every C-STORE it receives, so a duplicate
delivery shows as a count of 2 for one SOP Instance UID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pynetdicom import AE, AllStoragePresentationContexts, evt

from dicom_listener import DeliveryState, DeliveryWorker, Outbox, SqlStore
from dicom_listener.delivery import deliver_by_c_store
from dicom_listener.settings import DeliverySettings
from pipeline.outputs.identity import AlgorithmIdentity
from pipeline.outputs.key_image import build_key_image
from pipeline.outputs.seg import build_seg
from pipeline.outputs.sr import build_sr
from pipeline.volume import build_volume
from tests.conftest import free_port, require_tool
from tests.listener_data import running_listener
from tests.orthanc import OrthancServer
from tests.test_listener_scp import make_certificates, stored_datasets
from tests.test_outputs_sr import FINDINGS
from tests.test_phantom_dicom_toy import make_toy_phantom
from training.phantoms.dicom_writer import write_ct_study

IDENTITY = AlgorithmIdentity.from_models([("vertebra-segmenter", "0.1.0", "cd" * 32)])
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
FAST = {
    "retry_base_s": 0.3,
    "retry_max_s": 1.0,
    "give_up_after_s": 120.0,
    "poll_interval_s": 0.1,
    "association_timeout_s": 5.0,
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Path]]:
    """(study UID, [SR, SEG, key image]) over a toy phantom CT series."""
    phantom = make_toy_phantom()
    paths = write_ct_study(phantom, tmp_path_factory.mktemp("ct"), include_extras=False)
    datasets = [pydicom.dcmread(p) for p in paths]
    volume = build_volume(datasets)
    by_uid = {str(ds.SOPInstanceUID): ds for ds in datasets}
    evidence = [by_uid[s.sop_instance_uid] for s in volume.slice_sources]
    labels = np.transpose(phantom.vertebrae, (2, 1, 0))
    rgb = np.zeros((40, 30, 3), dtype=np.uint8)
    rgb[10:20, 5:25] = (255, 0, 0)
    objects = [
        build_sr(FINDINGS, evidence, IDENTITY),
        build_seg(labels, evidence, IDENTITY),
        build_key_image(rgb, evidence[0], IDENTITY),
    ]
    folder = tmp_path_factory.mktemp("results")
    files = []
    for index, obj in enumerate(objects):
        path = folder / f"object{index}.dcm"
        obj.save_as(path, enforce_file_format=True)
        files.append(path)
    return str(evidence[0].StudyInstanceUID), files


class CountingScp:
    """A Storage SCP on a fixed port that records the SOP Instance UID of every C-STORE."""

    def __init__(
        self, port: int, ae_title: str = "PACS", statuses: list[int] | None = None
    ) -> None:
        self.port = port
        self.received: Counter[str] = Counter()
        self.statuses = list(statuses or [])  # answered in turn, then 0x0000
        self._lock = threading.Lock()
        self._ae = AE(ae_title=ae_title)
        for context in AllStoragePresentationContexts:
            self._ae.add_supported_context(str(context.abstract_syntax), EXPLICIT_VR_LE)
        self._server: Any = None

    def _on_store(self, event: Any) -> int:
        with self._lock:
            if self.statuses:
                return self.statuses.pop(0)
            self.received[str(event.request.AffectedSOPInstanceUID)] += 1
        return 0x0000

    def start(self) -> None:
        handlers: list[Any] = [(evt.EVT_C_STORE, self._on_store)]
        address = ("127.0.0.1", self.port)
        self._server = self._ae.start_server(address, block=False, evt_handlers=handlers)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None


def destination(port: int, ae_title: str = "PACS", **extra: object) -> dict[str, object]:
    return {"name": "pacs", "ae_title": ae_title, "host": "127.0.0.1", "port": port, **extra}


@contextmanager
def delivering(data_dir: Path, settings: DeliverySettings) -> Iterator[Outbox]:
    """An outbox on the store under ``data_dir`` with a started :class:`DeliveryWorker`."""
    store = SqlStore.open(data_dir / "index.db")
    outbox = Outbox(store, settings, data_dir)
    worker = DeliveryWorker(outbox, settings, calling_ae_title="SPINESCREEN")
    worker.start()
    try:
        yield outbox
    finally:
        worker.stop(timeout_s=20)
        store.close()


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def all_done(outbox: Outbox) -> bool:
    return all(r.state == DeliveryState.DONE for r in outbox.deliveries())


def sop_uids(files: list[Path]) -> set[str]:
    return {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}


def test_destination_down_then_back_with_a_restart_delivers_each_object_once(
    results: tuple[str, list[Path]], tmp_path: Path
) -> None:
    study_uid, files = results
    port = free_port()
    settings = DeliverySettings.model_validate(
        {"outbox_dir": tmp_path / "data" / "outbox", "destinations": [destination(port)], **FAST}
    )
    with delivering(tmp_path / "data", settings) as outbox:
        outbox.submit(study_uid, files, job_id=1)
        down_since = time.monotonic()
        assert wait_for(
            lambda: all(r.attempts >= 2 for r in outbox.deliveries() if r.destination == "pacs"), 10
        ), "the down destination is retried"
        pacs_rows = [r for r in outbox.deliveries() if r.destination == "pacs"]
        assert all(r.state != DeliveryState.DONE for r in pacs_rows)
        assert all("cannot connect" in (r.last_error or "") for r in pacs_rows), pacs_rows
        time.sleep(max(0.0, 2.0 - (time.monotonic() - down_since)))  # down for 2 s at least
    # restart: a new worker on the reopened store; the destination comes back meanwhile
    scp = CountingScp(port)
    scp.start()
    try:
        with delivering(tmp_path / "data", settings) as outbox:
            assert wait_for(lambda: all_done(outbox), 15), (
                f"not all delivered: {outbox.deliveries()}"
            )
            time.sleep(3 * FAST["poll_interval_s"])  # a spurious re-send would show up now
            rows = outbox.deliveries()
    finally:
        scp.stop()
    expected = sop_uids(files)
    assert set(scp.received) == expected, "every SR, SEG and key image arrives"
    assert max(scp.received.values()) == 1, f"duplicate deliveries: {scp.received}"
    assert len(rows) == 2 * len(files) and {r.destination for r in rows} == {"folder", "pacs"}
    folder = tmp_path / "data" / "outbox" / study_uid
    written = {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in folder.iterdir()
    }
    assert written == expected
    assert sorted(p.name.split("_")[0] for p in folder.iterdir()) == ["OT", "SEG", "SR"]


def test_a_crash_after_the_store_but_before_the_commit_resends_the_same_uid(
    results: tuple[str, list[Path]], tmp_path: Path
) -> None:
    study_uid, files = results
    scp = CountingScp(free_port())
    settings = DeliverySettings.model_validate(
        {"folder": False, "destinations": [destination(scp.port)], **FAST}
    )
    scp.start()
    try:
        store = SqlStore.open(tmp_path / "index.db")
        outbox = Outbox(store, settings, tmp_path)
        outbox.submit(study_uid, files[:1])
        claimed = outbox.claim_due(lease_s=600)
        outcomes = deliver_by_c_store(settings.destinations[0], "SPINESCREEN", 5.0, claimed)
        assert [o.error for o in outcomes] == [None]
        store.close()  # dies before mark_done: the row stays "sending"
        with delivering(tmp_path, settings) as outbox:
            assert wait_for(lambda: all_done(outbox), 10)
    finally:
        scp.stop()
    (uid,) = sop_uids(files[:1])
    assert scp.received == Counter({uid: 2}), "documented: re-sent once, with the same UID"


CHILD = """
import sys, time
from pathlib import Path
from dicom_listener import DeliveryWorker, Outbox, SqlStore
from dicom_listener.settings import DeliverySettings
settings = DeliverySettings.model_validate_json(sys.argv[1])
data_dir = Path(sys.argv[2])
outbox = Outbox(SqlStore.open(data_dir / "index.db"), settings, data_dir)
DeliveryWorker(outbox, settings).start()
outbox.submit(sys.argv[3], [Path(p) for p in sys.argv[4:]])
time.sleep(120)
"""


def test_a_sigkilled_service_loses_nothing_and_sends_nothing_twice(
    results: tuple[str, list[Path]], tmp_path: Path
) -> None:
    study_uid, files = results
    data_dir = tmp_path / "data"
    port = free_port()
    settings = DeliverySettings.model_validate(
        {"outbox_dir": data_dir / "outbox", "destinations": [destination(port)], **FAST}
    )
    args = [settings.model_dump_json(), str(data_dir), study_uid, *map(str, files)]
    root = Path(__file__).resolve().parents[1]
    child = subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=root)
    try:
        database = data_dir / "index.db"
        assert wait_for(lambda: database.exists(), 30), "the child opened no store"
        store = SqlStore.open(database)
        try:
            probe = Outbox(store, settings, data_dir)

            def retried() -> bool:
                rows = probe.deliveries()
                pacs = [r for r in rows if r.destination == "pacs"]
                return len(rows) == 2 * len(files) and all(r.attempts >= 2 for r in pacs)

            assert wait_for(retried, 30), f"the child never retried: {probe.deliveries()}"
        finally:
            store.close()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    scp = CountingScp(port)
    scp.start()
    try:
        with delivering(data_dir, settings) as outbox:
            assert wait_for(lambda: all_done(outbox), 15), f"after SIGKILL: {outbox.deliveries()}"
            time.sleep(3 * FAST["poll_interval_s"])
    finally:
        scp.stop()
    assert scp.received == Counter(dict.fromkeys(sop_uids(files), 1)), scp.received
    assert len(list((data_dir / "outbox" / study_uid).iterdir())) == len(files)


def test_failure_status_is_retried_until_stored(
    results: tuple[str, list[Path]], tmp_path: Path
) -> None:
    study_uid, files = results
    scp = CountingScp(free_port(), statuses=[0xA700, 0xC211])  # out of resources, then failure
    settings = DeliverySettings.model_validate(
        {"folder": False, "destinations": [destination(scp.port)], **FAST}
    )
    scp.start()
    try:
        with delivering(tmp_path, settings) as outbox:
            outbox.submit(study_uid, files[:1])
            assert wait_for(lambda: all_done(outbox), 10), f"status retry: {outbox.deliveries()}"
            (row,) = outbox.deliveries()
    finally:
        scp.stop()
    assert row.attempts == 3, f"0xA700, 0xC211, then success: 3 attempts, got {row.attempts}"
    assert scp.received == Counter(dict.fromkeys(sop_uids(files[:1]), 1))


def test_tls_destination(results: tuple[str, list[Path]], tmp_path: Path) -> None:
    study_uid, files = results
    certs = make_certificates(tmp_path / "certs")
    tls = {
        "cert_file": certs["server.pem"],
        "key_file": certs["server.key"],
        "ca_file": certs["ca.pem"],
        "require_client_cert": True,
    }
    with running_listener(tmp_path / "pacs", tls=tls) as listener:
        client_tls = {
            "enabled": True,
            "ca_file": certs["ca.pem"],
            "cert_file": certs["client.pem"],
            "key_file": certs["client.key"],
        }
        pacs = destination(listener.port, ae_title="SPINESCREEN", tls=client_tls)
        settings = DeliverySettings.model_validate(
            {"folder": False, "destinations": [pacs], **FAST}
        )
        with delivering(tmp_path / "data", settings) as outbox:
            outbox.submit(study_uid, files)
            assert wait_for(lambda: all_done(outbox), 15), f"TLS delivery: {outbox.deliveries()}"
        stored = stored_datasets(listener)
    assert set(stored) == sop_uids(files), "the TLS peer stored every object"


def test_tls_destination_with_an_untrusted_certificate_is_retried(
    results: tuple[str, list[Path]], tmp_path: Path
) -> None:
    study_uid, files = results
    certs = make_certificates(tmp_path / "certs")
    tls = {"cert_file": certs["server.pem"], "key_file": certs["server.key"]}
    with running_listener(tmp_path / "pacs", tls=tls) as listener:
        pacs = destination(listener.port, ae_title="SPINESCREEN", tls={"enabled": True})
        settings = DeliverySettings.model_validate(
            {"folder": False, "destinations": [pacs], **FAST}
        )
        with delivering(tmp_path / "data", settings) as outbox:
            outbox.submit(study_uid, files[:1])
            assert wait_for(lambda: outbox.deliveries()[0].attempts >= 1, 10)
            (row,) = outbox.deliveries()
        assert stored_datasets(listener) == {}
    assert row.state == DeliveryState.PENDING, "a TLS failure is retried like a refusal"


def orthanc_sop_uids(orthanc: OrthancServer) -> list[str]:
    uids = []
    for instance in orthanc.get("/instances"):
        tags = orthanc.get(f"/instances/{instance}/simplified-tags")
        uids.append(str(tags["SOPInstanceUID"]))
    return uids


@pytest.mark.integration
def test_orthanc_down_then_back_receives_every_object_once(
    results: tuple[str, list[Path]], tmp_path: Path
) -> None:
    require_tool("Orthanc", "orthanc")
    study_uid, files = results
    orthanc = OrthancServer(tmp_path / "orthanc")
    pacs = destination(orthanc.dicom_port, ae_title=orthanc.aet)
    settings = DeliverySettings.model_validate({"folder": False, "destinations": [pacs], **FAST})
    with delivering(tmp_path / "data", settings) as outbox:
        outbox.submit(study_uid, files)
        assert wait_for(lambda: all(r.attempts >= 1 for r in outbox.deliveries()), 10)
        with orthanc:
            assert wait_for(lambda: all_done(outbox), 30), (
                f"Orthanc delivery: {outbox.deliveries()}"
            )
            uids = orthanc_sop_uids(orthanc)
            changes = orthanc.get("/changes?limit=1000")["Changes"]
    new_instances = [c for c in changes if c["ChangeType"] == "NewInstance"]
    assert sorted(uids) == sorted(sop_uids(files))
    assert len(new_instances) == len(files), f"NewInstance changes: {len(new_instances)}"
