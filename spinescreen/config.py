"""One configuration flow: defaults -> YAML file -> environment -> command-line flags.

Everything is resolved and validated here, once, with pydantic. The defaults are the field
defaults of the section models (documented in ``configs/spinescreen.yaml``, which a test keeps
equal to them). Each layer is a nested mapping; later layers override earlier ones key by key.

* YAML: ``--config FILE`` or ``SPINESCREEN_CONFIG``.
* Environment: ``SPINESCREEN_<SECTION>__<KEY>=value`` (double underscore between levels,
  ``SPINESCREEN_DATA_DIR`` for top-level keys). Values are read as YAML scalars, so
  ``11112`` is a number, ``true`` a boolean and ``[A, B]`` a list.
* Flags: each command maps its flags to dotted keys (``--port`` -> ``listener.port``).

An unknown key or an invalid value raises :class:`~spinescreen.errors.ConfigError` naming the
key, the value, where it came from and what is allowed. Relative paths resolve against
``data_dir`` (itself relative to the working directory).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dicom_listener.settings import DeliverySettings, ListenerSettings, StoreSettings
from models.settings import ModelSettings
from pipeline.settings import AnalysisSettings, ServeSettings
from spinescreen.errors import ConfigError

ENV_PREFIX = "SPINESCREEN_"
# Environment variables with the prefix that are not configuration keys.
RESERVED_ENV = frozenset({"SPINESCREEN_CONFIG", "SPINESCREEN_REQUIRE_PEERS"})


class LoggingSettings(BaseModel):
    """Log output. Logs carry UIDs and AE titles, never patient names or IDs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_lines: bool = Field(False, description="One JSON object per line instead of text.")
    file: Path | None = Field(None, description="Also append logs to this file.")


class Settings(BaseModel):
    """The whole resolved configuration of one SpineScreen process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Path("./var")
    logging: LoggingSettings = LoggingSettings()
    listener: ListenerSettings = ListenerSettings()
    store: StoreSettings = StoreSettings()
    models: ModelSettings = ModelSettings()
    analysis: AnalysisSettings = AnalysisSettings()
    delivery: DeliverySettings = DeliverySettings()
    serve: ServeSettings = ServeSettings()


Layer = dict[str, Any]


def load_settings(
    config_file: Path | str | None = None,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve defaults, the YAML file, the environment and flag overrides into Settings.

    ``overrides`` maps dotted keys to values (``{"listener.port": 11112}``); ``None`` values
    mean "flag not given" and are skipped.
    """
    environ = os.environ if environ is None else environ
    merged: Layer = {}
    sources: dict[str, str] = {}
    file_path = config_file if config_file is not None else environ.get("SPINESCREEN_CONFIG")
    if file_path:
        _merge(merged, sources, _read_yaml(Path(file_path)), f"config file {file_path}")
    _merge(merged, sources, _env_layer(environ), "environment")
    flag_layer = _dotted_to_nested({k: v for k, v in (overrides or {}).items() if v is not None})
    _merge(merged, sources, flag_layer, "command line")
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, merged, sources)) from exc
    return resolve_paths(settings)


def resolve_paths(settings: Settings) -> Settings:
    """Return settings whose relative paths are anchored at the absolute ``data_dir``."""
    data_dir = settings.data_dir.expanduser().resolve()
    resolved = _resolve_model(settings, data_dir)
    assert isinstance(resolved, Settings)
    return resolved.model_copy(update={"data_dir": data_dir})


def dump_settings(settings: Settings) -> str:
    """The settings as YAML, the format ``--config`` reads."""
    return yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)


def _resolve_model(model: BaseModel, base: Path) -> BaseModel:
    updates: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            updates[name] = _resolve_model(value, base)
        elif isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
            updates[name] = [_resolve_model(v, base) for v in value]
        elif isinstance(value, Path) and not value.is_absolute() and name != "data_dir":
            updates[name] = base / value.expanduser()
    return model.model_copy(update=updates)


def _read_yaml(path: Path) -> Layer:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror}; check the path"
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of sections, got {type(data).__name__}"
        )
    return data


def _env_layer(environ: Mapping[str, str]) -> Layer:
    flat: dict[str, object] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        key = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        try:
            flat[key] = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            flat[key] = raw
    return _dotted_to_nested(flat)


def _dotted_to_nested(flat: Mapping[str, object]) -> Layer:
    nested: Layer = {}
    for dotted, value in flat.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _merge(into: Layer, sources: dict[str, str], layer: Mapping[str, Any], source: str) -> None:
    def walk(target: Layer, incoming: Mapping[str, Any], prefix: str) -> None:
        for key, value in incoming.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, Mapping) and isinstance(target.get(key), dict):
                walk(target[key], value, f"{dotted}.")
            else:
                target[key] = dict(value) if isinstance(value, Mapping) else value
                sources[dotted] = source
                _mark_children(sources, dotted, value, source)

    walk(into, layer, "")


def _mark_children(sources: dict[str, str], dotted: str, value: object, source: str) -> None:
    if isinstance(value, Mapping):
        for key, child in value.items():
            sources[f"{dotted}.{key}"] = source
            _mark_children(sources, f"{dotted}.{key}", child, source)


def _explain(exc: ValidationError, merged: Layer, sources: Mapping[str, str]) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        origin = _source_of(key, sources)
        if error["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(error["loc"][:-1]))
            lines.append(f"unknown configuration key '{key}' ({origin}); allowed here: {allowed}")
        else:
            value = _lookup(merged, error["loc"])
            lines.append(
                f"invalid value {value!r} for configuration key '{key}' ({origin}): {error['msg']}"
            )
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _source_of(key: str, sources: Mapping[str, str]) -> str:
    while key:
        if key in sources:
            source = sources[key]
            if source == "environment":
                return f"from environment {ENV_PREFIX}{key.upper().replace('.', '__')}"
            return f"from {source}"
        key = key.rpartition(".")[0]
    return "default"


def _allowed_keys(parent: tuple[int | str, ...]) -> list[str]:
    model: type[BaseModel] = Settings
    for part in parent:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def _lookup(tree: Mapping[str, Any], loc: tuple[int | str, ...]) -> object:
    node: Any = tree
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node
