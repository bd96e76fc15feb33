"""``spinescreen version``: the product version and the versions of the libraries it runs on."""

from __future__ import annotations

import argparse
import platform
from importlib import metadata
from typing import TYPE_CHECKING

from spinescreen import CLINICAL_DISCLAIMER, __version__

if TYPE_CHECKING:
    from spinescreen.cli import Invocation

NAME = "version"
HELP = "print the SpineScreen version and its key library versions"
ORDER = 90

LIBRARIES = (
    "pydicom",
    "pynetdicom",
    "highdicom",
    "SimpleITK",
    "numpy",
    "torch",
    "monai",
    "onnxruntime",
    "pydantic",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--short", action="store_true", help="only the version number")


def run(invocation: Invocation) -> int:
    if invocation.args.short:
        print(__version__)
        return 0
    print(f"spinescreen {__version__} (Python {platform.python_version()})")
    for name in LIBRARIES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        print(f"  {name:<12} {version}")
    print(CLINICAL_DISCLAIMER)
    return 0
