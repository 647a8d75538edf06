"""The files of a training run folder, shared by the operator trainer and the physics-informed one.

A run folder holds ``run_config.json`` (the resolved configuration; a resume must use the same),
``training.csv`` / ``training.json`` (one row per finished epoch or logging step) and the
checkpoint folders ``best/`` and ``last/``. Checkpoints are staged in ``<name>.partial`` and swapped
in with two renames, so that ``<name>`` or ``<name>.old`` always exists whole.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from solvers.errors import ConfigError

RUN_CONFIG = "run_config.json"
#: per-epoch history; ``metrics.json`` is left to ``pdeop evaluate``
HISTORY_CSV, HISTORY_JSON = "training.csv", "training.json"


def start(run_dir: Path, config: dict[str, Any]) -> None:
    """Create ``run_dir`` for a new run and record ``config``.

    Raises
    ------
    ConfigError
        If the folder already holds a run (the user wants ``--resume`` or another ``--out``).
    """
    if (run_dir / "last").exists() or (run_dir / RUN_CONFIG).exists():
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / RUN_CONFIG, json.dumps(config, indent=1, sort_keys=True))


def resume_checkpoint(run_dir: Path, config: dict[str, Any]) -> Path | None:
    """The ``last`` checkpoint folder to resume ``run_dir`` from (None if no epoch finished yet).

    Raises
    ------
    ConfigError
        If ``run_dir`` holds no run, or ``config`` differs from the run's (the message names the
        first differing setting).
    """
    saved_path = run_dir / RUN_CONFIG
    if not saved_path.is_file():
        raise ConfigError(f"--resume: {run_dir} holds no run to resume ({RUN_CONFIG} is missing)")
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    difference = first_difference(saved, json.loads(json.dumps(config)))
    if difference:
        raise ConfigError(f"--resume: the config differs from the run's ({difference}); resume with the same "
                          f"config and overrides")
    for name in ("last", "last.old"):  # last.old: killed between the two renames of swap_in
        if (run_dir / name).is_dir():
            return run_dir / name
    return None


def read_config(run_dir: Path) -> dict[str, Any]:
    """The configuration recorded in ``run_dir`` (the plain mapping of ``run_config.json``).

    Raises
    ------
    ConfigError
        If ``run_dir`` is not a run folder.
    """
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a pdeop training run ({RUN_CONFIG} is missing)")
    return json.loads(path.read_text(encoding="utf-8"))


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The rows :func:`write_history` wrote (empty when none was written yet)."""
    path = Path(run_dir) / HISTORY_JSON
    if not path.is_file():
        return []
    return json.loads(path.read_text(encoding="utf-8"))["history"]


def save_checkpoints(run_dir: Path, save_model: Callable[[Path, str], None], save_state: Callable[[Path], None],
                     improved: bool) -> None:
    """Write ``last/`` (model and training state) and, when ``improved``, ``best/`` (model only).

    Parameters
    ----------
    run_dir
        The run folder.
    save_model
        ``save_model(folder, name)`` writes the model checkpoint into the new ``folder`` for the
        checkpoint ``name`` (``"last"`` or ``"best"``).
    save_state
        ``save_state(folder)`` adds the training state to the ``last`` checkpoint folder.
    improved
        Whether the score improved (then ``best/`` is replaced too).

    Each folder is written to ``<name>.partial`` and put in place by :func:`swap_in`, ``best/``
    first, so a kill at any point leaves whole checkpoints behind.
    """
    staging = run_dir / "last.partial"
    shutil.rmtree(staging, ignore_errors=True)
    save_model(staging, "last")
    save_state(staging)
    if improved:
        best_staging = run_dir / "best.partial"
        shutil.rmtree(best_staging, ignore_errors=True)
        save_model(best_staging, "best")
        swap_in(best_staging, run_dir / "best")
    swap_in(staging, run_dir / "last")


def swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` so that one of ``target`` / ``target.old`` always exists whole."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_history(run_dir: Path, history: list[dict[str, Any]], tensorboard: bool = False) -> None:
    """Write the per-epoch history as ``training.csv`` and ``training.json`` (and TensorBoard scalars).

    With ``tensorboard`` the rows are also written as event files to ``run_dir/tensorboard``
    (:mod:`operators.training.tensorboard_log`).
    """
    columns = list(dict.fromkeys(k for row in history for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    write_atomic(run_dir / HISTORY_CSV, buffer.getvalue())
    write_atomic(run_dir / HISTORY_JSON, json.dumps({"history": history}, indent=1))
    if tensorboard:
        from operators.training.tensorboard_log import write_tensorboard

        write_tensorboard(run_dir, history)


def first_difference(a: Any, b: Any, prefix: str = "") -> str:
    """``"key.path: old then, new now"`` for the first differing setting of two mappings, or ``""``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found:
                return found
        return ""
    return "" if a == b else f"{prefix.rstrip('.')}: {a!r} then, {b!r} now"
