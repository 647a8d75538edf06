"""Data-parallel training with two CPU processes (gloo): the same steps as one process, one writer, kill -9.

Two ranks are started once (``torch.distributed.run``, :mod:`tests.operators.ddp_worker`) and train a
tiny FNO on a small Burgers file in every training mode; the same configs are then trained in this
process and the parameters compared.

Tolerance of "the same parameters": the ranks compute the same per-item terms, but the global batch's
gradient is summed in another order (per-rank sums, then the all-reduce), so gradients differ by
float32 rounding: relative differences of a few ulps (unit roundoff 6e-8) times the number of summed
terms, amplified where terms cancel. Adam maps a relative gradient difference d to an update difference
of at most about ``lr * d`` per step (its update is ``lr * m / sqrt(v)``, invariant to the gradient's
scale), so after S steps the parameters differ by at most ``S * lr * d``. Allowing d = 1e-3 (a
cancellation amplification of about 1e4 over float32's roundoff) gives the bound ``S * lr * 1e-3``
used below; the observed differences are ~1e-6.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from operators.cli import main
from operators.training import run_folder
from operators.training.config import run_config_from_mapping
from operators.training.distributed import Distributed
from operators.training.trainer import Trainer
from pde_data.loading import make_datasets
from pde_data.pipeline import generate_dataset, resolve_config
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)

ROOT = Path(__file__).resolve().parents[2]
LR = 0.01

#: the training modes and variants compared with one process (name: training-section changes)
MODES = {
    "teacher-forcing": {"mode": "teacher-forcing"},
    "unrolled-sum": {"mode": "unrolled", "loss_reduction": "sum"},
    "pushforward": {"mode": "pushforward"},
    "direct": {"mode": "direct", "step": None},
    "physics": {"mode": "unrolled", "physics": {"weight": 0.5, "relative": True}},
    "online": {"mode": "teacher-forcing"},
}
#: the recipe of the Burgers file, which the online variant generates from while it trains
RECIPE = {"problem": "burgers", "preset": "fno", "seed": 3,
          "set": {"internal_resolution": 64, "resolution": 32, "T": 0.2, "dt": 1.0e-3}}
#: the run that is killed and resumed in the kill -9 test (its uninterrupted twin trains in the fixture)
LONG_EPOCHS = 20


def _burgers(path: Path) -> Path:
    config = resolve_config("burgers", "fno", samples=12, seed=RECIPE["seed"],
                            overrides=[f"{k}={v}" for k, v in RECIPE["set"].items()])
    generate_dataset(config, path, progress=False)
    return path


def _config(data: Path, epochs: int = 3, online: bool = False, **training) -> dict:
    """Batch 5 of 24 windows: steps of 5, 5, 5, 5, 4 items, so rank 1 gets 2 of the last batch's 4
    (and the direct mode's 8 items end with a batch of 3). ``online``: the same, generated while training
    in blocks of 3 samples."""
    section = {"epochs": epochs, "batch_size": 5, "mode": "teacher-forcing", "step": 1, "optimizer": {"lr": LR},
               **training}
    data_section = {"path": str(data), "protocol": "window", "t_in": 1, "t_out": 2, "windows": "all",
                    "n_train": 8, "n_val": 2, "n_test": 2}
    if online:
        data_section.update(source="online", generate=RECIPE, online={"block": 3})
    return {"seed": 0, "data": data_section, "model": {"model": "fno", "n_modes": [6], "width": 8, "n_layers": 2},
            "training": {k: v for k, v in section.items() if v is not None}}


def _write(path: Path, mapping: dict) -> Path:
    path.write_text(yaml.safe_dump(mapping))
    return path


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last" / "weights.safetensors"))


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Every mode (and the long run) trained by two ranks; returns (folder, configs)."""
    folder = tmp_path_factory.mktemp("ddp")
    data = _burgers(folder / "burgers.h5")
    configs = {name: _write(folder / f"{name}.yaml", _config(data, online=name == "online", **changes))
               for name, changes in MODES.items()}
    configs["long"] = _write(folder / "long.yaml", _config(data, epochs=LONG_EPOCHS))
    (folder / "logs").mkdir()
    pairs = [str(p) for name, config in configs.items() for p in (config, folder / "runs" / name)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(ROOT / "tests" / "operators" / "ddp_worker.py"), str(folder / "logs"), *pairs]
    result = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, configs


@pytest.mark.parametrize("mode", list(MODES))
def test_two_ranks_take_the_steps_of_one_process(two_ranks, mode, tmp_path):
    """With the same global batch, two ranks end with the parameters and losses of one process after
    3 epochs of 5 steps, in every training mode (a placeholder item on the rank left without one in a
    last batch, sum and mean reductions, the physics term with its relative scale over the global batch)
    and with online data (each rank generating the samples of its items)."""
    folder, configs = two_ranks
    config = run_config_from_mapping(yaml.safe_load(configs[mode].read_text()))
    Trainer(config, tmp_path / "one", progress=False).fit()
    one, two = _weights(tmp_path / "one"), _weights(folder / "runs" / mode)
    steps = 3 * 5
    bound = steps * LR * 1e-3  # see the module docstring
    assert one.keys() == two.keys()
    worst = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert worst <= bound, (worst, bound)
    histories = [run_folder.read_history(run) for run in (tmp_path / "one", folder / "runs" / mode)]
    for row_one, row_two in zip(*histories):
        assert row_two["train_loss"] == pytest.approx(row_one["train_loss"], rel=1e-5)
        assert row_two["val_l2"] == pytest.approx(row_one["val_l2"], rel=1e-4)
        if "physics_loss" in row_one:
            assert row_two["physics_loss"] == pytest.approx(row_one["physics_loss"], rel=1e-4)


def test_only_rank_zero_writes_the_run_folder(two_ranks):
    """Rank 1 opened no file for writing and created, renamed or removed nothing below the run folders;
    rank 0 wrote every run's config, checkpoints and history."""
    folder, configs = two_ranks
    rank0 = json.loads((folder / "logs" / "rank0.json").read_text())
    rank1 = json.loads((folder / "logs" / "rank1.json").read_text())
    assert rank1 == []
    for name in configs:
        assert any(name in change and "run_config.json" in change for change in rank0), name
        assert (folder / "runs" / name / "last" / "weights.safetensors").is_file()
        assert len(run_folder.read_history(folder / "runs" / name)) == (LONG_EPOCHS if name == "long" else 3)


def test_each_rank_reads_only_the_samples_of_its_items(two_ranks):
    """With a training file, each rank read at every step only samples of its own items of that step's
    global batch (the epoch's permutation from (seed, epoch), items r, r + 2, ...), and each sample it
    needed once over the run (the tiny split fits the reader's cache); before training, the shape check
    read the first sample."""
    folder, configs = two_ranks
    config = run_config_from_mapping(yaml.safe_load(configs["teacher-forcing"].read_text()))
    train = make_datasets(config.data).train
    for rank in range(2):
        reads = json.loads((folder / "logs" / f"reads{rank}.json").read_text())["teacher-forcing"]
        shard, steps = Distributed(rank, 2), []
        for epoch in range(3):
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch))
            for first in range(0, len(train), 5):
                items, _ = shard.shard(order[first:first + 5])
                steps.append({int(train.samples[p]) for p in train.item_sample[items].tolist()})
        setup, reads = reads[0], reads[1:]
        assert setup == [int(train.samples[0])] and len(reads) == len(steps)
        assert all(set(read) <= mine for read, mine in zip(reads, steps))
        assert sorted(row for read in [setup, *reads] for row in read) == sorted(set().union(*steps, set(setup)))


def _rank_pid(launcher: int, rank: int) -> int | None:
    """PID of the training process with ``RANK=rank`` among the descendants of ``launcher``."""
    todo, seen = [launcher], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    for pid in seen:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and b"LOCAL_RANK=" + str(rank).encode() in environ:
            return pid
    return None


@pytest.mark.slow
def test_kill_9_of_a_rank_then_resume_gives_the_uninterrupted_run(two_ranks, tmp_path):
    """`pdeop train --nproc 2` with rank 1 killed by SIGKILL after the first epochs stops with exit 128 + 9
    and one line naming the rank; `--resume` with two ranks ends with the weights and history of the
    uninterrupted two-rank run, bit for bit."""
    folder, configs = two_ranks
    run = tmp_path / "killed"
    args = [sys.executable, "-m", "operators.cli", "train", str(configs["long"]), "--out", str(run), "--quiet",
            "--nproc", "2"]
    launcher = subprocess.Popen(args, cwd=ROOT, env=_env(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    victim = None
    while launcher.poll() is None and time.monotonic() < deadline:
        if (run / "training.json").is_file():
            victim = _rank_pid(launcher.pid, 1)
            if victim:
                break
        time.sleep(0.01)
    assert victim is not None, "the run ended before rank 1 could be killed"
    os.kill(victim, signal.SIGKILL)
    err = launcher.communicate(timeout=120)[1]
    assert launcher.returncode == 128 + signal.SIGKILL, err
    assert "rank 1" in err and "SIGKILL" in err and "--resume" in err
    done = len(run_folder.read_history(run))
    assert 1 <= done < LONG_EPOCHS
    assert main(["train", str(configs["long"]), "--out", str(run), "--quiet", "--nproc", "2", "--resume"]) == 0
    straight, resumed = _weights(folder / "runs" / "long"), _weights(run)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    losses = [[row["train_loss"] for row in run_folder.read_history(r)] for r in (folder / "runs" / "long", run)]
    assert losses[0] == losses[1]
