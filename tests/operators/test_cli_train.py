"""pdeop train / evaluate / plot / export end to end on tiny data, and one-line exit-2 errors for bad configs."""

from __future__ import annotations

import json
import math
import sys
import types

import pytest
import torch
import yaml

from operators.cli import main
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)
from tests.operators import multiplier_model, tiny_data  # noqa: F401  (registers test-multiplier)
from tests.operators.torch_only import assert_program_reproduces


def _write(path, mapping):
    path.write_text(yaml.safe_dump(mapping))
    return path


def fno_config(data_path, **model):
    return {
        "seed": 0,
        "data": {"path": str(data_path), "protocol": "window", "t_in": 1, "t_out": 2, "windows": "all",
                 "n_train": 20, "n_val": 4, "n_test": 4, "periodic": True, "normalization": "global"},
        "model": {"model": "fno", "n_modes": [8], "width": 12, "n_layers": 2, **model},
        "training": {"epochs": 15, "batch_size": 10, "mode": "teacher-forcing", "step": 1,
                     "optimizer": {"lr": 0.01}, "scheduler": {"name": "cosine"}},
    }


@pytest.fixture
def heat(tmp_path):
    return tiny_data.heat(tmp_path / "heat.h5", n_samples=28, n=32, steps=3, dim=1, nu=0.005, dt=0.5)


def test_train_evaluate_plot_export_end_to_end(heat, tmp_path, capsys):
    """A tiny FNO trained by `pdeop train` on heat data reaches test rel. L2 < 0.1 (from ~1; measured
    ~0.03), `evaluate` writes those metrics, `plot` writes PNGs and `export` (torch.export) gives a
    program that reproduces the checkpoint to float32 rounding in an interpreter that never imports
    pdeop (DESIGN.md §8: usable with torch alone)."""
    config = _write(tmp_path / "fno.yaml", fno_config(heat))
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["same_dataset_as_training"] and metrics["test_samples"] == [24, 25, 26, 27]
    assert metrics["rel_l2"] < 0.1, metrics["rel_l2"]
    assert len(metrics["rollout"]["rel_l2"]) == len(metrics["rollout"]["rel_h1"]) == 3  # the rest, autoregressively
    # persistence on the same items beside the model (one-frame windows from t = 0: no linear extrapolation)
    assert list(metrics["baselines"]) == ["persistence"] and "linear_extrapolation" in metrics["baselines_unavailable"]
    assert len(metrics["skill"]["persistence"]["rollout"]["rel_l2"]) == 3
    assert "skill vs persistence" in printed and "baselines on the same items: persistence" in printed
    assert main(["plot", str(run), "--samples", "0", "3"]) == 0
    for name in ("training", "sample_0", "sample_3", "rollout", "spectrum"):
        assert (run / "plots" / f"{name}.png").stat().st_size > 1000
    out = tmp_path / "fno.pt2"
    assert main(["export", str(run), "--format", "torch-export", "--out", str(out)]) == 0
    x = torch.randn(5, 1, 32)
    from operators.training.runs import load_run

    # a fresh interpreter that imports nothing but torch (no pdeop ops registered) runs the program
    assert_program_reproduces("torch-export", out, x, load_run(run).surrogate(x).detach())


def test_static_map_is_compared_with_the_training_mean(tmp_path, capsys):
    """For a static map `evaluate` scores the mean training output on the test items: its error equals NumPy's
    mean over test items of ||u_i - mean_train(u)|| / ||u_i|| on the stored arrays (float32 data: rtol 1e-5),
    and the model's skill against it is reported."""
    import h5py
    import numpy as np

    path = tiny_data.screened_poisson(tmp_path / "sp.h5", n_samples=20, n=16)
    mapping = {"seed": 0, "data": {"path": str(path), "protocol": "static", "inputs": ["a"], "outputs": ["u"],
                                   "n_train": 12, "n_val": 0, "n_test": 4, "periodic": True},
               "model": {"model": "fno", "n_modes": [4, 4], "width": 8, "n_layers": 1},
               "training": {"epochs": 1, "batch_size": 6}}
    run = tmp_path / "run"
    assert main(["train", str(_write(tmp_path / "s.yaml", mapping)), "--out", str(run), "--quiet"]) == 0
    assert main(["evaluate", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    with h5py.File(path, "r") as f:
        u = f["u"][:].astype(np.float64)
    mean, test = u[:12].mean(axis=0), u[16:]
    expected = np.mean([np.linalg.norm(v - mean) / np.linalg.norm(v) for v in test])
    np.testing.assert_allclose(metrics["baselines"]["training_mean"]["rel_l2"], expected, rtol=1e-5)
    baseline = metrics["baselines"]["training_mean"]["rel_l2"]
    np.testing.assert_allclose(metrics["skill"]["training_mean"]["rel_l2"], 1 - metrics["rel_l2"] / baseline, rtol=1e-12)
    assert "training-mean output rel L2" in capsys.readouterr().out


def test_torchscript_export_runs_without_pdeop(heat, tmp_path):
    """A TorchScript export of a run is a self-contained program: torch.jit.load gives the surrogate's
    outputs (normalisers included) at another batch size, and its graph calls no pdeop custom op."""
    mapping = {**fno_config(heat), "model": {"model": "test-multiplier", "modes": 8}}
    mapping["training"]["epochs"] = 1
    run = tmp_path / "run"
    assert main(["train", str(_write(tmp_path / "m.yaml", mapping)), "--out", str(run), "--quiet"]) == 0
    out = tmp_path / "m.pt"
    assert main(["export", str(run), "--format", "torchscript", "--out", str(out)]) == 0
    program = torch.jit.load(str(out))
    assert "pdeop::" not in str(program.inlined_graph)
    from operators.training.runs import load_run

    x = torch.randn(3, 1, 32)
    torch.testing.assert_close(program(x), load_run(run).surrogate(x), rtol=1e-6, atol=1e-6)


def test_zero_shot_super_resolution_is_reported(tmp_path):
    """Trained on every second grid point, `evaluate` also scores the full grid; for a continuous exact
    operator (the heat multiplier, weights set exactly) both errors are at float32 rounding."""
    path = tiny_data.heat(tmp_path / "heat.h5", n_samples=8, n=64, steps=2, nu=0.005, dt=0.5)
    mapping = {**fno_config(path), "model": {"model": "test-multiplier", "modes": 8}}
    mapping["data"].update({"n_train": 4, "n_val": 0, "subsample": 2, "normalization": "none"})
    mapping["training"]["epochs"] = 1
    run = tmp_path / "run"
    assert main(["train", str(_write(tmp_path / "m.yaml", mapping)), "--out", str(run), "--quiet"]) == 0
    from operators.checkpoint import load, save

    operator = load(run / "best")
    k = torch.arange(8, dtype=torch.float64)
    with torch.no_grad():
        operator.model.weight.copy_(torch.exp(-0.005 * (2 * math.pi * k) ** 2 * 0.5).to(torch.cfloat).view(1, 1, 8))
    save(operator, run / "best")
    assert main(["evaluate", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["resolution"] == [32] and metrics["train_resolution"] == [32]
    assert metrics["super_resolution"]["resolution"] == [64]
    assert metrics["rel_l2"] < 1e-5 and metrics["super_resolution"]["rel_l2"] < 1e-5


def test_stopped_run_resumes_from_the_command_line(heat, tmp_path, capsys):
    """--max-minutes 0 stops after one epoch and says how to continue; --resume finishes the run with the
    same per-epoch losses as an uninterrupted one."""
    mapping = fno_config(heat)
    mapping["training"]["epochs"] = 2
    config = _write(tmp_path / "fno.yaml", mapping)
    assert main(["train", str(config), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["train", str(config), "--out", str(tmp_path / "b"), "--quiet", "--max-minutes", "0"]) == 0
    assert "continue with --resume" in capsys.readouterr().err
    assert main(["train", str(config), "--out", str(tmp_path / "b"), "--quiet", "--resume"]) == 0
    history = [json.loads((tmp_path / r / "training.json").read_text())["history"] for r in "ab"]
    assert [row["train_loss"] for row in history[0]] == [row["train_loss"] for row in history[1]]


def test_missing_data_is_generated_from_the_recipe(tmp_path, monkeypatch):
    """A config whose data file is missing but which says how to make it generates it through the
    pipeline (the toy family here) and trains on it."""
    from tests.pde_data.toy_family import install

    install(monkeypatch, tmp_path)
    data = tmp_path / "made" / "toy.h5"
    mapping = {**fno_config(data), "model": {"model": "test-multiplier", "modes": 4}}
    mapping["data"].update({"n_train": 3, "n_val": 0, "n_test": 2, "generate": {"problem": "toy", "samples": 5,
                                                                                  "set": {"steps": 3}}})
    mapping["training"]["epochs"] = 1
    assert main(["train", str(_write(tmp_path / "m.yaml", mapping)), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert data.is_file()


def _bad(tmp_path, capsys, mapping, *extra):
    code = main(["train", str(_write(tmp_path / "bad.yaml", mapping)), "--out", str(tmp_path / "bad"), "--quiet",
                 *extra])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("change, message", [
    (lambda m: m["model"].update(model="fancy"), "unknown model 'fancy'"),
    (lambda m: m["model"].update(in_channels=4), "model.in_channels is 4 but the data gives 1"),
    (lambda m: m["model"].update(n_modes=[8, 8]), "model 'fno' cannot take the data's input"),
    (lambda m: m["data"].update(path="nowhere.h5"), "dataset file nowhere.h5 does not exist"),
    (lambda m: m["training"].update(epoch=3), "unknown setting training.'epoch'"),
    (lambda m: m["training"].update(mode="direct"), "training.mode 'direct' predicts all data.t_out = 2"),
    (lambda m: m["data"].update(n_train=100), "n_train + n_val + n_test = 100 + 4 + 4"),
])
def test_bad_configs_exit_2_with_one_line(heat, tmp_path, capsys, change, message):
    """Unknown model, shape mismatch with the data, missing file, unknown key, inconsistent mode, too few
    samples: each exits with code 2 and one line naming the problem (no traceback)."""
    mapping = fno_config(heat)
    change(mapping)
    code, err = _bad(tmp_path, capsys, mapping)
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err


def test_resume_without_a_run_and_bad_overrides_exit_2(heat, tmp_path, capsys):
    """--resume of an empty folder and a --set of an unknown key are one-line errors with exit code 2."""
    code, err = _bad(tmp_path, capsys, fno_config(heat), "--resume")
    assert code == 2 and "holds no run to resume" in err
    code, err = _bad(tmp_path, capsys, fno_config(heat), "--set", "training.optimizer.momentum=0.9")
    assert code == 2 and "unknown setting training.optimizer.'momentum'" in err


def test_pde_section_dispatches_to_physics_training(tmp_path, capsys, monkeypatch):
    """A config with a `pde:` section goes to operators.physics.training.run(config, run_dir, resume=...,
    device=..., max_minutes=...); without that module it is a one-line exit-2 error."""
    config = _write(tmp_path / "pinn.yaml", {"pde": {"name": "convection"}, "training": {"epochs": 1}})
    calls = []
    fake = types.ModuleType("operators.physics.training")
    fake.run = lambda cfg, run_dir, **kw: calls.append((cfg, run_dir, kw)) or 0
    monkeypatch.setitem(sys.modules, "operators.physics.training", fake)
    import operators.physics

    monkeypatch.setattr(operators.physics, "training", fake, raising=False)
    assert main(["train", str(config), "--out", str(tmp_path / "p"), "--max-minutes", "2"]) == 0
    assert calls[0][0]["pde"] == {"name": "convection"} and calls[0][1] == tmp_path / "p"
    assert calls[0][2] == {"resume": False, "device": "cpu", "max_minutes": 2.0}
    monkeypatch.setitem(sys.modules, "operators.physics.training", None)
    monkeypatch.delattr(operators.physics, "training")
    assert main(["train", str(config), "--out", str(tmp_path / "p")]) == 2
    assert "operators.physics.training is not available" in capsys.readouterr().err


SHIPPED = ["fno_ns", "tfno_ns", "fno_ks", "mgno_darcy", "mgno_ns", "deeponet_darcy", "fno_darcy", "fno_burgers"]


@pytest.mark.parametrize("name", SHIPPED + [f"{n}_quick" for n in SHIPPED])
def test_shipped_training_configs_are_valid(name):
    """Every shipped training config parses into a checked RunConfig, its data recipe resolves to a known
    problem and preset, and its model builds (channels filled as the trainer does, 16-point grid)."""
    from operators.registry import build
    from operators.training.config import load_run_config, run_config_from_mapping
    from operators.training.trainer import model_settings
    from pde_data.config import configs_root
    from pde_data.pipeline import resolve_config

    config = run_config_from_mapping(load_run_config(configs_root() / "train" / f"{name}.yaml"))
    recipe = config.data.generate
    resolve_config(recipe["problem"], recipe.get("preset"), overrides=[f"{k}={v}" for k, v in
                                                                      recipe.get("set", {}).items()])
    data = config.data
    t_out = data.t_out or 1
    in_channels = (data.t_in if data.time_dependent else len(data.inputs)) + len(data.conditioning)
    out_channels = config.call_steps(t_out) if data.time_dependent else len(data.outputs)
    model = build(model_settings(config, in_channels, out_channels, (16, 16), periodic=True))
    assert sum(p.numel() for p in model.parameters()) > 0
