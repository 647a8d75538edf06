"""Data-parallel training over several processes (``torch.distributed``), with one process as the plain case.

The trainer holds one :class:`Distributed` and runs the same code for 1 and N processes; with one
process every method below is the identity and no process group exists.

How N processes train one run (``torchrun --nproc_per_node N -m operators.cli train CONFIG``, or
``pdeop train CONFIG --nproc N``, see :mod:`.launch`):

* **Batches.** ``training.batch_size`` is the *global* batch: every optimiser step takes the same
  items from the epoch's permutation as one process would, and rank ``r`` computes items
  ``r, r + N, r + 2N, ...`` of them (:meth:`Distributed.shard`: the ``DistributedSampler`` split of
  each batch, deterministic per epoch). Each rank's objective is scaled so that the gradients
  ``DistributedDataParallel`` averages are those of the global batch (:meth:`Distributed.combine`):
  N ranks take the same steps as one process, up to float32 summation order. A rank left without an
  item (a last batch smaller than N) computes one item with weight 0, so every rank takes part in
  every step.
* **One writer.** Rank 0 alone claims the run folder (its lock), writes ``run_config.json``, the
  checkpoints, the history and TensorBoard, and reads ``last/`` on ``--resume``; it then sends the
  model, optimiser and random-generator state to the other ranks (:meth:`Distributed.sync_state`),
  so the run folder only needs to exist on rank 0's machine. Every rank reads the dataset file
  (``data.path`` must hold the same file on every node: the content checksums are compared).
* **Stopping together.** Every step gathers the ranks' losses before the backward pass, so a
  non-finite loss, a failed online generator or any error on one rank stops all of them at the same
  step with the same message (no rank waits forever in a collective); gradients are averaged before
  they are checked, so a non-finite gradient is seen by all. What rank 0 decides alone (claiming the
  folder, saving, the ``--max-minutes`` stop) is broadcast (:meth:`Distributed.from_main`).
* **Kill -9 of any rank.** torchrun ends the other ranks; ``last/`` holds the last finished epoch (its
  writing is staged, :mod:`.run_folder`) and ``--resume`` continues from it, with any number of ranks.

Backends: gloo on CPU, NCCL on CUDA (each rank on ``cuda:LOCAL_RANK``).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from operators.training.divergence import check_loss
from solvers.errors import ConfigError, PdeopError

T = TypeVar("T")
#: how long a collective waits for a slow rank (rank 0 may be generating data meanwhile)
TIMEOUT = datetime.timedelta(hours=3)


class RankStopped(PdeopError):
    """Another rank stopped the run; the message is that rank's (its exit code is kept)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclasses.dataclass(frozen=True)
class StepTotals:
    """One optimiser step's numbers over all ranks (see :meth:`Distributed.combine`).

    ``loss`` and ``terms`` are what one process would report for the global batch; ``physics`` the
    residual averaged over the batch's items; ``data_scale`` and ``physics_scale`` multiply this
    rank's terms of the objective so that the averaged gradient is the global batch's.
    """

    loss: float
    terms: int
    physics: float | None
    data_scale: float
    physics_scale: float


class Distributed:
    """This process's place among the training processes.

    Parameters
    ----------
    rank, world_size, local_rank
        As torchrun sets them (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); one process: 0, 1, 0.
    device
        The device of this rank.
    """

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0,
                 device: torch.device | str = "cpu") -> None:
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.local_rank = int(local_rank)
        self.device = torch.device(device)

    @classmethod
    def from_environment(cls, device: str = "cpu") -> Distributed:
        """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1), else one process.

        gloo on CPU; NCCL on CUDA, with this rank on ``cuda:LOCAL_RANK``.

        Raises
        ------
        ConfigError
            If the environment is inconsistent or CUDA has fewer devices than local ranks.
        """
        try:
            world_size = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        except ValueError:
            raise ConfigError("the torchrun variables WORLD_SIZE, RANK and LOCAL_RANK must be integers") from None
        if world_size <= 1:
            return cls(device=device)
        if not 0 <= rank < world_size:
            raise ConfigError(f"RANK {rank} is outside 0..{world_size - 1} (WORLD_SIZE {world_size})")
        import torch.distributed as dist

        if device == "cuda":
            if local_rank >= torch.cuda.device_count():
                raise ConfigError(f"local rank {local_rank} needs cuda:{local_rank} but torch sees "
                                  f"{torch.cuda.device_count()} CUDA devices; start at most that many processes per node")
            torch.cuda.set_device(local_rank)
            target = torch.device("cuda", local_rank)
        else:
            target = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if target.type == "cuda" else "gloo", timeout=TIMEOUT)
        return cls(rank, world_size, local_rank, target)

    # ------------------------------------------------------------------ who does what
    @property
    def active(self) -> bool:
        """Whether several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the one that writes the run folder)."""
        return self.rank == 0

    def lost_peer(self, error: BaseException) -> bool:
        """Whether ``error`` is a collective failing because another rank went away (killed, crashed)."""
        import torch.distributed as dist

        text = str(error)
        return self.active and (isinstance(error, dist.DistError) or "gloo" in text or "NCCL" in text
                                or "Connection reset by peer" in text or "Connection closed by peer" in text)

    def close(self, together: bool = False) -> None:
        """Leave the process group (nothing with one process).

        ``together`` (every rank finished normally): wait at a barrier first, so that no rank tears its
        gloo connections down while a peer still uses them (the peer then aborts with "terminate called
        without an active exception"). Error paths leave without it: a dead peer never reaches a barrier.
        """
        import torch.distributed as dist

        if self.active and dist.is_initialized():
            if together:
                dist.barrier()
            dist.destroy_process_group()

    def wrap(self, module: nn.Module, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` (a computation on ``module``'s parameters) as ``DistributedDataParallel`` calls it.

        DDP averages the gradients of what runs inside its module's ``forward``; the training modes
        call the surrogate several times per step (rollouts, teacher forcing), so the whole prediction
        of a step is that ``forward``. With one process ``fn`` itself is returned. Buffers (normaliser
        statistics, equal on every rank) are not re-broadcast at every call.
        """
        if not self.active:
            return fn
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(_Computation(module, fn), device_ids=ids, forward_sync_buffers=False)

    # ------------------------------------------------------------------ data
    def shard(self, items: torch.Tensor) -> tuple[torch.Tensor, int]:
        """This rank's part of a global batch of item indices, and how many of them count.

        Rank ``r`` of ``N`` takes ``items[r::N]``. A rank left with none takes the batch's first item
        with count 0 (weight 0 in :meth:`combine`).
        """
        if not self.active:
            return items, len(items)
        mine = items[self.rank::self.world_size]
        if len(mine) == 0:
            return items[:1], 0
        return mine, len(mine)

    def share(self, n: int) -> torch.Tensor:
        """This rank's items of ``range(n)`` for evaluation (``r, r + N, ...``)."""
        return torch.arange(self.rank, n, self.world_size)

    # ------------------------------------------------------------------ per step
    def combine(self, loss: torch.Tensor, terms: int, physics: torch.Tensor | None, count: int,
                reduction: str) -> StepTotals:
        """Gather every rank's loss of this step (before the backward pass) and check them together.

        Parameters
        ----------
        loss
            This rank's data loss over its items (``reduction`` over its ``terms``).
        terms
            Terms of the loss (items times model calls).
        physics
            This rank's mean physics residual over its items, or None.
        count
            Items of this rank that count (0 for a placeholder item).
        reduction
            ``mean`` or ``sum`` (``training.loss_reduction``).

        Raises
        ------
        NonFiniteStep
            On every rank, if any rank's loss or residual is not finite (naming the rank).
        RankStopped
            When another rank could not compute this step (:meth:`fail`).
        """
        if not self.active:
            return StepTotals(check_loss(loss), terms, None if physics is None else check_loss(
                physics, "the physics residual"), 1.0, 1.0)
        rows = self._gather([float(loss.detach()), float(terms if count else 0),
                             float(physics.detach()) if physics is not None else 0.0, float(count), 0.0])
        failed = [r for r, row in enumerate(rows) if row[4]]
        if failed:
            raise RankStopped(f"rank {failed[0]}: {self._broadcast_text('', failed[0])}")
        counted = [row for row in rows if row[3] > 0]
        for r, row in enumerate(rows):
            if row[3] > 0:
                check_loss(row[0], f"the loss on rank {r}")
                if physics is not None:
                    check_loss(row[2], f"the physics residual on rank {r}")
        total_terms = sum(row[1] for row in counted)
        total_items = sum(row[3] for row in counted)
        if reduction == "sum":
            global_loss = sum(row[0] for row in counted)
            data_scale = float(self.world_size) if count else 0.0
        else:
            global_loss = sum(row[0] * row[1] for row in counted) / total_terms
            data_scale = self.world_size * (terms if count else 0) / total_terms
        global_physics = None
        if physics is not None:
            global_physics = sum(row[2] * row[3] for row in counted) / total_items
        return StepTotals(global_loss, int(total_terms), global_physics, data_scale,
                          self.world_size * count / total_items)

    def fail(self, message: str) -> None:
        """Join this step's :meth:`combine` as a rank that cannot compute it; the others raise
        :class:`RankStopped` with ``message`` (the caller raises its own error)."""
        if not self.active:
            return
        rows = self._gather([0.0, 0.0, 0.0, 0.0, 1.0])
        self._broadcast_text(message, next(r for r, row in enumerate(rows) if row[4]))

    def global_mean(self, values: torch.Tensor, count: bool = True) -> torch.Tensor:
        """Mean of ``values`` over every rank's elements (this rank's count when ``count``, else none).

        Not differentiable (used for detached normalisations such as the physics residual's scale).
        """
        local = torch.stack([values.detach().sum(), torch.tensor(float(values.numel()), device=values.device)])
        local = local.to(torch.float64) * (1.0 if count else 0.0)
        if self.active:
            import torch.distributed as dist

            dist.all_reduce(local)
        return (local[0] / local[1].clamp_min(1.0)).to(values.dtype)

    def all_sum(self, values: list[float]) -> list[float]:
        """Element-wise sums of ``values`` over the ranks."""
        if not self.active:
            return list(values)
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    # ------------------------------------------------------------------ rank 0 decides
    def from_main(self, fn: Callable[[], T], share: bool = True) -> T | None:
        """Run ``fn`` on rank 0 and hand its result (or its error) to every rank.

        With ``share`` False the other ranks get None (for results that stay on rank 0, such as
        the run folder's lock).

        Raises
        ------
        Exception
            On rank 0, whatever ``fn`` raised; on the other ranks :class:`RankStopped` with its message
            (a :class:`~solvers.errors.ConfigError` stays one: same message, exit code 2).
        """
        if not self.active:
            return fn()
        error: BaseException | None = None
        result: Any = None
        if self.is_main:
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001  (re-raised below, after the others are told)
                error = exc
        payload = [None if error is None else (str(error), getattr(error, "exit_code", 1),
                                               isinstance(error, ConfigError)), result if share else None]
        payload = self._broadcast_objects(payload)
        if error is not None:
            raise error
        if payload[0] is not None:
            message, code, config = payload[0]
            raise ConfigError(message) if config else RankStopped(f"rank 0: {message}", code)
        return payload[1]

    def check_same(self, value: str, what: str) -> None:
        """Refuse (on every rank) when ranks hold different ``value``\\ s of ``what`` (e.g. a data checksum)."""
        if not self.active:
            return
        import torch.distributed as dist

        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        other = next((r for r, v in enumerate(values) if v != values[0]), None)
        if other is not None:
            raise ConfigError(f"rank {other} holds other {what} than rank 0; every node must see the same files")

    def sync_state(self, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer) -> None:
        """Give every rank rank 0's module weights, optimiser state and random-generator state."""
        if not self.active:
            return
        payload = [{"modules": {name: m.state_dict() for name, m in modules.items()},
                    "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()} if self.is_main else None]
        state = self._broadcast_objects(payload)[0]
        if self.is_main:
            return
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])

    # ------------------------------------------------------------------ plumbing
    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _gather(self, values: list[float]) -> list[list[float]]:
        import torch.distributed as dist

        local = torch.tensor(values, dtype=torch.float64, device=self._comm_device)
        rows = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(rows, local)
        return [row.tolist() for row in rows]

    def _broadcast_objects(self, payload: list[Any], src: int = 0) -> list[Any]:
        import torch.distributed as dist

        dist.broadcast_object_list(payload, src=src, device=self._comm_device)
        return payload

    def _broadcast_text(self, text: str, src: int) -> str:
        return str(self._broadcast_objects([text if self.rank == src else None], src)[0])



class _Computation(nn.Module):
    """``fn`` as the ``forward`` of a module holding ``module`` (whose parameters ``fn`` uses)."""

    def __init__(self, module: nn.Module, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.module = module
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


class ItemView:
    """The items ``items`` of a dataset (``batch``, ``len`` and the attributes evaluation reads)."""

    def __init__(self, dataset: Any, items: torch.Tensor) -> None:
        self.dataset = dataset
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dataset, name)

    def batch(self, items: Any) -> Any:
        """The dataset's batch of these view positions."""
        return self.dataset.batch(self.items[torch.as_tensor(items, dtype=torch.long)])
