"""Checkpoint folders on disk: written so that they appear whole, recovered after a kill, deleted only when provably ours.

A checkpoint folder holds ``weights.safetensors`` and ``config.json`` (:mod:`operators.checkpoint`) and,
for the trainer's ``last/``, the training state (:mod:`operators.training.state`): :data:`KNOWN_FILES`.

* :func:`write_folder` writes the files into a hidden sibling named after this process
  (``.NAME.tmp-PID-RANDOM``), flushes them and renames the folder into place; an existing
  checkpoint is renamed aside (``.NAME.old-PID-RANDOM``) first and deleted afterwards. A target
  folder that is not a pdeop checkpoint (and not empty) is refused, never replaced.
* :func:`recover` finishes a save a kill interrupted between the two renames.
* :func:`remove_checkpoint` deletes a folder only if it holds nothing but :data:`KNOWN_FILES`, and
  then only those files by name; leftovers are removed only when their writer is dead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from operators import strict_json
from operators.atomic_files import remove_files
from pde_data.output_files import fsync_folder, stale, temp_path
from solvers.errors import ConfigError

FORMAT = "pdeop-checkpoint"
WEIGHTS = "weights.safetensors"
CONFIG = "config.json"

#: every file a checkpoint folder may hold: the checkpoint and the trainer's resumable state
CHECKPOINT_FILES = (WEIGHTS, CONFIG)
TRAINING_STATE_FILES = ("training_state.safetensors", "training_state.json")
KNOWN_FILES = frozenset(CHECKPOINT_FILES + TRAINING_STATE_FILES)


def holds_only_checkpoint_files(folder: Path) -> bool:
    """Whether ``folder`` is a folder whose entries are all files named in :data:`KNOWN_FILES`."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return False
    return all(entry.name in KNOWN_FILES and entry.is_file() and not entry.is_symlink() for entry in entries)


def is_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` provably holds a pdeop checkpoint and nothing else.

    Its entries are all checkpoint or training-state files, and its ``config.json`` (when present)
    declares the pdeop checkpoint format. An empty folder counts (nothing to lose).
    """
    if not folder.is_dir() or not holds_only_checkpoint_files(folder):
        return False
    config = folder / CONFIG
    if not config.is_file():
        return not any(folder.iterdir())
    try:
        return strict_json.read(config).get("format") == FORMAT
    except (ConfigError, AttributeError):
        return False


def remove_checkpoint(folder: Path) -> bool:
    """Delete ``folder`` if it holds nothing but checkpoint files (by those names); returns whether it is gone.

    A folder holding anything else is left exactly as it is.
    """
    if not folder.exists():
        return True
    if not holds_only_checkpoint_files(folder):
        return False
    return remove_files(folder, KNOWN_FILES)


def _siblings(directory: Path, kind: str) -> list[Path]:
    """Hidden work folders of ``directory`` (``kind`` is ``tmp`` or ``old``), newest first."""
    parent = directory.parent
    if not parent.is_dir():
        return []
    found = [p for p in parent.glob(f".{directory.name}.{kind}-*") if p.is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _complete(folder: Path) -> bool:
    # config.json is written last, after the weights were flushed.
    return (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file() and holds_only_checkpoint_files(folder)


def recover(directory: str | os.PathLike) -> None:
    """Finish a save that was killed between moving the old folder aside and moving the new one in.

    When ``directory`` is missing, the newest complete staged (or set-aside) copy left by a dead writer
    takes its place; otherwise nothing happens.
    """
    directory = Path(directory)
    if directory.exists() or directory.is_symlink():
        return
    for kind in ("tmp", "old"):
        for candidate in stale(_siblings(directory, kind)):
            if _complete(candidate):
                try:
                    os.replace(candidate, directory)
                except OSError:  # another process recovered it first
                    pass
                return


def write_folder(directory: Path, files: Mapping[str, bytes]) -> None:
    """Create ``directory`` with ``files`` (written in order, each flushed) so that it appears whole.

    Raises
    ------
    ConfigError
        If ``directory`` is a file or a folder that is not a pdeop checkpoint, or cannot be written.
    """
    parent = directory.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the folder {parent} ({exc.strerror or exc})") from None
    recover(directory)
    if directory.exists() or directory.is_symlink():
        if directory.is_symlink() or not directory.is_dir():
            raise ConfigError(f"checkpoint path {directory} exists and is not a folder")
        if not is_checkpoint(directory):
            raise ConfigError(f"{directory} exists and is not a pdeop checkpoint (it holds "
                              f"{_listing(directory)}); choose another folder, or move it away")
    for kind in ("tmp", "old"):  # leftovers of saves killed earlier; the folder itself is intact
        for leftover in stale(_siblings(directory, kind)):
            remove_checkpoint(leftover)
    work = temp_path(directory, "tmp", keep_suffix=False)
    aside = temp_path(directory, "old", keep_suffix=False)
    try:
        work.mkdir()
        for name, data in files.items():
            with open(work / name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        fsync_folder(work)
        if directory.exists():
            os.replace(directory, aside)
            os.replace(work, directory)
            remove_checkpoint(aside)
        else:
            os.replace(work, directory)
        fsync_folder(parent)
    except BaseException as exc:
        # An exception (not a kill) between the two renames: put the previous checkpoint back.
        if not directory.exists() and aside.exists():
            os.replace(aside, directory)
        if work.exists():
            remove_checkpoint(work)
        if isinstance(exc, OSError):
            raise ConfigError(f"cannot write the checkpoint {directory} ({exc.strerror or exc})") from None
        raise


def _listing(folder: Path, limit: int = 4) -> str:
    names = sorted(p.name for p in folder.iterdir())
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f"{len(names)} entr{'y' if len(names) == 1 else 'ies'}: {shown}"
