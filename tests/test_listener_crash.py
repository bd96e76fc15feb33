"""Crash test: SIGKILL the listener process mid-transfer, restart, resend what was not acked.

The store must end with exactly the sent set, every file byte-identical, and each complete
study queued exactly once. Also checks the graceful SIGTERM stop of ``spinescreen listen``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE
from pynetdicom import _config as pynetdicom_config

from dicom_listener import JobQueue, JobState, SqlStore
from tests.conftest import free_port
from tests.listener_data import (
    association_accepted,
    dataset_bytes,
    write_study,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STUDIES, SLICES = 4, 110  # 440 instances over 4 concurrent associations
CONFIG = """
listener:
  host: 127.0.0.1
  quiet_period_s: 4.0
  completion_check_s: 0.2
  min_free_disk_mb: 0
  dimse_timeout_s: 20.0
"""


class ListenerProcess:
    def __init__(self, data_dir: Path, config: Path, port: int) -> None:
        self.args = [
            sys.executable,
            "-m",
            "spinescreen",
            "listen",
            "--config",
            str(config),
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
        ]
        self.port = port
        self.log = data_dir.parent / "listener.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            if port_open(self.port) and association_accepted(self.port, "CRASHSCU"):
                return
            time.sleep(0.2)
        raise TimeoutError(f"listener did not start in {timeout_s} s: {self.log}")

    def signal(self, signum: int) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=30)

    def kill_if_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Sender:
    """One study over one association at a time; remembers which instances were acked."""

    def __init__(self, port: int, files: list[Path]) -> None:
        self.port = port
        self.files = {str(read_file_meta_info(f).MediaStorageSOPInstanceUID): f for f in files}
        self.acked: set[str] = set()

    def send_pending(self) -> None:
        ae = AE(ae_title="CRASHSCU")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
        assoc = ae.associate("127.0.0.1", self.port, ae_title="SPINESCREEN")
        # pynetdicom skips close() when shutdown() fails on a dead peer: close it ourselves.
        raw = getattr(assoc.dul.socket, "socket", None)
        try:
            if assoc.is_established:
                self._send(assoc)
        finally:
            if assoc.is_established:
                assoc.release()
            assoc.dul.join(timeout=5)
            if raw is not None:
                raw.close()

    def _send(self, assoc: Any) -> None:
        for uid, path in self.files.items():
            if uid in self.acked:
                continue
            status = assoc.send_c_store(path)
            if "Status" not in status or int(status.Status) != 0:
                return
            self.acked.add(uid)


def send_all(senders: list[Sender]) -> list[threading.Thread]:
    threads = [threading.Thread(target=s.send_pending, daemon=True) for s in senders]
    for thread in threads:
        thread.start()
    return threads


def test_sigkill_mid_transfer_loses_nothing_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pynetdicom_config, "STORE_SEND_CHUNKED_DATASET", True)
    studies = [write_study(tmp_path / "in" / str(i), slices=SLICES) for i in range(STUDIES)]
    config = tmp_path / "listener.yaml"
    config.write_text(CONFIG)
    data_dir = tmp_path / "data"
    listener = ListenerProcess(data_dir, config, free_port())
    senders = [Sender(listener.port, list(s.files)) for s in studies]
    total = STUDIES * SLICES
    try:
        listener.start()
        threads = send_all(senders)
        deadline = time.monotonic() + 60
        while sum(len(s.acked) for s in senders) < total // 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert listener.signal(signal.SIGKILL) == -signal.SIGKILL
        acked_at_kill = sum(len(s.acked) for s in senders)
        for thread in threads:
            thread.join(timeout=30)
        assert acked_at_kill < total, "the kill came after the transfer had finished"
        listener.start()
        for _ in range(3):
            for thread in send_all(senders):
                thread.join(timeout=60)
        assert sum(len(s.acked) for s in senders) == total, "resend did not complete"
        assert_store_holds_exactly(data_dir, studies, senders, wait_for_jobs_s=20)
        assert listener.signal(signal.SIGTERM) == 0, "graceful stop must exit 0"
    finally:
        listener.kill_if_running()


def assert_store_holds_exactly(
    data_dir: Path, studies: list, senders: list[Sender], wait_for_jobs_s: float
) -> None:
    store = SqlStore.open(data_dir / "spinescreen.db")
    try:
        queue = JobQueue(store)
        deadline = time.monotonic() + wait_for_jobs_s
        while len(queue.list_jobs()) < len(studies) and time.monotonic() < deadline:
            time.sleep(0.2)
        sent = {uid: path for s in senders for uid, path in s.files.items()}
        indexed = {
            info.sop_instance_uid: info
            for series in store.list_series()
            for info in store.series_instances(series.series_uid)
        }
        assert set(indexed) == set(sent), (
            f"{len(set(sent) - set(indexed))} sent instances missing, "
            f"{len(set(indexed) - set(sent))} unexpected"
        )
        spool = data_dir / "spool"
        differing = [
            uid
            for uid, info in indexed.items()
            if dataset_bytes((spool / info.path).read_bytes())
            != dataset_bytes(sent[uid].read_bytes())
        ]
        assert differing == [], f"{len(differing)} stored files differ from what was sent"
        on_disk = {p.relative_to(spool).as_posix() for p in spool.glob("*/*/*.dcm")}
        assert on_disk == {info.path for info in indexed.values()}
        assert list((spool / ".tmp").iterdir()) == [], "unfinished transfers left behind"
        jobs = queue.list_jobs()
        per_study = {s.study_uid: [j for j in jobs if j.study_uid == s.study_uid] for s in studies}
        counts = {uid: len(found) for uid, found in per_study.items()}
        assert all(n == 1 for n in counts.values()), f"jobs per study: {counts}"
        assert all(j.state is JobState.QUEUED for j in jobs)
    finally:
        store.close()


def test_listen_command_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "listener.yaml"
    config.write_text(CONFIG)
    (tmp_path / "data").mkdir()
    listener = ListenerProcess(tmp_path / "data", config, free_port())
    try:
        listener.start()
        assert listener.signal(signal.SIGTERM) == 0
        assert "listener stopped" in listener.log.read_text()
        status = subprocess.run(
            [sys.executable, "-m", "spinescreen", "status", "--data-dir", str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert status.returncode == 0, status.stderr
        assert "Studies (0, 0 instances)" in status.stdout
    finally:
        listener.kill_if_running()
