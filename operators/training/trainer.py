"""The trainer: epochs of optimiser steps, validation, checkpoints, metrics and exact resume.

A run folder (see :mod:`.run_folder`) holds ``run_config.json``, the per-epoch history
``training.csv`` / ``training.json`` (train loss, validation error, learning rate, time; with a
``training.physics`` section also ``physics_loss``, the mean unweighted PDE residual of the epoch's
batches, while ``train_loss`` stays the data term) and the checkpoints ``best/`` and ``last/`` written by ``operators.save`` (model, normalisers, grid, dataset
fingerprint, protocol); ``last/`` also holds the training state.

Reproducibility: the model is initialised from ``seed``; epoch ``e`` shuffles with a generator
seeded from ``(seed, e)``; the learning rate is a pure function of the step (see
:mod:`.schedules`); other randomness (pushforward depths, dropout) uses torch's global generator,
whose state is saved with every ``last/`` checkpoint. Resuming from ``last/`` therefore replays
exactly what an uninterrupted run does, whether the run was killed or stopped by ``max_minutes``.

Safety: :meth:`Trainer.fit` claims the run folder (:func:`.run_folder.claim`: a new or empty folder,
one trainer at a time), records the identity of the data (:mod:`.dataset_identity`; a resume on other
data is refused), and stops at the first non-finite loss or gradient (:mod:`.divergence`) before the
optimiser takes that step, so ``last/`` stays the last good epoch. The model's size is checked against
free memory on the meta device before it is built.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from operators.training import progress as progress_record
from operators.training import run_folder
from operators.training.config import RunConfig
from operators.training.distributed import Distributed, ItemView
from operators.training.divergence import NonFiniteStep, TrainingDiverged, check_gradients, stop_message
from operators.training.evaluation import predictions
from operators.training.losses import loss_function, relative_l2
from operators.training.model_settings import checkpoint_extra, model_settings
from operators.training.online import StreamOptions
from operators.training.optimizers import build_optimizer
from operators.training.phases import Phases
from operators.training.precision import Precision
from operators.training.schedules import extended_lr_factor, set_lr
from operators.training.surrogate import Surrogate, fit_increment_normalizer
from pde_data.loading import DataBundle, make_datasets
from solvers.errors import ConfigError, PdeopError


@dataclasses.dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`."""

    run_dir: Path
    epochs_done: int
    finished: bool
    best_score: float
    history: list[dict[str, Any]]


class Trainer:
    """Train the model of a :class:`RunConfig` into ``run_dir``.

    Parameters
    ----------
    config
        The checked run configuration.
    run_dir
        Output folder (created).
    device
        ``cpu`` or ``cuda``.
    progress
        Show a tqdm progress bar on stderr.
    log
        Receives one-line messages (default: print to stderr).
    distributed
        This process's rank among several training processes (:mod:`.distributed`; default: one
        process). Its device replaces ``device``; only rank 0 shows progress and logs.
    stream
        How an online run (``data.source: online``, :mod:`.online`) generates its samples here.
    """

    def __init__(self, config: RunConfig, run_dir: str | Path, device: str = "cpu", progress: bool = True,
                 log: Callable[[str], None] | None = None, distributed: Distributed | None = None,
                 stream: StreamOptions | None = None) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.dist = distributed or Distributed(device=device)
        self.device = self.dist.device
        self.progress = progress and self.dist.is_main
        self.log = log or (lambda message: print(message, file=sys.stderr))
        if not self.dist.is_main:
            self.log = lambda message: None
        self.precision = Precision(config.training.precision, self.device)
        self.phases = Phases(rank=self.dist.rank)  # per-phase seconds when $PDEOP_PHASES is set
        torch.manual_seed(config.seed)
        self.data: DataBundle = self._load_data(stream)
        train = self.data.train
        self.t_out = train.out_channels if train.time_dependent else None
        self.step = config.call_steps(self.t_out) if train.time_dependent else None
        if self.step and self.t_out % self.step:
            raise ConfigError(f"the data gives t_out = {self.t_out} target steps, not a multiple of "
                              f"training.step = {self.step}; set data.t_out")
        out_channels = self.step if train.time_dependent else train.out_channels
        settings = model_settings(config, train.in_channels + train.cond_channels, out_channels,
                                  train.space_shape, self.data.info["periodic"])
        from operators.checkpoint import Operator
        from operators.registry import build, check_fits_memory, layout

        # weights, gradients and two Adam moments, before anything is allocated
        check_fits_memory(layout(settings), copies=4, what="the model of this config")
        info = self.data.info
        history = train.t_in if train.time_dependent else None
        normalizers = self.data.normalizers
        if config.training.predict == "increment":  # the model's outputs are changes: normalise them as such
            normalizers = dataclasses.replace(normalizers, output=fit_increment_normalizer(
                train if hasattr(train, "array_chunks") else train.trajectories, self.step,
                config.data.normalization, info["periodic"]))
        operator = Operator(build(settings), normalizers.to_dict(),
                            grid={"dims": info["space_dims"], "shape": list(train.space_shape), "coords": info["grid"],
                                  "periodic": info["periodic"]},
                            dataset=info["fingerprint"], extra=checkpoint_extra(config, info, history, self.step, self.t_out))
        self.surrogate = Surrogate(operator, history=history, step=self.step,
                                   increment=config.training.predict == "increment")
        self.surrogate.to(self.device)
        self.optimizer = build_optimizer(self.surrogate.model.parameters(), config.training.optimizer)
        periodic = self.data.info["periodic"]
        self.loss = loss_function(config.training.loss, periodic)
        self.physics = None
        if config.training.physics is not None:
            from operators.training.physics_term import PhysicsTerm

            self.physics = PhysicsTerm(config.training.physics, config.data.replace(path=self.data.info["path"]),
                                       self.data.info, train)
            if self.dist.active:
                self.physics.mean_across = self._physics_mean
        self.augment = None
        if config.data.augment is not None:  # symmetry transforms of the training windows, drawn per (seed, epoch, item)
            from pde_data.augmentation import make_augmenter

            self.augment = make_augmenter(config.data, train, config.seed, forcing_fixed=self.physics is not None)
        self._counted = True
        self._forward = self.dist.wrap(self.surrogate, lambda *batch: self._predict(*batch))
        self._check_fits()

    def _load_data(self, stream: StreamOptions | None) -> DataBundle:
        """The run's splits: from ``data.path``, or the online stream with its held-out file (made by rank 0)."""
        if self.config.data.source != "online":  # with several ranks each reads its items' samples on demand
            return make_datasets(self.config.data, lazy_train=self.dist.active)
        from operators.training import online

        self.dist.from_main(lambda: online.prepare_heldout(self.config, self.run_dir, self.progress), share=False)
        return online.load_bundle(self.config, self.run_dir, self.dist.rank, self.dist.world_size, stream)

    # ------------------------------------------------------------------ set-up checks
    def _check_fits(self) -> None:
        """One forward pass on a training item, to turn a shape mismatch into a clear ConfigError."""
        x, y, c = (t.to(self.device) for t in self.data.train.batch([0]))
        target = y[:, :self.step] if self.step else y
        try:
            with torch.no_grad():
                out = self.surrogate(x, c)
        except (RuntimeError, ValueError) as exc:  # what torch and the models raise for bad shapes
            raise ConfigError(f"model {self.config.model['model']!r} cannot take the data's input of shape "
                              f"{tuple(x.shape[1:])} plus {c.shape[1]} conditioning channels: "
                              f"{str(exc).splitlines()[0]}") from None
        if out.shape != target.shape:
            raise ConfigError(f"model {self.config.model['model']!r} outputs shape {tuple(out.shape[1:])} but the data "
                              f"target of one call has shape {tuple(target.shape[1:])}")
        if self.physics is not None:
            with torch.no_grad():
                self.physics(x, out, [0])  # a residual the data cannot give fails here, before training

    # ------------------------------------------------------------------ one batch
    def _predict(self, x: torch.Tensor, y: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                 torch.Tensor, int]:
        """One batch through the training mode: prediction and target as the loss's terms (``step``-blocks
        for autoregressive modes), the predicted trajectory (the consecutive states after the input window,
        for the physics term) and the number of terms."""
        mode = self.config.training.mode
        if self.step is None or mode == "direct":
            pred = self.surrogate(x, c)
            return pred, y, pred, x.shape[0]
        n_calls = y.shape[1] // self.step
        if mode == "teacher-forcing":
            trajectory = pred = self.surrogate.teacher_forced(x, y, c)
        elif mode == "unrolled":
            trajectory = pred = self.surrogate.rollout(x, c, n_calls)
        else:  # pushforward: a random number of calls without gradient, then one with it
            depth = int(torch.randint(n_calls, (1,)).item())
            trajectory = self.surrogate.rollout(x, c, depth + 1, grad_calls=1)
            pred = trajectory[:, -self.step:]
            y = y[:, depth * self.step:(depth + 1) * self.step]
            n_calls = 1
        blocks = lambda t: t.reshape(t.shape[0] * n_calls, self.step, *t.shape[2:])  # noqa: E731
        return blocks(pred), blocks(y), trajectory, x.shape[0] * n_calls

    def batch_loss(self, x: torch.Tensor, y: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Data loss of one batch through the training mode, as :meth:`train_step` trains on it.

        Parameters
        ----------
        x, y, c
            A batch of the training split (``data.train.batch(items)``), on the trainer's device.

        Returns
        -------
        loss, terms
            The loss reduced per ``training.loss_reduction`` (differentiable) and the number of
            terms it holds (items, times model calls for the autoregressive modes).
        """
        pred, target, _, terms = self._predict(x, y, c)
        return self.loss(pred, target, self.config.training.loss_reduction), terms

    def train_step(self, x: torch.Tensor, y: torch.Tensor, c: torch.Tensor, items: torch.Tensor,
                   count: int | None = None) -> tuple[float, int, float | None]:
        """One optimiser step on a batch, exactly as :meth:`fit` takes it (at the current learning rate).

        The objective is the data loss plus ``training.physics.weight`` times the physics residual
        (when configured); gradients are clipped to ``training.grad_clip`` (when set). The forward
        pass runs in ``training.precision`` (:mod:`.precision`), the loss in float32. With several
        processes the batch is this rank's part of the global batch and the returned numbers are
        the global batch's (:meth:`.distributed.Distributed.combine`).

        Parameters
        ----------
        x, y, c
            A batch of the training split, on the trainer's device.
        items
            The batch's item indices in the training split (the physics term reads per-item data).
        count
            How many of the items count (default all; 0 for a rank's placeholder item, see
            :meth:`.distributed.Distributed.shard`).

        Returns
        -------
        loss, terms, physics
            The data loss, its number of terms (see :meth:`batch_loss`) and the unweighted physics
            residual (None without a physics term).

        Raises
        ------
        NonFiniteStep
            If the loss, the physics residual or a gradient is not finite (on any rank); the step is
            not taken.
        """
        cfg = self.config.training
        count = len(items) if count is None else count
        self._counted = count > 0
        with self.phases("forward"):
            with self.precision.autocast():
                pred, target, trajectory, terms = self._forward(x, y, c)
            loss = self.loss(pred.float(), target.float(), cfg.loss_reduction)
            physics = self._physics_loss(x, trajectory.float(), items)
        with self.phases("combine"):
            totals = self.dist.combine(loss, terms, physics, count, cfg.loss_reduction)
        objective = loss if totals.data_scale == 1.0 else loss * totals.data_scale
        if physics is not None and cfg.physics.weight > 0:
            scale = cfg.physics.weight * totals.physics_scale
            objective = objective + scale * physics
        self.optimizer.zero_grad(set_to_none=True)
        with self.phases("backward"):
            self.precision.backward(objective)
        with self.phases("step"):
            self._update()
        return totals.loss, totals.terms, totals.physics

    def _update(self) -> None:
        """Unscale and check the gradients, clip them, and take the optimiser step."""
        cfg = self.config.training
        parameters = list(self.surrogate.model.parameters())
        self.precision.unscale(parameters)
        if not self.precision.skips_overflow():
            check_gradients(self.surrogate.model.named_parameters())
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(parameters, cfg.grad_clip)
        self.precision.step(self.optimizer)

    def _physics_mean(self, values: torch.Tensor) -> torch.Tensor:
        """Mean over the global batch (every rank's counted items) for the physics term's normalisation."""
        return self.dist.global_mean(values, self._counted)

    def _physics_loss(self, x: torch.Tensor, prediction: torch.Tensor, items: torch.Tensor) -> torch.Tensor | None:
        """The unweighted residual term (no gradient when its weight is 0: it is only logged)."""
        if self.physics is None:
            return None
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.physics.weight > 0):
            return self.physics(x, prediction, items)

    def evaluate_split(self, dataset) -> float:
        """Mean relative L2 error of the whole target over ``dataset`` (autoregressive if so trained).

        With several processes each rank predicts its share of the items and the sums are combined.
        """
        part = ItemView(dataset, self.dist.share(len(dataset)))
        total = sum(float(relative_l2(pred, y, reduction="sum")) for pred, y in predictions(
            self.surrogate, part, batch_size=self.config.training.eval_batch_size, device=self.device))
        total, count = self.dist.all_sum([total, float(len(part))])
        return total / max(count, 1.0)

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool = False, max_minutes: float | None = None) -> TrainResult:
        """Train until ``training.epochs`` or until ``max_minutes`` have passed (checked after each epoch).

        Parameters
        ----------
        resume
            Continue the run in ``run_dir`` from its ``last/`` checkpoint.
        max_minutes
            Stop after the first epoch that ends past this wall time (``last/`` is saved, so
            ``resume`` continues the same run).

        Raises
        ------
        ConfigError
            If the run folder cannot be claimed (:func:`.run_folder.claim`), the resume does not
            match the run, or training diverged (:class:`.divergence.TrainingDiverged`).
        """
        lock = self.dist.from_main(lambda: run_folder.claim(self.run_dir, resume), share=False)
        try:
            return self._fit(resume, max_minutes)
        finally:
            if hasattr(self.data.train, "close"):  # the online stream, a split read on demand
                self.data.train.close()
            if lock is not None:
                lock.release()
            self.phases.write()

    def _fit(self, resume: bool, max_minutes: float | None) -> TrainResult:
        cfg = self.config.training
        identity = self.dataset_identity()
        self.dist.check_same(identity["content_sha256"], "data (content checksum of the loaded splits)")
        progress = self.dist.from_main(lambda: self._resume(identity) if resume else self._start(identity))
        self.dist.sync_state({"surrogate": self.surrogate}, self.optimizer)
        self.precision.load_state(progress.get("grad_scaler"))
        steps_per_epoch = math.ceil(len(self.data.train) / cfg.batch_size)
        started = time.perf_counter()
        bar = progress_record.bar(self.config.training.epochs, progress["epoch"]) if self.progress else None
        try:
            finished = self._epochs(progress, steps_per_epoch, started, bar, max_minutes)
        finally:
            if bar is not None:
                bar.close()
        return TrainResult(self.run_dir, progress["epoch"], finished, progress["best_score"], progress["history"])

    def _start(self, identity: dict[str, Any]) -> dict[str, Any]:
        run_folder.start(self.run_dir, self.config.to_dict(), identity)
        return progress_record.fresh(self.config.training.epochs)

    def _resume(self, identity: dict[str, Any] | None = None) -> dict[str, Any]:
        return progress_record.resume(self.run_dir, self.config, identity or self.dataset_identity(), self.surrogate,
                                      self.optimizer, self.device, self.log)

    def _batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]]:
        """``(x, y, c, items, count)`` of every step of ``epoch``: this rank's part of each global batch
        (:meth:`.distributed.Distributed.shard`) of the epoch's permutation, seeded from ``(seed, epoch)``."""
        train, size = self.data.train, self.config.training.batch_size
        if self.online:
            train.set_epoch(epoch)
            for *batch, items, count in train:
                yield *self._augmented(batch, items, epoch), items, count
            return
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch))
        for first in range(0, len(train), size):
            items, count = self.dist.shard(order[first:first + size])
            yield *self._augmented(train.batch(items), items, epoch), items, count

    def _augmented(self, batch, items: torch.Tensor, epoch: int) -> tuple[torch.Tensor, ...]:
        """``(x, y, c)`` on the device, with the symmetry transforms of ``data.augment`` applied if set."""
        if self.augment is not None:
            batch = self.augment(tuple(batch), items, epoch)
        return tuple(t.to(self.device) for t in batch)

    def _epochs(self, progress: dict[str, Any], steps_per_epoch: int, started: float, bar,
                max_minutes: float | None) -> bool:
        """Run epochs until done or past ``max_minutes``; returns whether training finished."""
        cfg = self.config.training
        finished = progress["epoch"] >= cfg.epochs or bool(progress.get("stopped_early"))
        while not finished:
            epoch = progress["epoch"]
            epoch_start = time.perf_counter()
            self.phases.start_epoch(epoch + 1)
            self.surrogate.train()
            loss_sum, terms, physics_sum, batches = 0.0, 0, 0.0, 0
            waited = self.data.train.wait_seconds if self.online else 0.0
            for x, y, c, items, count in self._stopping_together(self._batches(epoch), progress):
                lr = cfg.optimizer.lr * extended_lr_factor(cfg.scheduler, progress["step"], steps_per_epoch,
                                                           progress["segment_ends"])
                set_lr(self.optimizer, lr)
                try:
                    loss, n_terms, physics = self.train_step(x, y, c, items, count)
                except NonFiniteStep as exc:
                    raise TrainingDiverged(self._stop_message(exc, progress, lr)) from None
                if physics is not None:
                    physics_sum += physics
                batches += 1
                progress["step"] += 1
                loss_sum += loss * (n_terms if cfg.loss_reduction == "mean" else 1)
                terms += n_terms
            row = {"epoch": epoch + 1, "train_loss": loss_sum / terms, "lr": lr}
            if self.physics is not None:
                row["physics_loss"] = physics_sum / batches
            if self.online:
                row["data_wait_s"] = self.data.train.wait_seconds - waited
            if self.data.val is not None:
                with self.phases("validation"):
                    row["val_l2"] = self.evaluate_split(self.data.val)
            row["seconds"] = time.perf_counter() - epoch_start
            improved, stall = progress_record.record_epoch(progress, row, cfg.early_stopping)
            with self.phases("save"):
                self.dist.from_main(lambda: progress_record.save_epoch(self.run_dir, self.config, self.surrogate,
                                                                       self.optimizer, self.precision, progress, improved))
            self.phases.end_epoch()
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k in ("train_loss", "physics_loss", "val_l2")})
            finished = progress["epoch"] >= cfg.epochs or stall is not None
            if stall is not None:
                self.log(f"stopped early after epoch {progress['epoch']}/{cfg.epochs}: val_l2 has not improved "
                         f"for {stall} epochs (best {progress['best_score']:.4g})")
            late = max_minutes is not None and time.perf_counter() - started > 60 * max_minutes
            if not finished and self.dist.from_main(lambda: late):
                self.log(f"stopped after epoch {progress['epoch']}/{cfg.epochs}: --max-minutes {max_minutes} "
                         f"reached; continue with --resume")
                break
        return finished

    def _stopping_together(self, batches: Iterator[Any], progress: dict[str, Any]) -> Iterator[Any]:
        """``batches``; a failure to produce one (a dead online generator) stops every rank at that step,
        with what the run folder still holds added to the message."""
        while True:
            try:
                with self.phases("data"):
                    batch = next(batches)
            except StopIteration:
                return
            except PdeopError as exc:
                self.dist.fail(str(exc))
                stopped = copy.copy(exc)
                stopped.args = (f"training stopped in epoch {progress['epoch'] + 1}: {exc}; {self._saved(progress)}",)
                raise stopped from None
            yield batch

    @property
    def online(self) -> bool:
        """Whether the training samples are generated while training (:mod:`.online`)."""
        return self.config.data.source == "online"

    def _stop_message(self, error: NonFiniteStep, progress: dict[str, Any], lr: float) -> str:
        where = f"epoch {progress['epoch'] + 1}, step {progress['step'] + 1}"
        return stop_message(error, where, lr, progress["step"] == 0, self._saved(progress))

    def _saved(self, progress: dict[str, Any]) -> str:
        return progress_record.saved(self.run_dir, progress)

    def dataset_identity(self) -> dict[str, Any]:
        """The identity of the loaded data (:func:`.dataset_identity.identify`), as recorded in the run folder."""
        from operators.training.dataset_identity import identify

        return identify(self.data.info["path"], self.data.info["fingerprint"],
                        (self.data.train, self.data.val, self.data.test))

    # ------------------------------------------------------------------ files
