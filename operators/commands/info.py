"""Describe a dataset file: problem, preset, shapes, completeness, seed, solver statistics, size."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach ``info``'s arguments to ``parser``."""
    parser.add_argument("file", help="dataset file written by pdeop generate")
    parser.add_argument("--json", action="store_true", help="print the description as JSON")


def run(args: argparse.Namespace) -> int:
    """Print the description."""
    from operators import strict_json
    from pde_data.info import describe, format_description

    info = describe(args.file)  # a foreign file may hold NaN attributes: strict JSON shows them as null + flag
    print(strict_json.dumps(info, indent=2) if args.json else format_description(info))
    return 0
