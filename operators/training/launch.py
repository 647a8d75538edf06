"""``pdeop train CONFIG --nproc N``: start N training processes on this machine, as torchrun would.

The processes are started by torch's elastic agent (the engine behind ``torchrun``), in this process,
with torchrun's standalone settings: one node, a c10d rendezvous on a free local port, no restarts.
Each runs ``python -m operators.cli train ...`` with the same arguments minus ``--nproc``; the
environment gives it its rank (see :mod:`.distributed`). What this adds to a bare ``torchrun`` call:
the children's one-line error is the only message (the agent's own logs are silenced), the exit code
is the failing rank's (2 for a configuration error, as in one process), and a rank killed by a signal
is reported in one line with the way to continue.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from collections.abc import Sequence

from solvers.errors import ConfigError


def launch(arguments: Sequence[str], nproc: int, threads: int | None = None) -> int:
    """Run ``python -m operators.cli`` with ``arguments`` in ``nproc`` processes and wait for them.

    Parameters
    ----------
    arguments
        The command line of one rank, e.g. ``["train", "cfg.yaml", "--out", "runs/x"]``.
    nproc
        Processes (ranks) to start.
    threads
        Torch threads per process (``OMP_NUM_THREADS``); default 1, as torchrun sets it.

    Returns
    -------
    int
        0 when every rank finished, else the exit code of the first failing rank (128 + the signal
        number for a rank killed by a signal).
    """
    if nproc < 1:
        raise ConfigError(f"--nproc must be an integer >= 1 (got {nproc})")
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads or previous or 1)  # the children inherit it
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"pdeop-{uuid.uuid4().hex[:12]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
                          start_method="spawn")
    quiet = logging.getLogger("torch.distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "operators.cli", *arguments)
    except ChildFailedError as exc:
        return _report(exc)
    finally:
        quiet.setLevel(level)
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous
    return 0


def _report(error) -> int:
    """The exit code of the failure that caused the others; a line on stderr when a rank died from a signal.

    The cause comes first: a rank killed by a signal other than the agent's SIGTERM (which ends the other
    ranks once one has failed), then ranks that exited with an error, then the ranks the agent ended.
    """

    def rank_of(item) -> tuple[int, float, int]:
        failure = item[1]
        kind = 0 if failure.exitcode < 0 and failure.exitcode != -signal.SIGTERM else (
            1 if failure.exitcode > 0 else 2)
        return kind, failure.timestamp, item[0]

    rank, first = sorted(error.failures.items(), key=rank_of)[0]
    if first.exitcode < 0:
        try:
            name = signal.Signals(-first.exitcode).name
        except ValueError:
            name = f"signal {-first.exitcode}"
        print(f"error: training rank {rank} (process {first.pid}) was killed by {name}; the other ranks were "
              f"stopped; rerun with --resume to continue from the last finished epoch", file=sys.stderr)
        return 128 - first.exitcode
    return int(first.exitcode)
