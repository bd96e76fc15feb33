"""The ``spinescreen`` command line: discovery, help, version, config errors and exit codes."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from spinescreen import __version__
from spinescreen.cli import command_modules, main
from spinescreen.logs import JsonFormatter, configure_logging

REPO = Path(__file__).resolve().parents[1]


def test_every_command_module_is_well_formed() -> None:
    names = [m.NAME for m in command_modules()]
    assert len(names) == len(set(names)), names
    assert {"version", "config"} <= set(names)
    for module in command_modules():
        assert callable(module.add_arguments) and callable(module.run)
        assert module.HELP


def run_and_list_heavy_imports(code: str, heavy: tuple[str, ...]) -> str:
    """Run ``code`` in a fresh interpreter; its output plus the heavy modules it imported."""
    probe = f"\nimport sys\nprint('HEAVY', [m for m in {heavy!r} if m in sys.modules])\n"
    return subprocess.run(
        [sys.executable, "-c", code + probe], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout


def test_help_lists_commands_and_does_not_import_heavy_libraries() -> None:
    code = (
        "from spinescreen.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    out = run_and_list_heavy_imports(
        code, ("torch", "onnxruntime", "monai", "SimpleITK", "pydantic")
    )
    assert "version" in out and "config" in out
    assert "HEAVY []" in out, out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version", "--short"]) == 0
    assert capsys.readouterr().out.strip() == __version__
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert "pydicom" in out and "NOT FOR CLINICAL USE" in out


def test_config_error_exit_code_and_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("serve:\n  wrokers: 2\n")
    assert main(["config", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "unknown configuration key 'serve.wrokers'" in err


def test_config_prints_resolved_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPINESCREEN_SERVE__WORKERS", "5")
    assert main(["config", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"data_dir: {tmp_path.resolve()}" in out
    assert "workers: 5" in out


def test_json_log_lines_carry_context_only() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "stored %s", ("1.2.3",), None)
    record.study_uid = "1.2.3"
    record.patient_name = "DOE^JANE"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "stored 1.2.3"
    assert entry["study_uid"] == "1.2.3"
    assert "patient_name" not in entry


def test_log_records_go_to_the_stderr_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler follows sys.stderr: a stream swapped and closed after logging was set up
    (as a test runner's capture is) neither swallows records nor raises on them."""
    import io

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("INFO")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("spinescreen.test").info("after the swap")
    assert "after the swap" in second.getvalue()
    assert "Logging error" not in second.getvalue()


def test_configuration_loads_without_heavy_libraries() -> None:
    """Every command resolves its configuration first; that must not cost seconds."""
    code = "from spinescreen.config import load_settings\nload_settings(environ={})"
    heavy = ("torch", "onnxruntime", "monai", "pynetdicom", "sqlalchemy", "SimpleITK", "highdicom")
    out = run_and_list_heavy_imports(code, heavy)
    assert "HEAVY []" in out, out
