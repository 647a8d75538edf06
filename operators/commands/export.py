"""Export a trained run to TorchScript or torch.export (pdeop export RUN_DIR --format ... --out FILE).

Operator runs export one surrogate call (:mod:`operators.training.export`); physics-informed runs
(a ``pde:`` config) export their network on physical coordinates (:mod:`operators.physics.export`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach this command's arguments to parser."""
    parser.add_argument("run_dir", type=Path, help="run folder written by 'pdeop train'")
    parser.add_argument("--format", choices=("torchscript", "torch-export"), required=True,
                        help="torchscript (load with torch.jit.load) or torch-export (torch.export.load)")
    parser.add_argument("--out", type=Path, required=True, help="file to write (.pt / .pt2)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    from operators.atomic_files import check_output_file
    from operators.physics.evaluation import is_physics_run
    from operators.training.export import export_run
    from operators.training.run_folder import read_config
    from operators.training.runs import load_run

    check_output_file(args.out, args.overwrite)
    read_config(args.run_dir)  # a run folder at all, before anything else
    if is_physics_run(args.run_dir):
        from operators.physics.export import export_physics_run

        result = export_physics_run(args.run_dir, args.format, args.out, args.checkpoint, overwrite=args.overwrite)
    else:
        result = export_run(load_run(args.run_dir, args.checkpoint), args.format, args.out, overwrite=args.overwrite)
    print(f"wrote {args.out} ({args.format}, {result.signature} with {result.shape}; max difference to the "
          f"model {result.error:.2g})")
    return 0
