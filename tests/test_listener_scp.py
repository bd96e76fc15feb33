"""The Storage SCP over loopback with a pynetdicom SCU: storage, bad input, policy, TLS."""

from __future__ import annotations

import logging
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from dicom_listener import JobState, Listener
from tests.conftest import require_shared, require_tool
from tests.listener_data import (
    SR_STORAGE,
    association_accepted,
    ct_slice,
    dataset_bytes,
    running_listener,
    send_files,
    to_bytes,
    write_study,
)

SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND, UNEXPECTED = 0x0000, 0xA700, 0xC210, 0xC211


def wait_for(condition: object, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def stored_datasets(listener: Listener) -> dict[str, bytes]:
    """SOP Instance UID -> dataset bytes (after the file meta) of every indexed file."""
    result = {}
    for series in listener.store.list_series():
        for info in listener.store.series_instances(series.series_uid):
            data = listener.spool.path(info.path).read_bytes()
            result[info.sop_instance_uid] = dataset_bytes(data)
    return result


def sent_datasets(files: tuple[Path, ...] | list[Path]) -> dict[str, bytes]:
    return {
        dcmread(f, stop_before_pixels=True).SOPInstanceUID: dataset_bytes(f.read_bytes())
        for f in files
    }


def test_store_is_bit_exact_and_complete_study_queues_one_job(tmp_path: Path) -> None:
    study = write_study(tmp_path / "in", slices=6, series_count=2)
    with running_listener(tmp_path / "data") as listener:
        assert send_files(listener.port, study.files) == [SUCCESS] * 12
        assert stored_datasets(listener) == sent_datasets(study.files)
        assert wait_for(lambda: len(listener.queue.list_jobs()) == 2), "no jobs after 0.5 s quiet"
        jobs = listener.queue.list_jobs()
        assert {j.series_uid for j in jobs} == set(study.series_uids)
        assert all(j.state is JobState.QUEUED and j.study_uid == study.study_uid for j in jobs)
        # A resend of the same bytes changes nothing and queues nothing.
        assert send_files(listener.port, study.files[:3]) == [SUCCESS] * 3
        time.sleep(1.0)
        assert len(listener.queue.list_jobs()) == 2
        assert listener.store.instance_count() == 12


def bad_files(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    good = to_bytes(ct_slice(generate_uid(), generate_uid(), 0))
    meta_end = len(good) - len(dataset_bytes(good))
    no_study = ct_slice(generate_uid(), generate_uid(), 1)
    del no_study.StudyInstanceUID
    files = {
        "truncated": good[: len(good) - 1000],
        "garbage": good[:meta_end] + bytes(range(256)) * 8,
        "missing Study Instance UID": to_bytes(no_study),
    }
    for name, data in files.items():
        (folder / f"{name}.dcm").write_bytes(data)
    return {name: folder / f"{name}.dcm" for name in files}


def test_bad_input_is_refused_with_a_logged_reason_and_the_server_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = bad_files(tmp_path / "bad")
    study = write_study(tmp_path / "in", slices=2)
    with running_listener(tmp_path / "data") as listener:
        files = [study.files[0], *bad.values(), study.files[1]]
        with caplog.at_level(logging.WARNING, logger="dicom_listener"):
            statuses = send_files(listener.port, files)
        assert statuses == [SUCCESS, *[CANNOT_UNDERSTAND] * len(bad), SUCCESS], statuses
        assert stored_datasets(listener) == sent_datasets(study.files), "good files lost"
        refusals = [r.getMessage() for r in caplog.records if "0xC210" in r.getMessage()]
        assert len(refusals) == len(bad), refusals
        assert any("truncated" in m for m in refusals)
        assert any("Study Instance UID" in m for m in refusals)
        assert association_accepted(listener.port, "TESTSCU"), "server stopped serving"
        assert list(listener.spool.temp.iterdir()) == []


def test_real_files_with_empty_uids_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = require_shared("ts_ct_dicom")
    files = sorted(folder.iterdir())[:3]
    with running_listener(tmp_path / "data") as listener:
        with caplog.at_level(logging.WARNING, logger="dicom_listener"):
            statuses = send_files(listener.port, files)
        assert statuses == [CANNOT_UNDERSTAND] * 3, statuses
        assert listener.store.instance_count() == 0
    assert any("SOP Instance UID" in r.getMessage() for r in caplog.records)


def test_unexpected_handler_error_answers_0xc211_and_association_survives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    study = write_study(tmp_path / "in", slices=2)
    with running_listener(tmp_path / "data") as listener:
        original = listener.store.record_instance
        calls = []

        def flaky(stored: object) -> object:
            calls.append(stored)
            if len(calls) == 1:
                raise RuntimeError("index on fire")
            return original(stored)  # type: ignore[arg-type]

        monkeypatch.setattr(listener.store, "record_instance", flaky)
        with caplog.at_level(logging.ERROR, logger="dicom_listener"):
            assert send_files(listener.port, study.files) == [UNEXPECTED, SUCCESS]
        assert any(r.exc_info for r in caplog.records), "traceback not logged"
        assert listener.store.instance_count() == 1


def test_disk_watermark_answers_0xa700_and_refuses_new_associations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = write_study(tmp_path / "in", slices=1)
    with running_listener(tmp_path / "data", min_free_disk_mb=100) as listener:
        monkeypatch.setattr(listener.spool, "free_mb", lambda: 50.0)
        assert send_files(listener.port, study.files) == [OUT_OF_RESOURCES]
        assert listener.store.instance_count() == 0
    with running_listener(tmp_path / "data2", min_free_disk_mb=10**9) as listener:
        assert not association_accepted(listener.port, "TESTSCU")


def test_allowlists_called_ae_and_max_associations(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_listener(tmp_path / "a", allowed_calling_ae_titles=["PACS"]) as listener:
        with caplog.at_level(logging.WARNING, logger="dicom_listener"):
            assert not association_accepted(listener.port, "INTRUDER")
        assert association_accepted(listener.port, "PACS")
        assert not association_accepted(listener.port, "PACS", called_ae="SOMEONE")
    assert any("INTRUDER" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)
    with running_listener(tmp_path / "b", allowed_networks=["10.0.0.0/8"]) as listener:
        assert not association_accepted(listener.port, "PACS")
    with running_listener(tmp_path / "c", allowed_networks=["127.0.0.0/8"]) as listener:
        assert association_accepted(listener.port, "PACS")
    with running_listener(tmp_path / "d", require_called_ae_title=False) as listener:
        assert association_accepted(listener.port, "PACS", called_ae="ANYTHING")


def test_max_associations(tmp_path: Path) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    with running_listener(tmp_path / "d", max_associations=1) as listener:
        ae = AE(ae_title="HOLDER")
        ae.add_requested_context(Verification)
        held = ae.associate("127.0.0.1", listener.port, ae_title="SPINESCREEN")
        try:
            assert held.is_established
            assert not association_accepted(listener.port, "SECOND")
        finally:
            held.release()
        assert wait_for(lambda: association_accepted(listener.port, "THIRD"))


def test_non_image_objects_are_acknowledged_and_stored_or_dropped(tmp_path: Path) -> None:
    folder = tmp_path / "sr"
    sr = write_study(folder, slices=1, modality="SR", sop_class_uid=SR_STORAGE)
    with running_listener(tmp_path / "keep") as listener:
        assert send_files(listener.port, sr.files) == [SUCCESS]
        assert listener.store.instance_count() == 1
        assert wait_for(lambda: listener.store.list_series()[0].rejection_reason is not None)
        assert listener.queue.list_jobs() == []
    with running_listener(tmp_path / "drop", store_non_image=False) as listener:
        assert send_files(listener.port, sr.files) == [SUCCESS]
        assert listener.store.instance_count() == 0


def make_certificates(folder: Path) -> dict[str, Path]:
    """A throwaway CA, a server and a client certificate, with the openssl CLI."""
    openssl = require_tool("openssl", "openssl")
    folder.mkdir()
    paths = {name: folder / name for name in ("ca.key", "ca.pem")}

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=Test CA",
        "-keyout",
        str(paths["ca.key"]),
        "-out",
        str(paths["ca.pem"]),
    )
    for role in ("server", "client"):
        key, csr, pem = (folder / f"{role}.{ext}" for ext in ("key", "csr", "pem"))
        ext = folder / f"{role}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={role}",
            "-keyout",
            str(key),
            "-out",
            str(csr),
        )
        run(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(paths["ca.pem"]),
            "-CAkey",
            str(paths["ca.key"]),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            str(ext),
            "-out",
            str(pem),
        )
        paths[f"{role}.key"], paths[f"{role}.pem"] = key, pem
    return paths


def test_tls_association_with_client_certificate(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    tls = {
        "cert_file": certs["server.pem"],
        "key_file": certs["server.key"],
        "ca_file": certs["ca.pem"],
        "require_client_cert": True,
    }
    study = write_study(tmp_path / "in", slices=2)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(certs["ca.pem"]))
    client.check_hostname = False
    client.load_cert_chain(certs["client.pem"], certs["client.key"])
    with running_listener(tmp_path / "data", tls=tls) as listener:
        assert send_files(listener.port, study.files, ssl_context=client) == [SUCCESS] * 2
        assert stored_datasets(listener) == sent_datasets(study.files)
        anonymous = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(certs["ca.pem"]))
        anonymous.check_hostname = False
        assert send_files(listener.port, study.files, ssl_context=anonymous) == [-1] * 2
        assert send_files(listener.port, study.files) == [-1] * 2, "plain TCP accepted under TLS"
        assert association_accepted(listener.port, "TESTSCU") is False
