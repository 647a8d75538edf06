"""The run folder: the one place that decides what a training run may write, replace and delete.

Shared by the operator trainer and the physics-informed trainer (and meant for every later trainer:
distributed, online, extended runs). A run folder holds

``run_config.json``
    the resolved configuration (a resume must use the same);
``dataset.json``
    the identity of the training data (:mod:`.dataset_identity`; a resume must find the same data);
``training.csv`` / ``training.json``
    one row per finished epoch or logging step;
``best/``, ``last/``
    checkpoints (:mod:`operators.checkpoint`); ``last/`` also holds the training state;
``run.lock``
    the lock of the trainer working in the folder (holds its PID);

and, written by other commands, ``metrics.json``, ``plots/``, ``tensorboard/`` and the like.

Rules
-----
* **Claim before writing.** :func:`claim` checks the folder and takes an exclusive lock
  (``flock`` on ``run.lock``, released by the kernel when the process dies, even by kill -9). A
  second trainer aimed at the same folder is refused naming the PID of the first. A new run needs
  a new or empty folder (or one holding only pdeop's lock); a folder holding anything else is
  refused, naming what it holds. ``resume`` needs a folder holding a run.
* **Stage, then swap.** Checkpoints are written to hidden folders named after this process
  (``.last.partial-PID-RANDOM``) and swapped in with two renames: the previous checkpoint moves to
  ``.last.old-PID-RANDOM`` and is deleted only if it holds nothing but checkpoint files. A kill at
  any moment leaves a whole checkpoint (in place, or staged / aside until :func:`claim` puts it
  back); files are written through :mod:`operators.atomic_files`.
* **Delete only what is provably ours.** Leftovers of killed writers are removed only when their
  writer (the PID in the name) is dead and they hold nothing but pdeop files.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from operators import strict_json
from operators.atomic_files import write_text
from operators.checkpoint_folder import (CONFIG, TRAINING_STATE_FILES, WEIGHTS, holds_only_checkpoint_files,
                                         remove_checkpoint)
from pde_data.output_files import LockHeld, check_folder_writable, exclusive_lock, owner, stale, temp_path
from solvers.errors import ConfigError

RUN_CONFIG = "run_config.json"
DATASET = "dataset.json"
LOCK = "run.lock"
#: per-epoch history; ``metrics.json`` is left to ``pdeop evaluate``
HISTORY_CSV, HISTORY_JSON = "training.csv", "training.json"
CHECKPOINTS = ("best", "last")


# ---------------------------------------------------------------------------- claiming a folder
class RunLock:
    """An exclusive claim on a run folder (see :func:`claim`); release with :meth:`release` or ``with``."""

    def __init__(self, run_dir: Path, fd: int) -> None:
        self.run_dir = run_dir
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the folder up (the lock file stays; it is pdeop's)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def check_target(run_dir: Path, resume: bool) -> None:
    """Refuse a run folder that cannot take a new run (or, with ``resume``, holds none); writes nothing.

    Raises
    ------
    ConfigError
        If ``run_dir`` is a file; for a new run, if it holds a run (pass ``--resume``) or anything
        that is not pdeop's (named); for a resume, if it holds no run.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file, not a run folder; choose another --out")
    check_folder_writable(run_dir, "--out")
    holds_run = (run_dir / RUN_CONFIG).is_file()
    if resume:
        if not holds_run:
            raise ConfigError(f"--resume: {run_dir} holds no run to resume ({RUN_CONFIG} is missing)")
        return
    if holds_run or (run_dir / "last").exists():
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    if run_dir.is_dir():
        foreign = sorted(p.name for p in run_dir.iterdir() if not _own_leftover(p))
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            noun = "entry that is" if len(foreign) == 1 else "entries that are"
            raise ConfigError(f"--out {run_dir} holds {len(foreign)} {noun} not a pdeop run: {shown}; "
                              f"choose a new or empty folder")


def _own_leftover(path: Path) -> bool:
    """pdeop's own files in a folder without a run: the lock, a dataset record, staged temporaries."""
    return path.name in (LOCK, DATASET) or (path.name.startswith(".") and owner(path) is not None)


def claim(run_dir: str | os.PathLike, resume: bool) -> RunLock:
    """Check ``run_dir`` (:func:`check_target`), create it, lock it and finish any interrupted swap.

    Parameters
    ----------
    run_dir
        The run folder.
    resume
        Whether the caller continues the run in it (else it starts a new one).

    Returns
    -------
    RunLock
        Held until released (use as a context manager around the training).

    Raises
    ------
    ConfigError
        As :func:`check_target`, if the folder cannot be created, or if another process holds it
        (the message names its PID).
    """
    run_dir = Path(run_dir)
    check_target(run_dir, resume)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = exclusive_lock(run_dir / LOCK)  # the lock of pde_data.output_files: PID recorded, freed at any death
    except LockHeld as held:
        raise ConfigError(f"{run_dir} is being trained by {held.holder}; wait for it to finish, or choose "
                          f"another --out") from None
    except OSError as exc:
        raise ConfigError(f"cannot create and lock the run folder {run_dir} ({exc.strerror or exc})") from None
    lock = RunLock(run_dir, fd)
    try:
        check_target(run_dir, resume)  # again, under the lock: another trainer may have started meanwhile
        recover(run_dir)
    except BaseException:
        lock.release()
        raise
    return lock


def recover(run_dir: Path) -> None:
    """Put back a checkpoint a kill left staged or aside, and remove dead writers' leftovers.

    For ``best`` and ``last``: when the folder is missing (a kill between the two renames of
    :func:`swap_in`), the newest complete staged copy, else the copy moved aside, takes its place.
    Hidden leftovers are removed only when their writer is dead and they hold nothing but pdeop
    checkpoint files (folders) or are staged copies of the run's own files.
    """
    for name in CHECKPOINTS:
        if (run_dir / name).exists():
            continue
        for kind in ("partial", "old"):
            candidates = sorted(stale(run_dir.glob(f".{name}.{kind}-*")), key=_mtime, reverse=True)
            complete = [c for c in candidates if _complete(c, name)]
            if complete:
                os.replace(complete[0], run_dir / name)
                break
    for entry in stale(p for p in run_dir.glob(".*") if owner(p) is not None):
        base = entry.name.lstrip(".").split(".", 1)[0]
        if entry.is_dir() and base in CHECKPOINTS:
            remove_checkpoint(entry)
        elif entry.is_file() and base in _RUN_FILE_STEMS and ".tmp-" in entry.name:
            entry.unlink()


#: run files written through a staged temporary (their leftovers may be removed)
_RUN_FILE_STEMS = frozenset(Path(name).stem for name in (RUN_CONFIG, "dataset.json", "training.csv", "training.json"))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _complete(folder: Path, name: str) -> bool:
    """A staged or set-aside checkpoint with all its files (the training state, written last, for ``last``)."""
    needed = [WEIGHTS, CONFIG] + (list(TRAINING_STATE_FILES) if name == "last" else [])
    return folder.is_dir() and holds_only_checkpoint_files(folder) and all((folder / f).is_file() for f in needed)


# ---------------------------------------------------------------------------- starting and resuming
def start(run_dir: Path, config: dict[str, Any], dataset: dict[str, Any] | None = None) -> None:
    """Record ``config`` (and the ``dataset`` identity) in ``run_dir`` for a new run.

    Call under :func:`claim`; creates the folder when called alone.

    Raises
    ------
    ConfigError
        If the folder already holds a run (the user wants ``--resume`` or another ``--out``) or
        anything else (named).
    """
    run_dir = Path(run_dir)
    check_target(run_dir, resume=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    if dataset is not None:
        write_text(run_dir / DATASET, strict_json.dumps(dataset, sort_keys=True))
    write_text(run_dir / RUN_CONFIG, strict_json.dumps(config, sort_keys=True))


def resume_checkpoint(run_dir: Path, config: dict[str, Any], dataset: dict[str, Any] | None = None) -> Path | None:
    """The ``last`` checkpoint folder to resume ``run_dir`` from (None if no epoch finished yet).

    Parameters
    ----------
    run_dir
        The run folder (claimed).
    config
        The configuration of the resuming process; must equal the recorded one.
    dataset
        The identity of the data it loaded (:func:`.dataset_identity.identify`); must match the
        recorded one when the run recorded one.

    Raises
    ------
    ConfigError
        If ``run_dir`` holds no run, ``config`` differs from the run's (the message names the
        first differing setting), or the data are not those the run started with (with the reason).
    """
    saved = read_config(run_dir)
    difference = first_difference(saved, strict_json.loads(strict_json.dumps(config), "the config"))
    if difference:
        raise ConfigError(f"--resume: the config differs from the run's ({difference}); resume with the same "
                          f"config and overrides")
    recorded_path = Path(run_dir) / DATASET
    if dataset is not None and recorded_path.is_file():
        from operators.training.dataset_identity import difference as data_difference

        reason = data_difference(strict_json.read(recorded_path), dataset)
        if reason:
            raise ConfigError(f"--resume: {reason}; resume with the data the run started with, or start a new run")
    last = Path(run_dir) / "last"
    return last if last.is_dir() else None


def read_config(run_dir: Path) -> dict[str, Any]:
    """The configuration recorded in ``run_dir`` (the plain mapping of ``run_config.json``).

    Raises
    ------
    ConfigError
        If ``run_dir`` is not a run folder or the file is damaged.
    """
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a pdeop training run ({RUN_CONFIG} is missing)")
    config = strict_json.read(path)
    if not isinstance(config, dict):
        raise ConfigError(f"{path} must hold a JSON object of settings (got {type(config).__name__})")
    return config


def read_history(run_dir: Path, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The rows :func:`write_history` wrote (empty when none was written yet).

    Parameters
    ----------
    run_dir
        The run folder.
    required
        Entries every row must have (``("epoch", "train_loss", "lr")`` for the operator trainer).

    Raises
    ------
    ConfigError
        If ``training.json`` is damaged: not strict JSON, or not a list of rows of numbers.
    """
    path = Path(run_dir) / HISTORY_JSON
    if not path.is_file():
        return []
    rows = strict_json.check_fields(strict_json.read(path), {"history": "list"}, str(path))["history"]
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not all(
                value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
                for value in row.values()):
            raise ConfigError(f"{path}: history row {i} must map names to numbers")
        missing = [key for key in required if key not in row]
        if missing:
            raise ConfigError(f"{path}: history row {i} lacks {missing[0]!r}")
    return rows


# ---------------------------------------------------------------------------- checkpoints and history
def save_checkpoints(run_dir: Path, save_model: Callable[[Path, str], None], save_state: Callable[[Path], None],
                     improved: bool) -> None:
    """Write ``last/`` (model and training state) and, when ``improved``, ``best/`` (model only).

    Parameters
    ----------
    run_dir
        The run folder (claimed).
    save_model
        ``save_model(folder, name)`` writes the model checkpoint into the new ``folder`` for the
        checkpoint ``name`` (``"last"`` or ``"best"``).
    save_state
        ``save_state(folder)`` adds the training state to the ``last`` checkpoint folder.
    improved
        Whether the score improved (then ``best/`` is replaced too).

    Each folder is staged under a name unique to this process and put in place by :func:`swap_in`,
    ``best/`` first, so a kill at any point leaves whole checkpoints behind; an exception removes
    the staged folders this call made and nothing else.
    """
    staged = []
    try:
        staging = temp_path(run_dir / "last", "partial", keep_suffix=False)
        staged.append(staging)
        save_model(staging, "last")
        save_state(staging)
        if improved:
            best_staging = temp_path(run_dir / "best", "partial", keep_suffix=False)
            staged.append(best_staging)
            save_model(best_staging, "best")
            swap_in(best_staging, run_dir / "best")
        swap_in(staging, run_dir / "last")
    except BaseException:
        for folder in staged:
            remove_checkpoint(folder)
        raise


def swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` so that a whole checkpoint is always in place, staged or aside.

    The previous ``target`` is renamed to a hidden name unique to this process and then deleted
    only if it holds nothing but checkpoint files (else it stays there, untouched).
    """
    aside = temp_path(target, "old", keep_suffix=False)
    if target.exists():
        target.rename(aside)
    staging.rename(target)
    remove_checkpoint(aside)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a process-unique temporary file and a rename."""
    write_text(path, text)


def write_history(run_dir: Path, history: list[dict[str, Any]], tensorboard: bool = False) -> None:
    """Write the per-epoch history as ``training.csv`` and ``training.json`` (and TensorBoard scalars).

    ``training.json`` is strict JSON: a non-finite value is written as null and listed under
    ``non_finite``. With ``tensorboard`` the rows are also written as event files to
    ``run_dir/tensorboard`` (:mod:`operators.training.tensorboard_log`).
    """
    columns = list(dict.fromkeys(k for row in history for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    write_atomic(run_dir / HISTORY_CSV, buffer.getvalue())
    write_atomic(run_dir / HISTORY_JSON, strict_json.dumps({"history": history}))
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
    return "" if a == b else f"{prefix.rstrip('.')}: {_short(a)} then, {_short(b)} now"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

