"""Optional TensorBoard view of a run's history (``training.tensorboard: true``).

The history rows (``training.json``) are the record; the event files in ``RUN_DIR/tensorboard`` are
rewritten from all of them at every save, staged and swapped in like the checkpoints. A resumed run
therefore shows exactly its history, without the duplicate steps that appending after a kill would
leave. Each numeric column of a row becomes a scalar tag at the row's ``epoch`` (operator training)
or ``step`` (physics-informed training).

``tensorboard`` is an optional dependency (``pip install tensorboard``); only
:func:`check_available` runs at configuration time, and it imports nothing.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pde_data.config import check

FOLDER = "tensorboard"
_STEP_KEYS = ("epoch", "step")


def check_available(field: str) -> None:
    """Raise :class:`~solvers.errors.ConfigError` naming ``field`` if ``tensorboard`` is not installed."""
    check(importlib.util.find_spec("tensorboard") is not None,
          f"{field} is true but the 'tensorboard' package is not installed; "
          f"run 'pip install tensorboard' or set {field}=false")


def write_tensorboard(run_dir: Path, history: Sequence[dict[str, Any]]) -> Path:
    """Write every history row as TensorBoard scalars to ``run_dir/tensorboard`` (replacing it).

    Returns the folder.
    """
    from torch.utils.tensorboard import SummaryWriter

    from operators.training.run_folder import swap_in

    target = run_dir / FOLDER
    staging = run_dir / f"{FOLDER}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    writer = SummaryWriter(log_dir=str(staging))
    try:
        for row in history:
            step = int(next(row[key] for key in _STEP_KEYS if key in row))
            for tag, value in row.items():
                if tag not in _STEP_KEYS and isinstance(value, (int, float)) and math.isfinite(value):
                    writer.add_scalar(tag, float(value), step)
    finally:
        writer.close()
    swap_in(staging, target)
    return target
