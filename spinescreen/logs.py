"""Logging set-up: human text or JSON lines, to stderr and optionally a file.

Modules log through ``logging.getLogger(__name__)`` with lazy ``%`` arguments. Logs carry
UIDs, AE titles and file names, never patient names or IDs: code must not pass them, and
:class:`JsonFormatter` only emits the message and whitelisted context fields.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Context fields a log call may attach with ``extra={...}``; anything else is dropped.
CONTEXT_FIELDS = (
    "study_uid",
    "series_uid",
    "sop_instance_uid",
    "calling_ae",
    "called_ae",
    "peer",
    "job_id",
    "stage",
    "duration_s",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and context fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            if hasattr(record, field):
                entry[field] = getattr(record, field)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes to whatever ``sys.stderr`` is when a record is emitted,
    not the one it was made with: a process that swaps its stderr (a test runner capturing
    output, a daemon redirecting it) never has records written to a closed stream."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it; sys.stderr wins
        pass


def configure_logging(
    level: str = "INFO", json_lines: bool = False, file: Path | None = None
) -> None:
    """Install handlers on the root logger (replacing earlier ones from this function)."""
    formatter: logging.Formatter = (
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    handlers: list[logging.Handler] = [_StderrHandler()]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_spinescreen", False)]:
        root.removeHandler(old)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._spinescreen = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("pynetdicom", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
