"""``spinescreen status`` on a store the listener filled, and ``listen`` flag wiring."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dicom_listener import open_listener
from spinescreen.cli import build_parser, main
from spinescreen.config import load_settings
from tests.listener_data import SR_STORAGE, listener_settings, send_files, write_study


def test_status_lists_studies_series_with_reasons_and_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(overrides={"data_dir": tmp_path}, environ={})
    ct = write_study(tmp_path / "ct", slices=3)
    sr = write_study(tmp_path / "sr", slices=1, modality="SR", sop_class_uid=SR_STORAGE)
    listener = open_listener(listener_settings(quiet_period_s=0.2), settings.store)
    listener.start()
    try:
        assert send_files(listener.port, [*ct.files, *sr.files]) == [0] * 4
        deadline = time.monotonic() + 10
        while len(listener.store.list_studies()) != 2 or any(
            s.state != "complete" for s in listener.store.list_studies()
        ):
            assert time.monotonic() < deadline, "studies did not complete"
            time.sleep(0.05)
    finally:
        listener.stop(drain_timeout_s=5)
        listener.store.close()
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["status", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Studies (2, 4 instances)" in out
    assert ct.series_uids[0] in out and sr.series_uids[0] in out
    assert "modality SR is not routed" in out
    assert "Jobs (queued 1)" in out


def test_status_without_a_store_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--data-dir", str(tmp_path / "empty")]) == 1
    assert "run 'spinescreen listen' first" in capsys.readouterr().err


def test_listen_flags_override_configuration(tmp_path: Path) -> None:
    from spinescreen.commands import listen

    args = build_parser().parse_args(
        ["listen", "--data-dir", str(tmp_path), "--port", "4242", "--ae-title", "SCREEN2"]
    )
    overrides = {key: getattr(args, name) for name, key in listen.CONFIG_FLAGS.items()}
    settings = load_settings(overrides=overrides, environ={})
    assert (settings.listener.port, settings.listener.ae_title) == (4242, "SCREEN2")
