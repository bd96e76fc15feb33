"""``spinescreen config``: print the resolved configuration (after YAML, environment, flags)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spinescreen.cli import Invocation

NAME = "config"
HELP = "print the resolved configuration as YAML (defaults, file, environment, flags)"
ORDER = 80


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check", action="store_true", help="only validate; print nothing when valid"
    )


def run(invocation: Invocation) -> int:
    from spinescreen.config import dump_settings

    settings = invocation.settings()
    if not invocation.args.check:
        print(dump_settings(settings), end="")
    return 0
