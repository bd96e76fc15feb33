"""A throwaway Orthanc server for tests and benchmarks (Debian package ``orthanc``).

``OrthancServer`` writes a temporary configuration with free ports and its own storage,
starts ``/usr/sbin/Orthanc``, waits for its REST API and always stops it::

    with OrthancServer(tmp_path / "orthanc", modalities={"spinescreen": ("SPINESCREEN",
                       "127.0.0.1", port)}) as orthanc:
        study_id = orthanc.upload(path)["ParentStudy"]
        orthanc.store_to("spinescreen", [study_id])
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.conftest import free_port

ORTHANC = "/usr/sbin/Orthanc"


class OrthancServer:
    def __init__(
        self,
        workdir: Path,
        modalities: dict[str, tuple[str, str, int]] | None = None,
        aet: str = "ORTHANC",
        sync_storage: bool = True,
        executable: str = ORTHANC,
    ) -> None:
        self.workdir = workdir
        self.modalities = modalities or {}
        self.aet = aet
        self.sync_storage = sync_storage
        self.executable = executable
        self.http_port = free_port()
        self.dicom_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def config(self) -> dict[str, Any]:
        storage = self.workdir / "storage"
        return {
            "Name": "spinescreen-test",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "SyncStorageArea": self.sync_storage,
            "StorageCompression": False,
            "OverwriteInstances": False,
            "DicomModalities": {k: list(v) for k, v in self.modalities.items()},
            "Plugins": [],
            "StableAge": 3600,
        }

    def start(self, timeout_s: float = 30.0) -> OrthancServer:
        """Start with an empty storage and wait until the REST API answers."""
        shutil.rmtree(self.workdir / "storage", ignore_errors=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "orthanc.json"
        config_path.write_text(json.dumps(self.config(), indent=2), encoding="utf-8")
        log = (self.workdir / "orthanc.log").open("wb")
        self._process = subprocess.Popen(
            [self.executable, str(config_path)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Orthanc exited early; see {self.workdir / 'orthanc.log'}")
            try:
                self.get("/system")
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"Orthanc did not answer within {timeout_s} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)

    def __enter__(self) -> OrthancServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout_s: float = 120
    ) -> Any:
        """One REST call; the decoded JSON answer (or None when empty)."""
        request = urllib.request.Request(self.url + path, data=body, method=method)
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def get(self, path: str) -> Any:
        return self.request("GET", path, timeout_s=5)

    def post_json(self, path: str, value: object, timeout_s: float = 300) -> Any:
        return self.request("POST", path, json.dumps(value).encode(), timeout_s)

    def upload(self, path: Path) -> dict[str, Any]:
        """``POST /instances`` of one DICOM file; Orthanc's answer (ID, ParentStudy...)."""
        answer = self.request("POST", "/instances", path.read_bytes())
        assert isinstance(answer, dict)
        return answer

    def store_to(self, modality: str, resources: list[str], timeout_s: float = 300) -> Any:
        """C-STORE ``resources`` (study/series/instance IDs) to ``modality``; waits for it."""
        body = {"Resources": resources, "Synchronous": True}
        return self.post_json(f"/modalities/{modality}/store", body, timeout_s)

    def instance_count(self) -> int:
        return int(self.get("/statistics")["CountInstances"])
