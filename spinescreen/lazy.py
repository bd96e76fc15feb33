"""Lazy package exports (PEP 562): a package's public names load their module on first use.

Packages whose modules import heavy libraries (torch, pynetdicom, SQLAlchemy) export through
this, so that importing a light submodule such as ``models.settings`` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``name`` from the module ``where[name]``."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
