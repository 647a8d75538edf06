"""Online training: the model trains on samples generated while it trains, with no dataset file between.

``data.source: online`` (or ``pdeop train CONFIG --online``) takes the samples from the config's
``data.generate`` recipe (problem, preset, seed, settings) instead of ``data.path``:

* **Fixed held-out sets.** Samples ``0 .. n_val + n_test - 1`` of the recipe are the validation set
  (the first ``n_val``) and the test set (the last ``n_test``). They are generated once, by rank 0
  under the run folder's lock, into ``RUN_DIR/heldout.h5`` — an ordinary pdeop dataset file, which
  ``pdeop evaluate`` and ``--resume`` read back (with several nodes the run folder must then be
  shared, as ``data.path`` must be in file mode). The normalisers, which file mode fits on the
  training split, are fitted on the validation set (so ``n_val >= 1`` is needed unless
  ``data.normalization`` is ``none``).
* **A stream of fresh samples.** Epoch ``e`` trains on the ``n_train`` samples that follow, indices
  ``n_val + n_test + e n_train + (0 .. n_train - 1)``: every sample is seen once, and sample ``i``
  depends only on ``(seed, i)``, as in a file. The samples come in blocks of ``data.online.block``;
  the items (windows) of a block are shuffled with a generator seeded from ``(seed, e, block)`` and
  the epoch's item stream is cut into global batches of ``training.batch_size``, so the order of
  training is a function of the config alone (not of timing, workers or the queue size).
* **Background generation, bounded.** :class:`pde_data.streaming.SampleStream` computes the blocks in
  ``--workers`` spawned processes, at most ``--ahead`` blocks ahead of the trainer (back-pressure:
  the generator never runs further ahead, whatever its speed). The history records the seconds the
  trainer waited for samples in each epoch (``data_wait_s``). With ``--scheduler ADDRESS`` the blocks
  are tasks on a Dask cluster instead (:class:`pde_data.streaming.DaskSampleStream`, the cluster of
  ``pdeop generate --scheduler``; ``--scheduler local`` starts a local one of ``--workers``
  processes): the same samples in the same order, the same bound, the same failure contract.
* **Several processes.** Rank ``r`` of ``N`` trains on items ``r, r + N, ...`` of each global batch, as
  in file mode, and its generators compute only the samples those items come from (with one window
  per sample, each sample is computed by one rank).
* **Failures and resume.** A generator that raises or dies stops training with
  :class:`~pde_data.streaming.GeneratorFailed` (exit 1) after the last finished epoch's checkpoint;
  ``--resume`` starts the stream again at the first sample of the epoch that was cut short, so the
  resumed run is the uninterrupted one.
* ``--keep-samples FILE`` also writes every generated training sample, with the held-out ones, to an
  ordinary pdeop file of ``n_val + n_test + epochs n_train`` samples (one process only): the file
  ``pdeop generate`` makes from the same recipe with that many samples.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import IterableDataset

from operators.training import run_folder
from pde_data.config import check, from_mapping
from pde_data.loading import DataBundle, DataConfig, describe, fit_normalizers, load_rows, make_dataset, open_dataset
from solvers.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class GenerateRecipe:
    """``data.generate``: how to make the samples of a run (its missing file, or its online stream)."""

    problem: str
    preset: Optional[str] = None
    samples: Optional[int] = None
    seed: Optional[int] = None
    set: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class OnlineSettings:
    """``data.online``: samples generated, shuffled and handed over together (changes the item order)."""

    block: int = 8

    def __post_init__(self) -> None:
        check(self.block >= 1, f"data.online.block must be an integer >= 1 (got {self.block})")


@dataclasses.dataclass(frozen=True)
class StreamOptions:
    """How the online samples are produced on this machine (command-line flags; never changes the run).

    Parameters
    ----------
    workers
        Generator processes per training process.
    ahead
        Blocks generated ahead of the trainer at most (the queue's bound).
    keep_samples
        Also write the generated samples to this dataset file.
    scheduler
        Generate on a Dask cluster instead (:class:`pde_data.distributed.Cluster`): the address of a
        running scheduler (``tcp://host:8786`` or a scheduler file), or ``local`` for a local cluster
        of ``workers`` single-threaded processes per training process (as ``pdeop generate --workers``).
    scheduler_timeout
        Seconds to reach the scheduler and see a worker (default :data:`pde_data.distributed.DEFAULT_TIMEOUT`).
    """

    workers: int = 1
    ahead: int = 4
    keep_samples: Optional[Path] = None
    scheduler: Optional[str] = None
    scheduler_timeout: Optional[float] = None

    def __post_init__(self) -> None:
        check(self.workers >= 1, f"--workers must be an integer >= 1 (got {self.workers})")
        check(self.ahead >= 1, f"--ahead must be an integer >= 1 (got {self.ahead})")
        check(self.scheduler is None or bool(str(self.scheduler).strip()),
              "--scheduler must be a Dask scheduler address (tcp://host:8786), a scheduler file, or 'local'")

    def cluster(self) -> Any:
        """The (unopened) :class:`pde_data.distributed.Cluster` of ``scheduler``."""
        from pde_data.distributed import Cluster

        timeout = {} if self.scheduler_timeout is None else {"timeout": self.scheduler_timeout}
        if self.scheduler == LOCAL_CLUSTER:
            return Cluster(workers=self.workers, **timeout)
        return Cluster(scheduler=self.scheduler, **timeout)


#: ``--scheduler`` value that starts a local Dask cluster of ``--workers`` processes
LOCAL_CLUSTER = "local"


def resolve_recipe(data: DataConfig, samples: int | None = None) -> Any:
    """The :class:`~pde_data.pipeline.ResolvedConfig` of ``data.generate`` (``samples`` replaces its count)."""
    from pde_data.pipeline import resolve_config

    recipe = from_mapping(GenerateRecipe, data.generate, where="data.generate.")
    overrides = [f"{k}={v}" for k, v in recipe.set.items()]
    return resolve_config(recipe.problem, recipe.preset, overrides=overrides,
                          samples=samples if samples is not None else recipe.samples, seed=recipe.seed)


def heldout_count(data: DataConfig) -> int:
    """Samples of the fixed validation and test sets (the stream starts after them)."""
    return data.n_val + data.n_test


def stream_length(config: Any) -> int:
    """Samples of a whole online run: the held-out ones and ``epochs`` times ``n_train``."""
    return heldout_count(config.data) + config.training.epochs * config.data.n_train


# ---------------------------------------------------------------------------- held-out sets and the bundle
def prepare_heldout(config: Any, run_dir: str | Path, progress: bool = True) -> Path:
    """Generate (or finish) ``RUN_DIR/heldout.h5``, the fixed validation and test samples, under the folder's lock.

    Call on one process (rank 0). A file left by an earlier attempt with another recipe is replaced
    while the folder holds no run; in a run's folder it must be the run's.

    Raises
    ------
    ConfigError
        As :func:`.run_folder.claim`, or for a held-out file that is not the run's.
    """
    from pde_data.pipeline import generate_dataset
    from pde_data.storage import read_attrs

    run_dir = Path(run_dir)
    path = run_dir / run_folder.HELDOUT
    resolved = resolve_recipe(config.data, heldout_count(config.data))
    holds_run = (run_dir / run_folder.RUN_CONFIG).is_file()
    with run_folder.claim(run_dir, resume=holds_run):
        attrs = read_attrs(path) if path.exists() else None
        other = attrs is not None and attrs.get("config") != resolved.to_json()
        if other and holds_run:
            raise ConfigError(f"{path} holds other samples than this run's data.generate recipe; resume with the "
                              f"config the run started with")
        if attrs is None or other or not attrs.get("complete"):
            if progress:
                print(f"generating the fixed validation and test samples ({resolved.samples}) into {path}",
                      file=sys.stderr)
            generate_dataset(resolved, path, overwrite=other, progress=progress)
    return path


def load_bundle(config: Any, run_dir: str | Path, rank: int = 0, world_size: int = 1,
                options: StreamOptions | None = None) -> DataBundle:
    """The data of an online run: validation and test sets from ``heldout.h5``, the stream as ``train``.

    Raises
    ------
    ConfigError
        For settings online training cannot serve (see the module docstring).
    """
    data = config.data
    path = Path(run_dir) / run_folder.HELDOUT
    settings = from_mapping(OnlineSettings, data.online, where="data.online.")
    options = options or StreamOptions()
    if data.normalization != "none" and data.n_val < 1:
        raise ConfigError(f"online training fits the {data.normalization} normalisers on the validation set; set "
                          f"data.n_val >= 1 or data.normalization: none")
    if options.keep_samples is not None and world_size > 1:
        raise ConfigError("--keep-samples writes one file from one process; drop it or train with one process")
    fixed = data.replace(path=str(path), source="file", allow_incomplete=False)
    val = make_dataset(fixed, "val") if data.n_val else None
    test = make_dataset(fixed, "test")
    ds = open_dataset(path)
    try:
        info = describe(ds, fixed)
        _refuse_per_sample_lengths(config, ds)
    finally:
        ds.close()
    template = val if val is not None else test
    normalizers = fit_normalizers(template, data.normalization, info["periodic"])
    source = OnlineSource(config, template, settings.block, rank, world_size, options, heldout=path)
    return DataBundle(source, val, test, normalizers, info)


def _refuse_per_sample_lengths(config: Any, ds: Any) -> None:
    from operators.training.physics_term import LENGTH_VARIABLE

    if config.training.physics is not None and LENGTH_VARIABLE in ds.variables and "sample" in ds[LENGTH_VARIABLE].dims:
        raise ConfigError("training.physics with a per-sample domain length (variable 'L') needs a dataset file; "
                          "online training does not serve it (use data.source: file)")


# ---------------------------------------------------------------------------- the stream
@dataclasses.dataclass
class _Block:
    """One block of an epoch: its samples, the ones this rank needs, and what is loaded of them."""

    first: int
    size: int
    needed: list[int]
    dataset: Any = None


class OnlineSource(IterableDataset):
    """This rank's training batches of an online run, epoch by epoch (see the module docstring).

    ``set_epoch(e)`` then iterating yields ``(x, y, cond, items, count)`` for every global batch of epoch
    ``e``: this rank's items of it (``count`` of them count; 0 with a placeholder item), as the trainer's
    file batches. The shapes (``in_channels``, ``space_shape``, ...) and ``trajectories`` (what the
    normalisers are fitted on) are the held-out template's.

    Parameters
    ----------
    config
        The run config.
    template
        A held-out dataset of the same protocol (shapes; placeholder items).
    block
        Samples per block.
    rank, world_size
        This process among the training processes.
    options
        Workers, queue bound, file of kept samples.
    heldout
        The held-out file (copied into the file of kept samples).
    """

    def __init__(self, config: Any, template: Any, block: int, rank: int = 0, world_size: int = 1,
                 options: StreamOptions | None = None, heldout: Path | None = None) -> None:
        super().__init__()
        self.config = config
        self.template = template
        self.heldout = heldout
        self.block = block
        self.rank, self.world_size = rank, world_size
        self.options = options or StreamOptions()
        self.resolved = resolve_recipe(config.data, stream_length(config))
        self.windows = len(template.starts) if template.time_dependent else 1
        self.epoch = 0
        self.stream = None
        self.keeper = None
        self.cluster = None
        if self.options.scheduler is not None:  # reach it now: a wrong address is an error before training
            self.cluster = self.options.cluster()
            self.cluster.open()
        self._plans: dict[int, tuple[list[_Block], list[list[tuple[int, int]]]]] = {}
        self._next_epoch = 0

    # ------------------------------------------------------------------ what the trainer reads
    time_dependent = property(lambda self: self.template.time_dependent)
    in_channels = property(lambda self: self.template.in_channels)
    out_channels = property(lambda self: self.template.out_channels)
    cond_channels = property(lambda self: self.template.cond_channels)
    space_shape = property(lambda self: self.template.space_shape)
    t_in = property(lambda self: self.template.t_in)
    #: the held-out template's trajectories: what online normalisers are fitted on (``predict: increment`` too)
    trajectories = property(lambda self: self.template.trajectories)

    def __len__(self) -> int:
        """Items (windows) per epoch."""
        return self.config.data.n_train * self.windows

    def batch(self, items: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Items of the held-out template (shape checks and placeholder items)."""
        return self.template.batch(items)

    @property
    def wait_seconds(self) -> float:
        """Seconds the trainer has waited for generated samples so far (this process)."""
        return 0.0 if self.stream is None else self.stream.wait_seconds

    def set_epoch(self, epoch: int) -> None:
        """Serve epoch ``epoch`` at the next iteration."""
        self.epoch = int(epoch)

    def close(self) -> None:
        """Stop the generator processes (or leave the Dask cluster) and close the file of kept samples."""
        self._stop()
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
        if self.options.scheduler is not None:  # reach it now: a wrong address is an error before training
            self.cluster = self.options.cluster()
            self.cluster.open()

    def _stop(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        if self.keeper is not None:
            self.keeper.close()
            self.keeper = None

    # ------------------------------------------------------------------ the plan of an epoch
    def plan(self, epoch: int) -> tuple[list[_Block], list[list[tuple[int, int]]]]:
        """The blocks of ``epoch`` and, per global batch, this rank's items as ``(block, item in block)``.

        A block's items are its samples times the windows of one sample, in an order drawn from
        ``(seed, epoch, block)``; ``item in block`` counts the items of the samples this rank needs.
        """
        if epoch in self._plans:
            return self._plans[epoch]
        data, size, w = self.config.data, self.config.training.batch_size, self.windows
        first = heldout_count(data) + epoch * data.n_train
        order = []  # (block, sample offset in block, window) of every item of the epoch, in training order
        blocks = []
        for b, offset in enumerate(range(0, data.n_train, self.block)):
            count = min(self.block, data.n_train - offset)
            blocks.append(_Block(first + offset, count, []))
            seed = np.random.SeedSequence([self.config.seed, epoch, b]).generate_state(1)[0]
            permutation = torch.randperm(count * w, generator=torch.Generator().manual_seed(int(seed)))
            order.extend((b, int(i) // w, int(i) % w) for i in permutation)
        batches = [order[start:start + size][self.rank::self.world_size] for start in range(0, len(order), size)]
        needed: list[set[int]] = [set() for _ in blocks]
        for batch in batches:
            for b, s, _ in batch:
                needed[b].add(s)
        for block, samples in zip(blocks, needed):
            block.needed = sorted(samples)
        rows = [{s: r for r, s in enumerate(block.needed)} for block in blocks]
        mine = [[(b, rows[b][s] * w + j) for b, s, j in batch] for batch in batches]
        self._plans = {e: p for e, p in self._plans.items() if e >= epoch - 1}
        self._plans[epoch] = (blocks, mine)
        return blocks, mine

    def _tasks(self, start: int) -> Iterator[tuple[tuple[int, int], list[int]]]:
        for epoch in range(start, self.config.training.epochs):
            blocks, _ = self.plan(epoch)
            for b, block in enumerate(blocks):
                if block.needed:
                    yield (epoch, b), [block.first + s for s in block.needed]

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]]:
        epoch = self.epoch
        if self.stream is None or epoch != self._next_epoch:
            self._start(epoch)
        blocks, mine = self.plan(epoch)
        last_use = {b: k for k, batch in enumerate(mine) for b, _ in batch}
        for k, batch in enumerate(mine):
            if not batch:
                x, y, c = self.template.batch([0])
                yield x, y, c, torch.zeros(1, dtype=torch.long), 0
                continue
            parts = []
            for b in dict.fromkeys(b for b, _ in batch):
                self._load(epoch, b, blocks)
                items = [i for bb, i in batch if bb == b]
                parts.append(blocks[b].dataset.batch(torch.tensor(items)))
            for b in [b for b, last in last_use.items() if last == k]:
                blocks[b].dataset = None  # free what this rank has used up
            x, y, c = (torch.cat(tensors) if len(tensors) > 1 else tensors[0] for tensors in zip(*parts))
            yield x, y, c, torch.arange(len(batch)), len(batch)
        self._next_epoch = epoch + 1

    def _start(self, epoch: int) -> None:
        from pde_data.streaming import DaskSampleStream, SampleStream, sample_file

        self._stop()
        if self.options.keep_samples is not None:
            self.keeper = sample_file(self.options.keep_samples, self.resolved)
            self._keep_heldout()
        if self.options.scheduler is None:
            self.stream = SampleStream(self.resolved, self._tasks(epoch), workers=self.options.workers,
                                       ahead=self.options.ahead)
        else:
            if self.cluster is None:  # closed by an earlier close()
                self.cluster = self.options.cluster()
                self.cluster.open()
            self.stream = DaskSampleStream(self.resolved, self._tasks(epoch), self.cluster, ahead=self.options.ahead)
        self._next_epoch = epoch

    def _load(self, epoch: int, b: int, blocks: list[_Block]) -> None:
        """Take blocks from the stream until block ``b`` of ``epoch`` is loaded."""
        from pde_data.streaming import as_dataset

        while blocks[b].dataset is None:
            key, indices, arrays = next(self.stream)
            if self.keeper is not None:
                self.keeper.write(indices, arrays)
                if self.keeper.written().all():
                    self.keeper.finish()
            got_epoch, got_block = key
            if got_epoch != epoch:
                raise RuntimeError(f"online stream out of order: block of epoch {got_epoch} during epoch {epoch}")
            ds = as_dataset(self.resolved, indices, arrays)
            blocks[got_block].dataset = load_rows(ds, self.config.data, np.arange(len(indices)))

    def _keep_heldout(self) -> None:
        """Copy the held-out samples into the file of kept samples (once)."""
        import h5py

        from pde_data.family import get_family

        n = heldout_count(self.config.data)
        if self.keeper.written()[:n].all():
            return
        names = list(get_family(self.resolved.problem)(self.resolved.settings).layout().variables)
        with h5py.File(self.heldout, "r") as f:
            self.keeper.write(range(n), {name: f[name][:n] for name in names})
