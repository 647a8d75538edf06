"""Export a trained run to TorchScript or torch.export (pdeop export RUN_DIR --format ... --out FILE)."""

from __future__ import annotations

import argparse
from pathlib import Path

from solvers.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach this command's arguments to parser."""
    parser.add_argument("run_dir", type=Path, help="run folder written by 'pdeop train'")
    parser.add_argument("--format", choices=("torchscript", "torch-export"), required=True,
                        help="torchscript (load with torch.jit.load) or torch-export (torch.export.load)")
    parser.add_argument("--out", type=Path, required=True, help="file to write (.pt / .pt2)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    from operators.training.export import example_inputs, export_surrogate
    from operators.training.runs import load_run

    if args.out.exists() and args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a directory; give a file name such as {args.out / 'model.pt'}")
    loaded = load_run(args.run_dir, args.checkpoint)
    protocol = loaded.metadata["protocol"]
    grid = tuple(loaded.metadata["grid"]["shape"])
    in_channels = protocol["t_in"] if protocol["variable"] else len(protocol["inputs"])
    inputs = example_inputs(in_channels, len(protocol["conditioning"]), grid)
    error = export_surrogate(loaded.surrogate, inputs, args.format, args.out)
    scale = float(loaded.surrogate(*inputs).abs().max().detach())
    if error > 1e-4 * max(scale, 1.0):
        raise RuntimeError(f"the exported program differs from the model by {error:.3g} (output scale {scale:.3g})")
    signature = "forward(x)" if len(inputs) == 1 else "forward(x, cond)"
    shape = "x: [batch, " + ", ".join(map(str, inputs[0].shape[1:])) + "]"
    print(f"wrote {args.out} ({args.format}, {signature} with {shape}; max difference to the model {error:.2g})")
    return 0
