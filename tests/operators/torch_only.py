"""Check a saved program in a fresh interpreter that imports nothing but torch (no pdeop ops registered)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

#: how each export format is loaded back, as a Python expression of the file name ``path``
LOADERS = {"torchscript": "torch.jit.load(path)", "torch-export": "torch.export.load(path).module()"}


def assert_program_reproduces(fmt: str, program: Path, x: torch.Tensor, y: torch.Tensor, tol: float = 1e-5) -> None:
    """Load ``program`` (``torchscript`` or ``torch-export``) in a torch-only subprocess and check that it maps
    ``x`` to ``y`` within ``tol`` (absolute and relative), and that neither pdeop package was imported."""
    folder = Path(program).parent
    torch.save(x, folder / "x.pt")
    torch.save(y, folder / "y.pt")
    script = (f"import sys, torch; path = sys.argv[1]; p = {LOADERS[fmt]}; "
              "x = torch.load(sys.argv[2], weights_only=True); y = torch.load(sys.argv[3], weights_only=True); "
              f"torch.testing.assert_close(p(x), y, rtol={tol}, atol={tol}); "
              "assert 'operators' not in sys.modules and 'pde_data' not in sys.modules")
    subprocess.run([sys.executable, "-c", script, str(program), str(folder / "x.pt"), str(folder / "y.pt")],
                   check=True, cwd=folder, env={**os.environ, "OMP_NUM_THREADS": "1"})
