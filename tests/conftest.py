"""Shared test fixtures.

External peers (dcmtk, Orthanc, dciodvfy) are real programs. A test that needs one calls
:func:`require_tool`: it skips with a clear reason when the program is missing, except when
``SPINESCREEN_REQUIRE_PEERS=1`` (CI), where a missing peer is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

SHARED_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def peers_required() -> bool:
    return os.environ.get("SPINESCREEN_REQUIRE_PEERS", "") not in ("", "0", "false")


def require_tool(name: str, package: str) -> str:
    """Path of the executable ``name``; skip (or fail in CI) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: install the Debian package '{package}'"
        if peers_required():
            pytest.fail(f"{message} (SPINESCREEN_REQUIRE_PEERS=1)")
        pytest.skip(message)
    return path


def require_shared(relative: str) -> Path:
    """A folder of ../shared/data/real; skip when absent (a user's clone has no ../shared)."""
    path = SHARED_REAL / relative
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (only present beside the project checkout)")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees configuration from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("SPINESCREEN_") and name != "SPINESCREEN_REQUIRE_PEERS":
            monkeypatch.delenv(name)
