"""The outbox state machine: idempotent submit, backoff, dead letter, restart, folder delivery."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from pydicom import dcmread
from pydicom.uid import generate_uid

from dicom_listener import DeliveryState, DeliveryWorker, Outbox, SqlStore
from dicom_listener.settings import DeliverySettings
from spinescreen.errors import DeliveryError
from tests.listener_data import ct_slice

PACS = {"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": 1}


def result_files(folder: Path, study_uid: str, count: int = 2) -> list[Path]:
    """``count`` small valid DICOM files of ``study_uid`` (stand-ins for SR/SEG/key image)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        ds = ct_slice(study_uid, generate_uid(), index, size=8)
        path = folder / f"result{index}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def open_outbox(data_dir: Path, **settings: object) -> Outbox:
    store = SqlStore.open(data_dir / "index.db")
    values: dict[str, object] = {"outbox_dir": data_dir / "outbox", "retry_base_s": 30.0}
    values.update(settings)
    return Outbox(store, DeliverySettings.model_validate(values), data_dir)


def test_submit_is_idempotent_and_keeps_a_durable_copy(tmp_path: Path) -> None:
    study = generate_uid()
    files = result_files(tmp_path / "work", study)
    outbox = open_outbox(tmp_path / "data", destinations=[PACS])
    try:
        first = outbox.submit(study, files, job_id=7)
        again = outbox.submit(study, files, job_id=7)
        rows = outbox.deliveries()
    finally:
        outbox.store.close()
    assert first == again, "re-submitting the same SOP Instance UIDs must add no rows"
    assert len(rows) == 2 * 2, f"2 objects x (folder, pacs) = 4 rows, got {len(rows)}"
    assert {r.destination for r in rows} == {"folder", "pacs"}
    for row in rows:
        assert row.state == DeliveryState.PENDING and row.job_id == 7
        assert row.path.is_relative_to(tmp_path / "data" / "results" / study)
        assert row.path.name == f"CT_{row.sop_instance_uid}.dcm"
        assert dcmread(row.path).SOPInstanceUID == row.sop_instance_uid


def test_submit_refuses_an_object_of_another_study(tmp_path: Path) -> None:
    files = result_files(tmp_path / "work", generate_uid(), count=1)
    outbox = open_outbox(tmp_path / "data")
    try:
        with pytest.raises(DeliveryError, match="belongs to study"):
            outbox.submit(generate_uid(), files)
        assert outbox.deliveries() == []
    finally:
        outbox.store.close()


def test_backoff_doubles_to_the_cap_then_dead_after_give_up(tmp_path: Path) -> None:
    study = generate_uid()
    files = result_files(tmp_path / "work", study, count=1)
    outbox = open_outbox(
        tmp_path / "data", folder=False, destinations=[PACS], retry_max_s=200.0, give_up_after_s=600
    )
    try:
        outbox.submit(study, files)
        now = outbox.deliveries()[0].queued_at
        delays = []
        state = DeliveryState.PENDING
        while state == DeliveryState.PENDING:
            (claimed,) = outbox.claim_due(lease_s=60, now=now)
            state = outbox.mark_failed(claimed, "association rejected", now=now)
            row = outbox.deliveries()[0]
            delays.append(round(row.next_attempt_at - now, 6))
            assert outbox.claim_due(lease_s=60, now=row.next_attempt_at - 0.01) == [], "not due yet"
            now = row.next_attempt_at
        dead = outbox.deliveries(DeliveryState.DEAD)
        assert delays[:5] == [30.0, 60.0, 120.0, 200.0, 200.0], f"backoff schedule {delays}"
        # failures at +0, 30, 90, 210, 410, 610 s: the one at 610 s >= 600 s gives up
        assert len(delays) == 6, f"dead after 6 attempts (610 s >= 600 s), got {len(delays)}"
        assert len(dead) == 1 and dead[0].attempts == 6
        assert dead[0].last_error == "association rejected"
        assert outbox.claim_due(lease_s=60, now=now + 1e6) == [], "a dead row is never claimed"
        assert outbox.retry_dead(now=now) == 1
        (requeued,) = outbox.claim_due(lease_s=60, now=now)
        assert outbox.mark_failed(requeued, "still down", now=now + 1) == DeliveryState.PENDING
    finally:
        outbox.store.close()


def test_a_sending_row_survives_a_restart_and_is_sent_again(tmp_path: Path) -> None:
    study = generate_uid()
    files = result_files(tmp_path / "work", study, count=1)
    outbox = open_outbox(tmp_path / "data", folder=False, destinations=[PACS])
    outbox.submit(study, files)
    (claimed,) = outbox.claim_due(lease_s=600)
    assert outbox.claim_due(lease_s=600) == [], "a leased row is not claimed twice"
    outbox.store.close()  # the process dies while sending

    reopened = open_outbox(tmp_path / "data", folder=False, destinations=[PACS])
    try:
        assert [r.state for r in reopened.deliveries()] == [DeliveryState.SENDING]
        assert reopened.claim_due(lease_s=600, now=claimed.next_attempt_at + 601) != [], (
            "an expired lease is claimable"
        )
        assert reopened.requeue_interrupted() == 1
        (again,) = reopened.claim_due(lease_s=600)
        assert again.sop_instance_uid == claimed.sop_instance_uid
        reopened.mark_done(again)
        reopened.mark_failed(claimed, "late answer of the first claim")
        (done,) = reopened.deliveries()
        assert done.state == DeliveryState.DONE and done.attempts == 1, "done is final"
    finally:
        reopened.store.close()


def test_folder_destination_writes_one_file_per_object(tmp_path: Path) -> None:
    study = generate_uid()
    files = result_files(tmp_path / "work", study, count=3)
    outbox = open_outbox(tmp_path / "data")
    worker = DeliveryWorker(outbox, outbox.settings)
    try:
        outbox.submit(study, files)
        assert worker.deliver_due() == 3
        assert worker.deliver_due() == 0, "delivered rows are not sent again"
        rows = outbox.deliveries()
    finally:
        outbox.store.close()
    folder = tmp_path / "data" / "outbox" / study
    expected = sorted(f"CT_{r.sop_instance_uid}.dcm" for r in rows)
    assert sorted(p.name for p in folder.iterdir()) == expected, "no temporary files left"
    assert all(r.state == DeliveryState.DONE for r in rows)
    for row in rows:
        assert (folder / row.path.name).read_bytes() == row.path.read_bytes()


def test_unreachable_destination_is_retried_not_fatal(tmp_path: Path) -> None:
    study = generate_uid()
    files = result_files(tmp_path / "work", study, count=1)
    outbox = open_outbox(
        tmp_path / "data", folder=False, destinations=[PACS], association_timeout_s=2.0
    )
    worker = DeliveryWorker(outbox, outbox.settings)
    try:
        outbox.submit(study, files)
        assert worker.deliver_due() == 0
        (row,) = outbox.deliveries()
    finally:
        outbox.store.close()
    assert row.state == DeliveryState.PENDING and row.attempts == 1
    assert row.last_error is not None and "127.0.0.1:1" in row.last_error, row.last_error


def test_destination_names_are_unique_and_folder_is_reserved() -> None:
    with pytest.raises(ValidationError, match="reserved"):
        DeliverySettings.model_validate({"destinations": [{**PACS, "name": "folder"}]})
    with pytest.raises(ValidationError, match="used twice"):
        DeliverySettings.model_validate({"destinations": [PACS, PACS]})
    with pytest.raises(ValidationError, match="twice"):
        DeliverySettings.model_validate({"send": ["sr", "sr"]})
