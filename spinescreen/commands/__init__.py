"""Subcommands of ``spinescreen``; one module each, discovered by :mod:`spinescreen.cli`.

A module defines ``NAME``, ``HELP``, ``add_arguments(parser)``, ``run(invocation) -> int``
and optionally ``ORDER`` (position in ``--help``) and ``CONFIG_FLAGS`` (argument name ->
dotted configuration key). Import only the standard library at module level.
"""
