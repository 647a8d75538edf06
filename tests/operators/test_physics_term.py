"""Physics-informed operator training (``training.physics``): the residual hook on exact trajectories,
tiny FNO / DeepONet runs with the term, and one-line exit-2 errors for bad physics settings."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from operators.cli import main
from operators.training.config import run_config_from_mapping
from operators.training.physics_term import PhysicsTerm
from operators.training.trainer import Trainer
from pde_data.config import configs_root
from pde_data.loading import make_datasets
from tests.operators import multiplier_model, tiny_data  # noqa: F401  (registers test-multiplier)
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)


def travelling_waves(path: Path, c: float, dt: float, steps: int, n: int = 32, lengths=None, seed: int = 0) -> tuple:
    """``u = sin(2 pi m (x / L - c t / L) + phase)`` per sample (m in 1..3): exact solutions of u_t + c u_x = 0.

    With ``lengths`` the domain length varies per sample (variable ``L(sample)``, ``x`` in fractions of it,
    as the Kuramoto-Sivashinsky files store it); otherwise ``L = 1`` and ``x = j / n``.
    Returns the path and the per-sample wavenumbers 2 pi m / L.
    """
    rng = np.random.default_rng(seed)
    n_samples = 6 if lengths is None else len(lengths)
    m = rng.integers(1, 4, n_samples)
    phase = rng.uniform(0, 2 * np.pi, n_samples)
    length = np.ones(n_samples) if lengths is None else np.asarray(lengths, dtype=np.float64)
    k = 2 * np.pi * m / length
    fraction = np.arange(n) / n
    t = dt * np.arange(steps + 1)
    u = np.sin(k[:, None, None] * (fraction[None, None] * length[:, None, None] - c * t[None, :, None])
               + phase[:, None, None])
    variables = {"u": (("sample", "t", "x"), u.astype(np.float32))}
    if lengths is not None:
        variables["L"] = (("sample",), length)
    tiny_data.write_dataset(path, "convection", {"t": t, "x": fraction},
                            variables, attrs={"c": c})
    return path, k


def crank_nicolson_defect(theta: np.ndarray) -> np.ndarray:
    """|residual| / |(u^{n+1} - u^n) / dt| of a Fourier mode advanced by the phase ``theta`` per step.

    For u = Im exp(i (k x - theta n)) and F = -c u_x, the residual's factor over the rate's is
    1 + i theta (e^{-i theta} + 1) / (2 (e^{-i theta} - 1)) = 1 - (theta / 2) cot(theta / 2).
    """
    return np.abs(1 - 0.5 * theta / np.tan(0.5 * theta))


def _config(path, **training) -> dict:
    return {
        "seed": 0,
        "data": {"path": str(path), "protocol": "window", "t_in": 2, "t_out": 5, "n_train": 4, "n_val": 0,
                 "n_test": 2, "periodic": True},
        "model": {"model": "fno", "n_modes": [8], "width": 8, "n_layers": 2},
        "training": {"epochs": 1, "batch_size": 4, "physics": {"weight": 1.0}, **training},
    }


def _term(mapping) -> tuple[PhysicsTerm, object]:
    config = run_config_from_mapping(mapping)
    bundle = make_datasets(config.data)
    return PhysicsTerm(config.training.physics, config.data, bundle.info, bundle.train), bundle.train


def test_exact_travelling_waves_score_the_crank_nicolson_defect(tmp_path):
    """Exact convection trajectories (c and dt read from the file, period 1 from x) fed through the hook
    with the true next states as the prediction: the loss is the analytic Crank-Nicolson defect of each
    sample's mode, sum(rate^2 g^2) / sum(rate^2) with g = 1 - (theta/2) cot(theta/2) (~0: about 1e-5 here),
    to 1e-3 relative (float32 data). Prepending another input state than the last, a wrong dt or a wrong
    period would change it by orders of magnitude."""
    c, dt = 1.5, 0.01
    path, k = travelling_waves(tmp_path / "waves.h5", c, dt, steps=8)
    term, train = _term(_config(path))
    assert term.problem == "convection" and term.params == {"c": c} and term.periods == [1.0]
    assert term.dt == pytest.approx(dt)
    items = torch.arange(len(train))
    x, y, _ = train.batch(items)
    loss = float(term(x, y, items))
    theta = k[:4] * c * dt  # the four training samples
    rate2 = (2 * np.sin(theta / 2) / dt) ** 2
    expected = float(np.sum(rate2 * crank_nicolson_defect(theta) ** 2) / np.sum(rate2))
    assert loss < 1e-4
    assert loss == pytest.approx(expected, rel=1e-3)


def test_per_sample_lengths_and_time_subsampling(tmp_path):
    """With L(sample) in the file the hook gives each batch item its own period (looked up through the
    item's sample), and with time_subsample 2 the step is 2 dt: the loss again equals the analytic defect
    (1e-3 relative) for a batch that lists the items out of order."""
    c, dt = 0.7, 0.02
    lengths = [3.0, 5.0, 8.0, 13.0, 4.0, 6.0]
    path, k = travelling_waves(tmp_path / "waves.h5", c, dt, steps=14, lengths=lengths)
    mapping = _config(path)
    mapping["data"]["time_subsample"] = 2
    term, train = _term(mapping)
    assert term.dt == pytest.approx(2 * dt) and term.periods == []
    items = torch.tensor([3, 0, 2])
    x, y, _ = train.batch(items)
    theta = k[items.numpy()] * c * 2 * dt
    rate2 = (2 * np.sin(theta / 2) / (2 * dt)) ** 2
    expected = float(np.sum(rate2 * crank_nicolson_defect(theta) ** 2) / np.sum(rate2))
    assert float(term(x, y, items)) == pytest.approx(expected, rel=1e-3)


def test_navier_stokes_reads_viscosity_and_forcing_from_the_file(tmp_path):
    """w = A(t) sin(2 pi x) sin(2 pi y) with A relaxing to a_inf under the forcing f = nu k^2 a_inf sin sin
    (advection vanishes: w is a Laplacian eigenfunction) is an exact forced Navier-Stokes solution. With
    viscosity from the root attribute and forcing from f(x, y) (subsampled with the grid), the loss is the
    Crank-Nicolson defect of a real decay, g = 1 - (theta/2) coth(theta/2) squared, to 1e-3; without the
    forcing it would be O(1)."""
    nu, n, dt, a0, a_inf = 0.01, 32, 0.5, 1.0, 0.4
    lam = nu * 8 * math.pi ** 2
    x = np.arange(n) / n
    shape = np.sin(2 * np.pi * x)[:, None] * np.sin(2 * np.pi * x)[None, :]
    t = dt * np.arange(5)
    amplitude = a_inf + (a0 - a_inf) * np.exp(-lam * t)
    w = np.repeat((amplitude[:, None, None] * shape)[None], 3, axis=0).astype(np.float32)
    path = tiny_data.write_dataset(tmp_path / "ns.h5", "navier-stokes", {"t": t, "x": x, "y": x},
                                   {"w": (("sample", "t", "x", "y"), w), "f": (("x", "y"), lam * a_inf * shape)},
                                   attrs={"viscosity": nu})
    mapping = _config(path)
    mapping["data"].update({"t_in": 1, "t_out": 4, "n_train": 2, "n_test": 1, "subsample": 2})
    term, train = _term(mapping)
    assert term.problem == "navier-stokes" and term.params["viscosity"] == nu and term.periods == [1.0, 1.0]
    assert tuple(term.params["forcing"].shape) == (16, 16)
    x_in, y, _ = train.batch([0, 1])
    theta = lam * dt
    expected = (1 - 0.5 * theta / math.tanh(0.5 * theta)) ** 2
    assert float(term(x_in, y, [0, 1])) == pytest.approx(expected, rel=1e-3)


# ---------------------------------------------------------------------------- training with the term
FNO = {"model": "fno", "n_modes": [8], "width": 12, "n_layers": 2}
DEEPONET = {"model": "deeponet", "branch_width": 32, "trunk_width": 32, "basis": 16}


@pytest.fixture
def heat(tmp_path):
    return tiny_data.heat(tmp_path / "heat.h5", n_samples=20, n=32, steps=6, dim=1, nu=0.01, dt=0.25)


def _heat_run(heat, model: dict, weight: float | None, epochs: int, lr: float) -> dict:
    """Heat data u_t = nu u_xx is convection with c = 0 (viscosity read from the file)."""
    mapping = {
        "seed": 0,
        "data": {"path": str(heat), "protocol": "window", "t_in": 1, "t_out": 3, "windows": "all", "n_train": 16,
                 "n_val": 2, "n_test": 2, "periodic": True, "normalization": "global"},
        "model": model,
        "training": {"epochs": epochs, "batch_size": 4, "optimizer": {"lr": lr}},
    }
    if weight is not None:
        mapping["training"]["physics"] = {"weight": weight, "problem": "convection", "params": {"c": 0}}
    return mapping


def _physics_history(heat, run_dir, model, weight, epochs, lr) -> list[float]:
    trainer = Trainer(run_config_from_mapping(_heat_run(heat, model, weight, epochs, lr)), run_dir, progress=False)
    physics = [row["physics_loss"] for row in trainer.fit().history]
    assert all(math.isfinite(p) for p in physics)
    return physics


def test_fno_run_with_the_term_lowers_the_logged_residual(heat, tmp_path):
    """An FNO trained with data + physics (weight 1) on exact heat trajectories: the logged physics loss
    (mean over each epoch's batches) falls to under a fifth of the first epoch's (measured: 1/30), and the
    run's checkpoints are written as usual."""
    physics = _physics_history(heat, tmp_path / "run", FNO, 1.0, epochs=10, lr=1e-2)
    assert physics[-1] < physics[0] / 5, physics
    assert (tmp_path / "run" / "best").is_dir() and (tmp_path / "run" / "last").is_dir()


def test_deeponet_run_with_the_term_lowers_the_residual_that_data_alone_raises(heat, tmp_path):
    """DeepONet, same data, same seed, 30 epochs: with weight 1 the logged physics loss falls (last epoch
    below 0.8 of the first; measured 0.60), while with weight 0 (logged only) it rises, ending more than
    twice as high (measured 4x): the term's gradient reaches the DeepONet's parameters."""
    trained = _physics_history(heat, tmp_path / "a", DEEPONET, 1.0, epochs=30, lr=3e-3)
    logged = _physics_history(heat, tmp_path / "b", DEEPONET, 0.0, epochs=30, lr=3e-3)
    assert trained[-1] < 0.8 * trained[0], trained
    assert trained[-1] < logged[-1] / 2, (trained[-1], logged[-1])


@pytest.mark.parametrize("mode", ["direct", "teacher-forcing", "unrolled", "pushforward"])
def test_every_training_mode_scores_the_consecutive_trajectory(heat, tmp_path, mode):
    """With the exact heat propagator as the model (a Fourier multiplier with weights exp(-nu (2 pi k)^2 j dt),
    no normalisation), the batch's physics term in every training mode equals the term of the true states
    that mode predicts, with the last input state in front: all t_out steps (direct, teacher forcing,
    unrolled) or the depth + 1 rolled-out steps (pushforward, depth replayed from the same seed).
    Tolerance 1e-3 relative: float32 predictions against float32 data."""
    mapping = _heat_run(heat, {"model": "test-multiplier", "modes": 8}, 1.0, epochs=1, lr=1e-3)
    mapping["data"]["normalization"] = "none"
    mapping["training"]["mode"] = mode
    trainer = Trainer(run_config_from_mapping(mapping), tmp_path / "run", progress=False)
    steps = 3 if mode == "direct" else 1
    k = torch.arange(8, dtype=torch.float64)
    decay = torch.exp(-0.01 * (2 * math.pi * k) ** 2 * 0.25)
    with torch.no_grad():
        trainer.surrogate.model.weight.copy_(torch.stack([decay ** (j + 1) for j in range(steps)])[None].to(torch.cfloat))
    items = torch.tensor([5, 0, 17, 30])
    x, y, c = trainer.data.train.batch(items)
    expected_steps = 3
    if mode == "pushforward":
        torch.manual_seed(1)  # depth 1 under this seed: two rolled-out steps
        expected_steps = int(torch.randint(3, (1,)).item()) + 1
    torch.manual_seed(1)
    with torch.no_grad():
        physics = trainer._physics_loss(x, trainer._predict(x, y, c)[2], items)
        expected = trainer.physics(x, y[:, :expected_steps], items)
    assert float(physics) == pytest.approx(float(expected), rel=1e-3)
    # the exact states: a small Crank-Nicolson defect (3e-3), which differs by 5-10% between 1, 2 and 3 steps
    assert float(expected) < 0.01


def test_weight_zero_only_logs_the_residual(heat, tmp_path):
    """weight 0 adds the physics_loss column but trains exactly like a run without the section: the
    per-epoch train and validation losses are bit-identical (same seed, same batches, no gradient from it)."""
    runs = [Trainer(run_config_from_mapping(_heat_run(heat, FNO, weight, 3, 1e-2)), tmp_path / name,
                    progress=False).fit() for name, weight in (("a", None), ("b", 0.0))]
    for a, b in zip(runs[0].history, runs[1].history):
        assert a["train_loss"] == b["train_loss"] and a["val_l2"] == b["val_l2"]
        assert "physics_loss" not in a and b["physics_loss"] > 0


# ---------------------------------------------------------------------------- errors
def _write(path, mapping):
    path.write_text(yaml.safe_dump(mapping))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda m: m["training"]["physics"].update(weight=-1), "training.physics.weight must be a number >= 0"),
    (lambda m: m["training"]["physics"].update(problem="heat"), "training.physics.problem must be one of"),
    (lambda m: m["training"]["physics"].update(params={"nu": 0.1}), "training.physics.params: convection has no "
                                                                    "parameter 'nu'"),
    (lambda m: m["training"]["physics"].update(params={"c": "fast"}), "training.physics.params.c must be a number"),
    (lambda m: m["training"]["physics"].update(problem="burgers"), "training.physics.problem is 'burgers' but the "
                                                                   "dataset holds 'convection'"),
    (lambda m: m["training"]["physics"].update(colour=1), "unknown setting training.physics.'colour'"),
    (lambda m: m["data"].update(periodic=False), "training.physics: the residual is evaluated spectrally"),
    (lambda m: m["data"].update(protocol="static", inputs=["u"], outputs=["u"]),
     "training.physics needs a time-dependent protocol"),
])
def test_bad_physics_settings_exit_2_with_one_line(tmp_path, capsys, change, message):
    """Negative weight, unknown problem or parameter, a non-number, a problem other than the data's, an
    unknown key, non-periodic or static data: `pdeop train` exits with code 2 and one line naming the field."""
    path, _ = travelling_waves(tmp_path / "waves.h5", 1.0, 0.01, steps=8)
    mapping = _config(path)
    change(mapping)
    code = main(["train", str(_write(tmp_path / "bad.yaml", mapping)), "--out", str(tmp_path / "bad"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err


def test_data_without_a_residual_needs_the_problem(heat, tmp_path, capsys):
    """The heat files' problem has no residual: leaving training.physics.problem out is an exit-2 error that
    lists the problems to choose from; a missing parameter names training.physics too."""
    mapping = _heat_run(heat, FNO, 1.0, epochs=1, lr=1e-3)
    del mapping["training"]["physics"]["problem"]
    code = main(["train", str(_write(tmp_path / "a.yaml", mapping)), "--out", str(tmp_path / "a"), "--quiet"])
    assert code == 2 and "training.physics.problem: the dataset's problem 'heat' has no residual" in \
        capsys.readouterr().err
    mapping["training"]["physics"].update(problem="convection", params={})
    code = main(["train", str(_write(tmp_path / "b.yaml", mapping)), "--out", str(tmp_path / "b"), "--quiet"])
    assert code == 2 and "training.physics: physics loss for convection needs the parameter 'c'" in \
        capsys.readouterr().err


def test_shipped_physics_config_parses():
    """configs/train/fno_burgers_physics_quick.yaml is a valid run config with a physics section on Burgers."""
    from operators.training.config import load_run_config

    config = run_config_from_mapping(load_run_config(configs_root() / "train" / "fno_burgers_physics_quick.yaml"))
    assert config.training.physics is not None and config.training.physics.weight > 0
    assert config.data.generate["problem"] == "burgers"
