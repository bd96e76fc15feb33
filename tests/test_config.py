"""The one configuration flow: defaults < YAML < environment < flags, validated with names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spinescreen.config import Settings, dump_settings, load_settings
from spinescreen.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_documented_defaults_equal_code_defaults() -> None:
    documented = yaml.safe_load((REPO / "configs" / "spinescreen.yaml").read_text())
    code = Settings().model_dump(mode="json")
    assert documented == code, "configs/spinescreen.yaml drifted from the Settings defaults"


def test_unknown_key_in_file_names_key_file_and_allowed(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "listener:\n  prot: 104\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    message = str(err.value)
    assert "'listener.prot'" in message
    assert str(cfg) in message
    assert "port" in message and "ae_title" in message


def test_unknown_section(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "listner:\n  port: 104\n")
    with pytest.raises(ConfigError, match=r"unknown configuration key 'listner'"):
        load_settings(cfg, environ={})


def test_unknown_environment_key_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="SPINESCREEN_LISTENER__PROT"):
        load_settings(environ={"SPINESCREEN_LISTENER__PROT": "104"})


def test_bad_value_names_key_value_and_rule(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "models:\n  backend: tensorflow\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    message = str(err.value)
    assert "'models.backend'" in message and "'tensorflow'" in message
    assert "onnxruntime" in message and "torch" in message


def test_out_of_range_port_from_flag() -> None:
    with pytest.raises(ConfigError, match=r"70000.*listener\.port.*command line.*65535"):
        load_settings(overrides={"listener.port": 70000}, environ={})


def test_env_overrides_yaml_and_flags_override_env(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "listener:\n  port: 2000\n  ae_title: FROMFILE\n")
    env = {"SPINESCREEN_LISTENER__PORT": "3000"}
    assert load_settings(cfg, environ={}).listener.port == 2000
    from_env = load_settings(cfg, environ=env)
    assert from_env.listener.port == 3000
    assert from_env.listener.ae_title == "FROMFILE"  # untouched keys keep the file's value
    from_flag = load_settings(cfg, overrides={"listener.port": 4000}, environ=env)
    assert from_flag.listener.port == 4000
    # A flag that was not given (None) does not override.
    assert load_settings(cfg, overrides={"listener.port": None}, environ=env).listener.port == 3000


def test_config_file_from_environment(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "serve:\n  workers: 3\n")
    assert load_settings(environ={"SPINESCREEN_CONFIG": str(cfg)}).serve.workers == 3


def test_relative_paths_resolve_against_data_dir(tmp_path: Path) -> None:
    settings = load_settings(overrides={"data_dir": tmp_path / "data"}, environ={})
    assert settings.data_dir == (tmp_path / "data").resolve()
    assert settings.store.spool_dir == settings.data_dir / "spool"
    assert settings.store.database == settings.data_dir / "spinescreen.db"
    absolute = load_settings(
        overrides={"data_dir": tmp_path, "store.spool_dir": "/srv/spool"}, environ={}
    )
    assert absolute.store.spool_dir == Path("/srv/spool")


def test_environment_values_are_typed() -> None:
    settings = load_settings(
        environ={"SPINESCREEN_LOGGING__JSON_LINES": "true", "SPINESCREEN_SERVE__WORKERS": "4"}
    )
    assert settings.logging.json_lines is True
    assert settings.serve.workers == 4


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.yaml", environ={})
    bad = write(tmp_path / "bad.yaml", "listener: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad, environ={})
    listy = write(tmp_path / "list.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_settings(listy, environ={})


def test_dump_round_trips(tmp_path: Path) -> None:
    settings = load_settings(overrides={"data_dir": tmp_path, "listener.port": 4242}, environ={})
    dumped = write(tmp_path / "dumped.yaml", dump_settings(settings))
    assert load_settings(dumped, environ={}) == settings
