"""``spinescreen status`` shows the outbox per destination and its dead letters; --retry-dead."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from dicom_listener import DeliveryState, Outbox, SqlStore
from dicom_listener.settings import DeliverySettings
from spinescreen.cli import main
from spinescreen.config import load_settings
from tests.test_delivery_outbox import PACS, result_files


def test_status_shows_deliveries_and_dead_letters_and_requeues_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(overrides={"data_dir": tmp_path / "data"}, environ={})
    delivery = DeliverySettings.model_validate(
        {**settings.delivery.model_dump(), "destinations": [PACS]}
    )
    study = generate_uid()
    store = SqlStore.open(settings.store.database)
    try:
        outbox = Outbox(store, delivery, settings.data_dir)
        outbox.submit(study, result_files(tmp_path / "work", study, count=2))
        claimed = {(d.destination, d.sop_instance_uid): d for d in outbox.claim_due(lease_s=60)}
        rows = sorted(claimed.values(), key=lambda d: (d.destination, d.id))
        for row in rows[:2]:  # folder: both done
            outbox.mark_done(row)
        late = rows[2].queued_at + delivery.give_up_after_s
        outbox.mark_failed(rows[2], "PACS@127.0.0.1:1: association rejected", now=late)
    finally:
        store.close()
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["status", "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "Deliveries (dead 1, done 2, sending 1)" in out, out
    assert "Dead letters (1;" in out and "association rejected" in out
    assert rows[2].sop_instance_uid in out

    assert main(["status", "--data-dir", str(tmp_path / "data"), "--retry-dead"]) == 0
    out = capsys.readouterr().out
    assert "Requeued 1 dead delivery" in out
    assert "Dead letters" not in out and "pending 1" in out, out
    store = SqlStore.open(settings.store.database)
    try:
        states = [d.state for d in Outbox(store, delivery, settings.data_dir).deliveries()]
    finally:
        store.close()
    assert states.count(DeliveryState.PENDING) == 1
