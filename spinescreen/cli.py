"""The ``spinescreen`` command line.

Subcommands are the modules of :mod:`spinescreen.commands`, discovered at start-up. Each
module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(invocation) -> int``,
and optionally ``CONFIG_FLAGS`` mapping argument names to dotted configuration keys. Command
modules import only the standard library at module level (heavy imports such as torch,
onnxruntime and monai happen inside ``run``), so ``spinescreen --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import spinescreen.commands
from spinescreen import CLINICAL_DISCLAIMER, __version__
from spinescreen.errors import SpineScreenError

if TYPE_CHECKING:
    from spinescreen.config import Settings

log = logging.getLogger(__name__)

COMMON_FLAGS: Mapping[str, str] = {
    "data_dir": "data_dir",
    "log_level": "logging.level",
    "log_json": "logging.json_lines",
}


@dataclass
class Invocation:
    """Parsed arguments of one command plus lazy access to the resolved settings."""

    args: argparse.Namespace
    config_flags: Mapping[str, str]
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """Resolve configuration once: defaults, YAML, environment, then this command's flags."""
        if self._settings is None:
            from spinescreen.config import load_settings
            from spinescreen.logs import configure_logging

            flags = {**COMMON_FLAGS, **self.config_flags}
            overrides = {key: getattr(self.args, name, None) for name, key in flags.items()}
            self._settings = load_settings(self.args.config, overrides)
            cfg = self._settings.logging
            configure_logging(cfg.level, cfg.json_lines, cfg.file)
        return self._settings


def command_modules() -> list[ModuleType]:
    """The subcommand modules, in the order they declare (then by name)."""
    found = []
    for info in pkgutil.iter_modules(spinescreen.commands.__path__):
        if not info.name.startswith("_"):
            found.append(importlib.import_module(f"spinescreen.commands.{info.name}"))
    return sorted(found, key=lambda m: (getattr(m, "ORDER", 50), m.NAME))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spinescreen",
        description=(
            "Opportunistic vertebral compression fracture screening beside a PACS. "
            + CLINICAL_DISCLAIMER
        ),
    )
    parser.add_argument("-V", "--version", action="version", version=f"spinescreen {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("configuration")
    group.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file")
    group.add_argument("--data-dir", type=Path, metavar="DIR", help="data directory (./var)")
    group.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    group.add_argument(
        "--log-json", action="store_const", const=True, default=None, help="JSON-lines logs"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in command_modules():
        cmd = sub.add_parser(
            module.NAME, help=module.HELP, description=module.HELP, parents=[common]
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = args._module
    invocation = Invocation(args, getattr(module, "CONFIG_FLAGS", {}))
    try:
        return int(module.run(invocation))
    except SpineScreenError as exc:
        print(f"spinescreen {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"spinescreen {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
