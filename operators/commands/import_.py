"""Convert a published dataset file (FNO .mat, PDEBench, PDEArena, exponax .npy) into a pdeop dataset file.

Example: pdeop import ns_V1e-3_N5000_T50.mat --out data/ns_1e-3.h5 --set viscosity=1e-3
The layout is detected from the arrays' names and shapes (or named with --format); --set gives what the
file does not record (viscosity=..., problem=..., periodic=true, dt=...). The output records the source
path and its SHA-256.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach ``import``'s arguments to ``parser``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("source", type=Path, help="the file to convert")
    parser.add_argument("--out", type=Path, required=True, help="pdeop dataset file to write (.h5)")
    parser.add_argument("--format", dest="fmt", metavar="NAME", help="layout of the source (default: detected)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="what the file does not record, e.g. --set viscosity=1e-3 (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--quiet", action="store_true", help="no messages")
    plain_help = parser.format_help
    parser.format_help = lambda: plain_help() + format_listing()  # type: ignore[method-assign]


def format_listing() -> str:
    """The known layouts (read when help is shown)."""
    from pde_data.importers.plan import formats

    rows = formats()
    width = max(len(name) for name in rows)
    return "\nformats:\n" + "".join(f"  {name:<{width}}  {cls.summary}\n" for name, cls in rows.items())


def run(args: argparse.Namespace) -> int:
    """Convert the file and say what was written."""
    from pde_data.importers.convert import import_dataset

    log = None if args.quiet else (lambda message: print(message, file=sys.stderr))
    result = import_dataset(args.source, args.out, fmt=args.fmt, overrides=args.overrides,
                            overwrite=args.overwrite, log=log)
    if not args.quiet:
        print(f"wrote {result['path']}: {result['samples']} samples of {result['problem']} from the "
              f"{result['format']} layout in {result['seconds']:.1f} s (source sha256 {result['source_sha256'][:16]}...)",
              file=sys.stderr)
    return 0
