"""Bench (not yet available)."""

from __future__ import annotations

import argparse

from solvers.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach this command's arguments to parser."""


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    raise ConfigError("pdeop bench is not available yet")
