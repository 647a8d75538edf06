"""One rank of the distributed tests, started by ``python -m torch.distributed.run ... ddp_worker.py``.

Usage: ``ddp_worker.py LOG_DIR CONFIG_1 OUT_1 [CONFIG_2 OUT_2 ...]``: trains every config into its run
folder as this rank (``operators.training.distributed``), and records in ``LOG_DIR/rank<R>.json`` every
file-system change this process made below the run folders' parent (Python audit events: opening a
file for writing, creating, renaming and removing), so that a test can prove that only rank 0 writes,
and in ``LOG_DIR/reads<R>.json`` the file rows each read of the training split fetched (the set-up's shape
check, then every training step; runs whose training split is read on demand,
:class:`pde_data.lazy_split.LazySplit`), by run folder name.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

_WRITING = ("w", "a", "x", "+")
_EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate"}


def main(argv: list[str]) -> None:
    log_dir = Path(argv[0])
    pairs = list(zip(argv[1::2], argv[2::2]))
    watched = os.path.commonpath([str(Path(out).resolve().parent) for _, out in pairs])
    changes: list[str] = []

    def audit(event: str, args: tuple) -> None:
        path = args[0] if args else None
        if not isinstance(path, (str, bytes, os.PathLike)):
            return
        path = os.fsdecode(path)
        if not os.path.abspath(path).startswith(watched):
            return
        if event == "open":
            mode, flags = args[1], args[2]
            if (isinstance(mode, str) and any(c in mode for c in _WRITING)) or (
                    mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
                changes.append(f"open {path}")
        elif event in _EVENTS:
            target = args[1] if event == "os.rename" else ""
            changes.append(f"{event} {path}" + (f" -> {os.fsdecode(target)}" if target else ""))

    sys.addaudithook(audit)
    from operators.training.config import load_run_config, run_config_from_mapping
    from operators.training.distributed import Distributed
    from operators.training.trainer import Trainer

    distributed = Distributed.from_environment("cpu")
    reads: dict[str, list[list[int]]] = {}
    for config, out in pairs:
        run = run_config_from_mapping(load_run_config(config))
        trainer = Trainer(run, out, progress=False, distributed=distributed)
        split_reads = getattr(trainer.data.train, "reads", None)  # a training split read on demand
        trainer.fit()
        if split_reads is not None:
            reads[Path(out).name] = list(split_reads)
    record = list(changes)
    (log_dir / f"rank{distributed.rank}.json").write_text(json.dumps(record))
    (log_dir / f"reads{distributed.rank}.json").write_text(json.dumps(reads))
    distributed.close(together=True)


if __name__ == "__main__":
    main(sys.argv[1:])
