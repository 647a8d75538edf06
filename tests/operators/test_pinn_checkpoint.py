"""PINN / LPINN networks in the common checkpoint format, their exact constraints, and the
trainer's resume and command-line paths."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import operators
from operators.models.lpinn import LPINN, LPINNConfig
from operators.models.pinn import PINN, PINNConfig
from operators.physics.pde_specs import build_pde, describe_pde
from solvers.errors import ConfigError

TWO_PI = 2 * math.pi


def _coords(n: int = 50, t_end: float = 1.0, length: float = TWO_PI) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(n, 2, generator=generator) * torch.tensor([t_end, length])


@pytest.mark.parametrize("model", [
    PINN(PINNConfig(width=16, depth=2, lower=(0.0, 0.0), upper=(1.0, TWO_PI), periodic=(False, True),
                    backbone="modified_mlp", fourier_modes=2, windows=3, activation="sin", random_features=8,
                    hard_initial=describe_pde(build_pde({"name": "convection", "c": 5.0})))),
    LPINN(LPINNConfig(width=16, depth=2, lower=(0.0, 0.0), upper=(1.0, TWO_PI), displacement_scale=50.0)),
], ids=["pinn", "lpinn"])
def test_save_load_round_trip(model, tmp_path) -> None:
    """operators.save then operators.load rebuilds the registered model from config.json alone and
    gives bit-identical outputs; the weights file is plain safetensors (no pickle)."""
    torch.manual_seed(1)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    operators.save(model, tmp_path / "ckpt")
    loaded = operators.load(tmp_path / "ckpt")
    assert loaded.model_name == type(model).model_name
    assert loaded.config == model.config
    coords = _coords()
    assert torch.equal(loaded(coords), model(coords))
    assert set(load_file(str(tmp_path / "ckpt" / "weights.safetensors"))) == set(model.state_dict())


def test_hard_initial_condition_is_exact() -> None:
    """With hard_initial the network equals u0 at t = 0 whatever its weights (float32 rounding)."""
    spec = build_pde({"name": "burgers", "shift": 0.3})
    model = PINN(PINNConfig(width=8, depth=2, lower=(0.0, -1.0), upper=(1.0, 1.0), periodic=(False, True),
                            hard_initial=describe_pde(spec)))
    x = torch.linspace(-1, 1, 33)[:, None]
    out = model(torch.cat((torch.zeros_like(x), x), dim=1))
    torch.testing.assert_close(out, spec.initial(x), rtol=0, atol=1e-6)
    assert (model(torch.cat((torch.full_like(x, 0.5), x), dim=1)) - spec.initial(x)).abs().max() > 1e-3


def test_periodic_embedding_is_periodic() -> None:
    """Fourier features of x make u(t, x) = u(t, x + L) (to float32 rounding of the phase, 1e-5), also
    with random Fourier features on top (they act on the periodic features), while a scaled
    (non-periodic) input does not."""
    config = dict(width=16, depth=3, lower=(0.0, 0.0), upper=(1.0, 3.0))
    periodic = PINN(PINNConfig(periodic=(False, True), fourier_modes=3, **config))
    random = PINN(PINNConfig(periodic=(False, True), fourier_modes=3, random_features=32, random_feature_scale=2.0,
                             **config))
    plain = PINN(PINNConfig(periodic=(False, False), **config))
    c = _coords(length=3.0)
    shifted = c + torch.tensor([0.0, 3.0])
    assert (periodic(c) - periodic(shifted)).abs().max().item() < 1e-5
    assert (random(c) - random(shifted)).abs().max().item() < 1e-5
    assert (plain(c) - plain(shifted)).abs().max().item() > 1e-3


def test_random_fourier_features_are_cos_and_sin_of_fixed_frequencies() -> None:
    """The feature layer maps h to [cos(h B), sin(h B)] with B of standard deviation `scale` (4096
    draws: sample std within 5%) that are buffers, not trained parameters."""
    from operators.models.pinn import RandomFourierFeatures

    torch.manual_seed(0)
    layer = RandomFourierFeatures(4, 2048, scale=3.0)
    assert not list(layer.parameters()) and layer.frequencies.shape == (4, 1024)
    assert layer.frequencies.std().item() == pytest.approx(3.0, rel=0.05)
    h = torch.randn(5, 4)
    phase = h @ layer.frequencies
    torch.testing.assert_close(layer(h), torch.cat((torch.cos(phase), torch.sin(phase)), dim=1))


def test_windows_dispatch_by_time() -> None:
    """A windowed PINN's forward equals each window's own network on the times of that window."""
    model = PINN(PINNConfig(width=8, depth=2, lower=(0.0, 0.0), upper=(1.5, 1.0), periodic=(False, True), windows=3))
    c = _coords(90, t_end=1.5, length=1.0)
    out = model(c)
    window = model.window_of(c[:, 0])
    for k in range(3):
        rows = window == k
        edges = torch.tensor([0.0, 0.5, 1.0, 1.5])
        assert bool(((c[rows, 0] >= edges[k]) & (c[rows, 0] < edges[k + 1])).all())
        assert torch.equal(out[rows], model.window_forward(k, c[rows]))


def test_config_errors_name_the_field() -> None:
    """Bad settings are ConfigErrors that name the field: wrong bound lengths, a derived model
    setting given by hand, an unknown method, LPINN on an equation without a Lagrangian form."""
    from operators.physics.run_config import model_settings, parse_run_config

    with pytest.raises(ConfigError, match="model.lower"):
        PINNConfig(in_dim=3)
    base = {"method": "pinn", "pde": {"name": "convection", "c": 10}}
    config = parse_run_config({**base, "model": {"in_dim": 2}})
    with pytest.raises(ConfigError, match="model.in_dim is derived"):
        model_settings(config, build_pde(config.pde))
    with pytest.raises(ConfigError, match="method"):
        parse_run_config({**base, "method": "vpinn"})
    with pytest.raises(ConfigError, match="Lagrangian"):
        parse_run_config({"method": "lpinn", "pde": {"name": "kuramoto-sivashinsky"}})


def _tiny(method: str) -> dict:
    return {"method": method, "pde": {"name": "convection", "c": 2.0}, "model": {"width": 12, "depth": 2},
            "training": {"steps": 12, "n_residual": 64, "n_initial": 16, "n_boundary": 8, "log_every": 2,
                         "eval_every": 4, "threads": 1, "boundary_condition": "soft"},
            "causal": {"n_slices": 4}, "evaluation": {"n_t": 11, "n_space": 32}}


@pytest.mark.parametrize("method", ["causal_pinn", "lpinn"])
def test_resume_after_a_stop_equals_an_uninterrupted_run(method: str, tmp_path) -> None:
    """Stopping after the first step (max_minutes = 0 saves last/ there) and resuming gives exactly
    the weights of an uninterrupted run: points, learning rate, eps stage and Adam moments are
    all restored (bit equality on CPU)."""
    from operators.physics.training import run

    config = _tiny(method)
    if method == "lpinn":
        config["training"]["boundary_condition"] = "hard"
    run(config, tmp_path / "straight", quiet=True)
    first = run(config, tmp_path / "split", max_minutes=0.0, quiet=True)
    assert not first["finished"] and first["steps_done"] == 1
    second = run(config, tmp_path / "split", resume=True, quiet=True)
    assert second["finished"] and second["steps_done"] == 12
    a = load_file(str(tmp_path / "straight" / "last" / "weights.safetensors"))
    b = load_file(str(tmp_path / "split" / "last" / "weights.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="already holds a run"):
        run(config, tmp_path / "straight", quiet=True)
    changed = {**config, "seed": 1}
    with pytest.raises(ConfigError, match="config differs"):
        run(changed, tmp_path / "straight", resume=True, quiet=True)


def test_cli_train_evaluate_plot(tmp_path) -> None:
    """pdeop train / evaluate / plot run a pde: config end to end; metrics.json's rel_l2 equals the
    relative L2 recomputed from prediction.npz, whose reference is the exact sin(x - c t)."""
    import yaml

    from operators.cli import main

    path = tmp_path / "pinn.yaml"
    path.write_text(yaml.safe_dump(_tiny("pinn")))
    run_dir = tmp_path / "run"
    assert main(["train", str(path), "--out", str(run_dir)]) == 0
    assert main(["evaluate", str(run_dir)]) == 0
    assert main(["plot", str(run_dir)]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with np.load(run_dir / "prediction.npz") as data:
        pred, ref, t, x = data["prediction"], data["reference"], data["t"], data["x"]
    np.testing.assert_allclose(ref, np.sin(x[None] - 2.0 * t[:, None]), atol=1e-12)
    assert metrics["rel_l2"] == pytest.approx(np.linalg.norm(pred - ref) / np.linalg.norm(ref), rel=1e-12)
    assert {p.name for p in (run_dir / "plots").iterdir()} >= {"solution.png", "training.png", "error_in_time.png"}


def test_lbfgs_phase_lowers_the_loss_on_its_fixed_points(tmp_path) -> None:
    """After the same Adam steps, 10 L-BFGS iterations (strong Wolfe line search, a fixed point set)
    give a lower loss on that set than Adam alone stopped there: the line search only accepts
    decreasing steps, so this holds whatever the rounding."""
    from operators.physics.objectives import Objective
    from operators.physics.run_config import parse_run_config
    from operators.physics.training import run

    base = _tiny("pinn")
    base["training"] = {**base["training"], "steps": 10, "eval_every": 10, "log_every": 10}
    with_lbfgs = {**base, "training": {**base["training"], "lbfgs_steps": 10}}
    run(base, tmp_path / "adam", quiet=True)
    run(with_lbfgs, tmp_path / "lbfgs", quiet=True)
    config = parse_run_config(with_lbfgs)
    objective = Objective(config, build_pde(config.pde), torch.float32, "cpu")
    losses = [objective.step_loss(operators.load(tmp_path / name / "last").model, 10).loss.item()
              for name in ("adam", "lbfgs")]
    assert losses[1] < losses[0]


def test_physics_configs_parse_and_build() -> None:
    """Every pinn_*, causal_pinn_* and lpinn_* training config is a valid physics run whose model builds,
    and each has a quick variant of the same method and PDE."""
    from operators.physics.run_config import model_settings, parse_run_config
    from pde_data.config import configs_root, load_yaml

    paths = [p for p in sorted((configs_root() / "train").glob("*.yaml"))
             if p.stem.split("_")[0] in ("pinn", "causal", "lpinn")]
    assert len(paths) >= 16
    stems = {p.stem for p in paths}
    for path in paths:
        config = parse_run_config(load_yaml(path))
        operators.build(model_settings(config, build_pde(config.pde)))
        if not path.stem.endswith("_quick"):
            quick = parse_run_config(load_yaml(path.with_name(f"{path.stem}_quick.yaml")))
            assert f"{path.stem}_quick" in stems and (quick.method, quick.pde) == (config.method, config.pde)
