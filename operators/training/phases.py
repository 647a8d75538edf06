"""Where a training process spends its time: wall and CPU seconds per phase of each epoch, per rank.

Set ``PDEOP_PHASES=FOLDER`` in the environment of ``pdeop train`` (every rank inherits it) and each
rank writes ``FOLDER/phases_rank<R>.json`` when its run ends: for every epoch the wall seconds from
its start to the end of its checkpoint (``epoch_wall_s``) and, per phase, wall seconds
(``time.perf_counter``) and CPU seconds of the process (``time.process_time``: every thread of it,
gloo's included). Wall minus CPU of a phase is time the process did not compute: waiting for
another rank in a collective, for the disk, or for a core on a shared machine. Without the variable
every call below is a no-op (one attribute test).

Phases of a step (:meth:`.trainer.Trainer.train_step` and the epoch loop):

``data``
    the next batch: samples read or taken from the cache (or the online stream), augmentation, the copy
    to the device;
``forward``
    the training mode's prediction and the loss;
``combine``
    the ranks' losses gathered before the backward pass (waits for the slowest rank's forward);
``backward``
    the backward pass; with several ranks it includes ``DistributedDataParallel``'s gradient
    all-reduce and the wait for its last bucket;
``step``
    gradient checks, clipping and the optimiser step;

and of an epoch: ``validation`` (each rank its share, then one sum), ``save`` (rank 0 writes the
checkpoints and history; the other ranks wait for it) and ``other`` (the rest of the epoch's wall).
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

#: the environment variable naming the folder of the phase files
ENVIRONMENT = "PDEOP_PHASES"


class Phases:
    """Per-epoch wall and CPU seconds of named phases of one rank (a no-op unless ``folder`` is set).

    Parameters
    ----------
    folder
        Where :meth:`write` puts ``phases_rank<rank>.json`` (default: ``$PDEOP_PHASES``; None: off).
    rank
        This process's rank.
    """

    def __init__(self, folder: str | os.PathLike | None = None, rank: int = 0) -> None:
        folder = folder if folder is not None else os.environ.get(ENVIRONMENT) or None
        self.folder = None if folder is None else Path(folder)
        self.rank = int(rank)
        self.epochs: list[dict[str, Any]] = []
        self._epoch: dict[str, Any] | None = None

    @property
    def on(self) -> bool:
        """Whether phases are recorded."""
        return self.folder is not None

    def start_epoch(self, epoch: int) -> None:
        """Begin recording epoch ``epoch`` (1-based, as the history numbers it)."""
        if self.on:
            self._epoch = {"epoch": epoch, "start": (time.perf_counter(), time.process_time()), "phases": {}}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Count the wall and CPU seconds of the ``with`` body to phase ``name`` of the current epoch."""
        if self._epoch is None:
            yield
            return
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            spent = self._epoch["phases"].setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0, "calls": 0})
            spent["wall_s"] += time.perf_counter() - wall
            spent["cpu_s"] += time.process_time() - cpu
            spent["calls"] += 1

    def end_epoch(self) -> None:
        """Close the current epoch: its wall and CPU seconds, the rest of them as phase ``other``."""
        if self._epoch is None:
            return
        wall0, cpu0 = self._epoch.pop("start")
        record = self._epoch
        record["epoch_wall_s"] = time.perf_counter() - wall0
        record["epoch_cpu_s"] = time.process_time() - cpu0
        phases = record["phases"]
        phases["other"] = {"wall_s": record["epoch_wall_s"] - sum(p["wall_s"] for p in phases.values()),
                           "cpu_s": record["epoch_cpu_s"] - sum(p["cpu_s"] for p in phases.values()), "calls": 1}
        self.epochs.append(record)
        self._epoch = None

    def write(self) -> Path | None:
        """Write ``phases_rank<rank>.json`` into the folder (None when off)."""
        if not self.on:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"phases_rank{self.rank}.json"
        path.write_text(json.dumps({"rank": self.rank, "epochs": self.epochs}, indent=1))
        return path
