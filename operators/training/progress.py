"""A run's progress record: started fresh, resumed from ``last/``, advanced by each epoch, saved with it.

The record is a plain dict (``epoch``, ``step``, ``history``, ``best_score``, ``elapsed``,
``segment_ends`` and, when set, ``stopped_early``, ``extended_at``, ``grad_scaler``) that ``last/``
stores with the training state (:mod:`.state`), so a resume continues exactly where the run stopped.
The trainer (:mod:`.trainer`) owns the model and the loop; this module owns what it records.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from operators.strict_json import check_fields
from operators.training import run_folder
from operators.training.schedules import stalled_epochs
from operators.training.state import load_training_state, save_training_state
from solvers.errors import ConfigError


def fresh(epochs: int) -> dict[str, Any]:
    """The progress of a run of ``epochs`` planned epochs before its first step."""
    return {"epoch": 0, "step": 0, "history": [], "best_score": math.inf, "elapsed": 0.0, "segment_ends": [epochs]}


def resume(run_dir: Path, config: Any, identity: dict[str, Any], surrogate: Any, optimizer: Any, device: Any,
           log: Callable[[str], None]) -> dict[str, Any]:
    """Load ``last/`` of ``run_dir`` into ``surrogate`` and ``optimizer`` and return its progress.

    A run whose config asks for more epochs than it planned is extended (a new schedule segment,
    early stopping cleared); a folder without a finished epoch starts from the beginning.

    Raises
    ------
    ConfigError
        If the folder is another run's or on other data (:func:`.run_folder.resume_checkpoint`), or
        the recorded progress is damaged or does not fit this run.
    """
    planned = run_folder.recorded_epochs(run_folder.read_config(run_dir)) or config.training.epochs
    last = run_folder.resume_checkpoint(run_dir, config.to_dict(), identity, extend_epochs=True)
    if last is None:
        log(f"no finished epoch in {run_dir}; starting from the beginning")
        return fresh(config.training.epochs)
    progress = load_training_state(last, surrogate, optimizer, device)
    check_fields(progress, {"epoch": "int", "step": "int", "history": "list", "best_score": "number",
                            "elapsed": "number"}, f"the progress recorded in {last}")
    ends = progress.get("segment_ends") or [planned]
    if not (isinstance(ends, list) and all(isinstance(e, int) and e >= 1 for e in ends)
            and ends == sorted(set(ends))):
        raise ConfigError(f"the progress recorded in {last} is damaged (segment_ends {ends!r}); start a new run")
    if config.training.epochs > ends[-1]:
        ends.append(config.training.epochs)
        progress["stopped_early"] = False
        progress["extended_at"] = progress["epoch"]
        log(f"extending {run_dir} from {ends[-2]} to {ends[-1]} epochs")
    progress["segment_ends"] = ends
    if not 0 <= progress["epoch"] <= config.training.epochs or progress["step"] < 0:
        raise ConfigError(f"the progress recorded in {last} (epoch {progress['epoch']}, step {progress['step']}) "
                          f"does not fit this run of {config.training.epochs} epochs")
    log(f"resuming {run_dir} after epoch {progress['epoch']}/{config.training.epochs}")
    return progress


def record_epoch(progress: dict[str, Any], row: dict[str, Any], early_stopping: Any) -> tuple[bool, int | None]:
    """Add a finished epoch's history ``row`` (with its ``seconds``) to ``progress``.

    Returns
    -------
    improved, stall
        Whether the score (``val_l2``, else ``train_loss``) beat the best so far, and the epochs without
        improvement when early stopping ends the run now (None otherwise; :func:`.schedules.stalled_epochs`).
    """
    progress["elapsed"] += row["seconds"]
    progress["epoch"] = row["epoch"]
    progress["history"].append(row)
    score = row.get("val_l2", row["train_loss"])
    improved = score < progress["best_score"]
    if improved:
        progress["best_score"] = score
    stall = stalled_epochs(progress, early_stopping)
    if stall is not None:
        progress["stopped_early"] = True
    return improved, stall


def save_epoch(run_dir: Path, config: Any, surrogate: Any, optimizer: Any, precision: Any,
               progress: dict[str, Any], improved: bool) -> None:
    """Write the history, ``last/`` (with the training state and the loss scaler's) and, if the score
    improved, ``best/``."""
    from operators.checkpoint import save

    if precision.state() is not None:
        progress["grad_scaler"] = precision.state()
    run_folder.save_checkpoints(
        run_dir, lambda folder, name: save(surrogate.operator, folder),
        lambda folder: save_training_state(folder, surrogate, optimizer, progress), improved)
    run_folder.write_history(run_dir, progress["history"], config.training.tensorboard)


def bar(epochs: int, initial: int):
    """A tqdm progress bar over the run's ``epochs`` on stderr, at ``initial`` epochs done."""
    import sys

    from tqdm import tqdm

    return tqdm(total=epochs, initial=initial, unit="epoch", file=sys.stderr, dynamic_ncols=True)


def saved(run_dir: Path, progress: dict[str, Any]) -> str:
    """What the run folder holds after a stop in the epoch after ``progress['epoch']``."""
    if progress["epoch"]:
        return f"{run_dir / 'last'} holds epoch {progress['epoch']} (--resume continues from it)"
    return "no epoch had finished, so no checkpoint was written"
