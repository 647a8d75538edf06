"""Faults around training runs: foreign and shared output folders, kill -9, non-finite losses and data,
other data on resume, impossible flags, outputs that must not be clobbered, read-only and full disks.

Every command ends with exit 0 or with exit 2 and one line on stderr; nothing the user made is changed,
no temporary file is left behind, and a run stays resumable to the numbers an uninterrupted run gives.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from operators.cli import main
from operators.training import run_folder
from operators.training.trainer import Trainer
from tests.operators import multiplier_model, tiny_data  # noqa: F401  (registers test-multiplier)
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)

ROOT = Path(__file__).resolve().parents[2]


def _config(data: Path, **training) -> dict:
    return {
        "seed": 0,
        "data": {"path": str(data), "protocol": "window", "t_in": 1, "t_out": 2, "windows": "all",
                 "n_train": 8, "n_val": 2, "n_test": 2, "periodic": True},
        "model": {"model": "test-multiplier", "modes": 6},
        "training": {"epochs": 3, "batch_size": 4, "mode": "teacher-forcing", "step": 1,
                     "optimizer": {"lr": 0.01}, **training},
    }


def _write(path: Path, mapping: dict) -> Path:
    path.write_text(yaml.safe_dump(mapping))
    return path


def _leftovers(folder: Path) -> list[str]:
    """Hidden temporary names (staged files and folders) anywhere below ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if ".tmp-" in p.name
                  or ".partial-" in p.name or ".old-" in p.name)


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    return err


@pytest.fixture(scope="module")
def heat(tmp_path_factory) -> Path:
    return tiny_data.heat(tmp_path_factory.mktemp("data") / "heat.h5", n_samples=12, n=16, steps=3, nu=0.005, dt=0.5)


@pytest.fixture(scope="module")
def trained(heat, tmp_path_factory) -> Path:
    """A finished three-epoch run (copy it before changing it)."""
    folder = tmp_path_factory.mktemp("trained")
    config = _write(folder / "m.yaml", _config(heat))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    assert main(["train", str(config), "--out", str(folder / "run"), "--quiet"]) == 0
    torch.set_num_threads(threads)
    return folder / "run"


# ---------------------------------------------------------------------------- the output folder
def test_a_folder_holding_other_things_is_refused_and_left_alone(heat, tmp_path, capsys):
    """--out naming a folder with the user's files is refused before anything is loaded, naming what it
    holds; nothing in it changes. An empty folder trains; a file as --out is refused."""
    config = _write(tmp_path / "m.yaml", _config(heat, epochs=1))
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "a.txt").write_text("keep")
    assert main(["train", str(config), "--out", str(mine), "--quiet"]) == 2
    assert "holds 2 entries that are not a pdeop run: a.txt, sub" in _error(capsys)
    assert sorted(p.name for p in mine.iterdir()) == ["a.txt", "sub"] and (mine / "a.txt").read_text() == "keep"
    (tmp_path / "empty").mkdir()
    assert main(["train", str(config), "--out", str(tmp_path / "empty"), "--quiet"]) == 0
    assert main(["train", str(config), "--out", str(config), "--quiet"]) == 2
    assert "is a file, not a run folder" in _error(capsys)


def test_a_second_trainer_is_refused_naming_the_first_and_kill_9_frees_the_folder(trained, tmp_path, capsys):
    """While another process holds the run folder, `train --resume` is refused with that process's PID
    (like generate); once the holder is killed with SIGKILL the kernel has dropped its lock and the
    resume runs."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from operators.training.run_folder import claim; "
                               "lock = claim(sys.argv[1], resume=True); print('held', flush=True); sys.stdin.read()",
         str(run)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        config = _write(tmp_path / "m.yaml", run_folder.read_config(run))
        assert main(["train", str(config), "--out", str(run), "--quiet", "--resume"]) == 2
        assert f"is being trained by process {holder.pid}" in _error(capsys)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(["train", str(config), "--out", str(run), "--quiet", "--resume"]) == 0
    assert _leftovers(run) == []


_TRAIN = "import sys, tests.operators.multiplier_model; from operators.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_gives_the_uninterrupted_weights(heat, tmp_path):
    """`pdeop train` killed with SIGKILL twice at random moments (between or inside epochs, while
    checkpoints are written) and then resumed ends with weights and losses bit-identical to an
    uninterrupted run, and leaves no temporary file behind."""
    config = _write(tmp_path / "m.yaml", _config(heat, epochs=40))
    args = ["train", str(config), "--quiet", "--threads", "1"]
    assert main([*args, "--out", str(tmp_path / "straight")]) == 0
    run = tmp_path / "killed"
    moments = random.Random(11)
    for attempt in range(2):
        command = [sys.executable, "-c", _TRAIN, *args, "--out", str(run)] + (["--resume"] if attempt else [])
        process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not (run / "training.json").is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(moments.uniform(0.0, 0.4))
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert main([*args, "--out", str(run), "--resume"]) == 0
    straight = load_file(str(tmp_path / "straight" / "last" / "weights.safetensors"))
    resumed = load_file(str(run / "last" / "weights.safetensors"))
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
    losses = [[row["train_loss"] for row in run_folder.read_history(r)] for r in (tmp_path / "straight", run)]
    assert len(losses[0]) == 40 and losses[0] == losses[1]
    assert _leftovers(run) == []


# ---------------------------------------------------------------------------- non-finite numbers
class _NaNGradient(torch.autograd.Function):
    """Identity forward, NaN backward: a finite loss with a non-finite gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("nan"))


@pytest.mark.parametrize("fault", ["loss", "gradient"])
def test_a_non_finite_step_stops_training_and_the_run_resumes_identically(heat, tmp_path, monkeypatch, capsys, fault):
    """A NaN loss (or a finite loss with a NaN gradient) in epoch 2 stops `train` with exit 2 naming epoch,
    step and the likely cause, before that step is taken: last/ and training.json stay at epoch 1.
    Resumed without the fault, the run ends bit-identical to one that never met it."""
    config = _write(tmp_path / "m.yaml", _config(heat))
    assert main(["train", str(config), "--out", str(tmp_path / "straight"), "--quiet"]) == 0
    original = Trainer._predict
    calls = {"n": 0}

    def faulty(self, *args):
        pred, target, trajectory, terms = original(self, *args)
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 2 (4 batches per epoch), step 6
            pred = pred * float("nan") if fault == "loss" else _NaNGradient.apply(pred)
        return pred, target, trajectory, terms

    monkeypatch.setattr(Trainer, "_predict", faulty)
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "--quiet"]) == 2
    err = _error(capsys)
    what = "the loss is NaN" if fault == "loss" else "the gradient of weight is NaN"
    assert f"training stopped at epoch 2, step 6: {what}" in err and "learning rate" in err
    assert f"{run / 'last'} holds epoch 1" in err
    assert len(run_folder.read_history(run)) == 1 and _leftovers(run) == []
    monkeypatch.setattr(Trainer, "_predict", original)
    assert main(["train", str(config), "--out", str(run), "--quiet", "--resume"]) == 0
    a = load_file(str(tmp_path / "straight" / "last" / "weights.safetensors"))
    b = load_file(str(run / "last" / "weights.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_learning_rate_that_overflows_stops_at_the_first_step(heat, tmp_path, capsys):
    """lr = 1e38 makes Adam's first update overflow float32 (a RuntimeError inside torch before): exit 2
    blaming the learning rate; lr = inf is refused as a setting; the physics-informed trainer alike."""
    config = _write(tmp_path / "m.yaml", _config(heat))
    assert main(["train", str(config), "--out", str(tmp_path / "a"), "--quiet",
                 "--set", "training.optimizer.lr=1e38"]) == 2
    err = _error(capsys)
    assert "epoch 1, step 1" in err and "learning rate" in err and "no checkpoint was written" in err
    assert main(["train", str(config), "--out", str(tmp_path / "b"), "--quiet",
                 "--set", "training.optimizer.lr=inf"]) == 2
    assert "training.optimizer.lr" in _error(capsys) and not (tmp_path / "b").exists()
    pinn = {"method": "pinn", "pde": {"name": "convection", "c": 2.0}, "model": {"width": 8, "depth": 2},
            "training": {"steps": 4, "n_residual": 32, "n_initial": 8, "n_boundary": 4, "log_every": 2,
                         "eval_every": 2, "threads": 1, "optimizer": {"lr": 1e38}},
            "evaluation": {"n_t": 5, "n_space": 8}}
    assert main(["train", str(_write(tmp_path / "p.yaml", pinn)), "--out", str(tmp_path / "p"), "--quiet"]) == 2
    assert "training stopped at step 1" in _error(capsys)


def test_non_finite_data_are_named_by_variable_and_sample(tmp_path, capsys):
    """A NaN stored in sample 3 (t index 2) and a value beyond float32 in another file are refused when
    the data are loaded, naming variable, sample and position."""
    import h5py

    path = tiny_data.heat(tmp_path / "heat.h5", n_samples=12, n=16, steps=3, nu=0.005, dt=0.5)
    with h5py.File(path, "r+") as f:
        f["u"][3, 2, 5] = float("nan")
    config = _write(tmp_path / "m.yaml", _config(path))
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "variable 'u'" in (err := _error(capsys)) and "holds nan at sample 3, t index 2, x index 5" in err
    assert not (tmp_path / "run").exists()
    huge = np.full((12, 3, 2), 1e39)  # finite in float64, infinite in float32
    big = tiny_data.write_dataset(tmp_path / "big.h5", "heat", {"t": [0.0, 1.0, 2.0], "x": [0.0, 0.5]},
                                  {"u": (("sample", "t", "x"), huge)})
    assert main(["train", str(_write(tmp_path / "b.yaml", _config(big))), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    assert "a value beyond the float32 range at sample 0" in _error(capsys)


def test_resume_on_other_data_is_refused_but_evaluation_on_other_data_is_allowed(heat, tmp_path, capsys):
    """After the dataset file is replaced by one with other values (another seed, same settings),
    `--resume` is refused with the reason; `evaluate --data` on it still works (that is its purpose)."""
    data = tmp_path / "heat.h5"
    shutil.copy(heat, data)
    config = _write(tmp_path / "m.yaml", _config(data))
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "--quiet", "--max-minutes", "0"]) == 0
    recorded = json.loads((run / "dataset.json").read_text())
    assert recorded["size"] == data.stat().st_size and len(recorded["content_sha256"]) == 64
    data.unlink()
    tiny_data.heat(data, n_samples=12, n=16, steps=3, nu=0.005, dt=0.5, seed=1)
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(run), "--quiet", "--resume"]) == 2
    err = _error(capsys)
    assert "is not the dataset this run started with: the stored arrays differ" in err
    assert main(["evaluate", str(run), "--data", str(data), "--out", str(tmp_path / "other.json")]) == 0
    assert json.loads((tmp_path / "other.json").read_text())["n_items"] == 2


@pytest.mark.parametrize("argv", [
    ["train", "CONFIG", "--max-minutes", "nan"], ["train", "CONFIG", "--max-minutes", "inf"],
    ["train", "CONFIG", "--max-minutes", "-1"], ["train", "CONFIG", "--threads", "0"],
    ["evaluate", "RUN", "--samples", "0"], ["evaluate", "RUN", "--horizon", "-1"],
    ["evaluate", "RUN", "--threads", "x"],
])
def test_flags_outside_the_config_are_range_checked(trained, argv, capsys):
    """Flags that bypass the config's checks refuse NaN, infinity, negatives and zero: exit 2, one line."""
    argv = [str(trained) if a == "RUN" else str(trained.parent / "m.yaml") if a == "CONFIG" else a for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert f"argument {argv[2]}" in _error(capsys)


# ---------------------------------------------------------------------------- outputs
def test_evaluate_and_export_never_clobber_and_check_outputs_first(trained, tmp_path, monkeypatch, capsys):
    """An existing --out is refused (unchanged) without --overwrite and replaced with it; a folder or a
    path under a file is refused; all before the run is loaded (load_run is never called)."""
    import operators.training.runs as runs

    existing = tmp_path / "mine.json"
    existing.write_text("my notes")
    real_load = runs.load_run
    monkeypatch.setattr(runs, "load_run", lambda *a, **k: pytest.fail("the work started before the output check"))
    cases = [(["--out", str(existing)], "already exists; pass --overwrite"),
             (["--out", str(tmp_path)], "is a folder"),
             (["--out", str(existing / "x.json")], "is a file, so")]
    for command, extra in (("evaluate", []), ("export", ["--format", "torchscript"])):
        for out, message in cases:
            assert main([command, str(trained), *extra, *out]) == 2
            assert message in _error(capsys)
    assert existing.read_text() == "my notes"
    monkeypatch.setattr(runs, "load_run", real_load)
    assert main(["evaluate", str(trained), "--out", str(existing), "--overwrite"]) == 0
    assert json.loads(existing.read_text())["n_items"] == 2
    assert main(["export", str(trained), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "mine.json"]


@pytest.fixture
def nan_run(trained, tmp_path) -> Path:
    """A copy of the trained run whose best/ weights are NaN (as a diverged or damaged run would have)."""
    import operators

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    operator = operators.load(run / "best")
    with torch.no_grad():
        operator.model.weight.fill_(float("nan"))
    operators.save(operator, run / "best")
    return run


def test_export_refuses_a_model_with_non_finite_outputs(nan_run, tmp_path, capsys):
    """A checkpoint whose weights hold NaN gives NaN outputs; export refuses it (NaN compared with a
    tolerance is false, which passed before) and writes nothing."""
    out = tmp_path / "m.pt2"
    assert main(["export", str(nan_run), "--format", "torch-export", "--out", str(out)]) == 2
    assert "non-finite outputs" in _error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_non_finite_metrics_are_strict_json_with_a_flag(nan_run, capsys):
    """A model giving NaN is evaluated (the user may want to see it) and metrics.json stays strict JSON:
    the NaNs are nulls, listed under non_finite."""
    assert main(["evaluate", str(nan_run)]) == 0
    text = (nan_run / "metrics.json").read_text()
    metrics = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in metrics.json"))
    assert metrics["rel_l2"] is None and metrics["non_finite"]["values"]["rel_l2"] == "NaN"
    assert "non_finite" in capsys.readouterr().out


@pytest.fixture
def read_only(tmp_path):
    """A folder nobody may write in: permission bits for a normal user; root ignores them, so for root the
    folder is made immutable (chattr +i), or the test is skipped saying why."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)],
                                                        capture_output=True).returncode != 0:
        pytest.skip("running as root, which ignores permission bits, and chattr +i is not available here")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_read_only_output_folder_is_refused_before_the_work(trained, read_only, capsys):
    """evaluate / export / plot / train aimed at a folder that refuses new files stop before loading
    anything, exit 2 naming the folder."""
    for argv in (["evaluate", str(trained), "--out", str(read_only / "m.json")],
                 ["export", str(trained), "--format", "torchscript", "--out", str(read_only / "m.pt")],
                 ["plot", str(trained), "--out", str(read_only / "plots")],
                 ["train", str(trained.parent / "m.yaml"), "--out", str(read_only / "run"), "--quiet"]):
        assert main(argv) == 2
        assert f"cannot write in {read_only}" in _error(capsys)
    assert list(read_only.iterdir()) == []


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB file system filled to the last byte (a tmpfs mount; skipped where mounting is not allowed)."""
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to simulate a full disk ({mounted.stderr.decode().strip()[:80]})")
    try:
        (folder / "previous.json").write_text('{"kept": true}')
        try:
            with open(folder / "filler", "wb") as handle:
                while True:
                    handle.write(b"\0" * 4096)
                    handle.flush()
        except OSError:  # full: the point
            pass
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_leaves_the_previous_file_and_no_partial_one(trained, full_disk, capsys):
    """`evaluate --overwrite` onto a full file system fails with one line (no space left) and leaves the
    previous file as it was and no temporary file."""
    assert main(["evaluate", str(trained), "--out", str(full_disk / "previous.json"), "--overwrite"]) == 2
    assert "No space left on device" in _error(capsys)
    assert (full_disk / "previous.json").read_text() == '{"kept": true}'
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "previous.json"]
