"""KAN-FNO and KAN-DeepONet: reduction to the models they extend, gradients, checkpoints, resolution,
training through the common trainer, configs, and the activation plots' numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import operators
from operators.layers.kan_mlp import KANMLP, RationalSettings, group_count
from operators.layers.channel_mlp import ChannelMLP
from operators.layers.rational import GroupRational
from operators.layers.rational_fit import FITS_PATH
from operators.training.activation_plots import activation_curves, input_ranges
from pde_data.config import configs_root
from solvers.errors import ConfigError

FITS = json.loads(FITS_PATH.read_text())["fits"]


def _fno_settings(**changes):
    settings = {"in_channels": 2, "out_channels": 1, "n_modes": [4, 4], "width": 8, "n_layers": 2}
    return {**settings, **changes}


def _set_exact_identity(model: torch.nn.Module) -> None:
    """Make every rational exactly F(x) = x: P = x, Q = 1 (b = 0)."""
    for module in model.modules():
        if isinstance(module, GroupRational):
            numerator, denominator = (torch.zeros_like(c) for c in module.coefficients())
            numerator[..., 1] = 1.0
            module.set_coefficients(numerator, denominator)


def _copy_linear_weights(kan: torch.nn.Module, fno: torch.nn.Module) -> None:
    """Give ``kan`` the FNO's weights: shared parts by name, each GR-KAN linear from the MLP layer it replaces."""
    source = fno.state_dict()
    target = kan.state_dict()
    for name in target:
        if ".rational." in name:
            continue
        target[name] = source[name.replace(".linear.", ".")].clone()
    kan.load_state_dict(target)


def _perturb_rationals(model: torch.nn.Module, scale: float = 0.05) -> None:
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, GroupRational):
                for p in (module.numerator, module.denominator):
                    p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))


# ---------------------------------------------------------------------------- reduction to FNO / MLP
def test_kan_fno_with_identity_rationals_is_the_fno_with_linear_mlps():
    """With every rational exactly the identity and the FNO's weights copied, KAN-FNO equals an FNO
    whose lifting, block and projection MLPs are purely linear (their GELUs removed): the GR-KAN
    stacks reduce to the linear maps they wrap and everything else is FNO's own code. float64, so
    the two differ by rounding only (1e-12)."""
    torch.manual_seed(0)
    settings = _fno_settings(n_layers=3, lifting_ratio=2.0)
    fno = operators.build({"model": "fno", **settings}).double()
    kan = operators.build({"model": "kan-fno", **settings}).double()
    _copy_linear_weights(kan, fno)
    _set_exact_identity(kan)
    mlps = [m for m in fno.modules() if isinstance(m, ChannelMLP)]
    assert len(mlps) == 2 + 3  # lifting, three block MLPs, projection
    for mlp in mlps:
        mlp.activation = lambda x: x
    x = torch.randn(3, 2, 12, 10, dtype=torch.float64)
    torch.testing.assert_close(kan(x), fno(x), rtol=1e-12, atol=1e-12)


def test_fitted_inits_reproduce_the_channel_mlp_within_the_fit_errors():
    """A fresh GR-KAN stack (rationals at the identity then GELU fits) with a ChannelMLP's weights
    differs from that GELU MLP by at most ||W2||_inf (e_gelu + L ||W1||_inf e_id), where e_* are the
    fits' max errors on [-3, 3] (from rational_fits.json) and L bounds |F_gelu'| on [-3, 3]: the
    first rational moves the hidden input by <= ||W1||_inf e_id, the second maps it through a
    function e_gelu-close to GELU. The test keeps every rational input inside [-3, 3]."""
    torch.manual_seed(1)
    mlp = ChannelMLP(6, 4, 12, n_layers=2).double()
    kan = KANMLP([6, 12, 4], RationalSettings(groups=4), channel_dim=1).double()
    for layer, linear in zip(kan.layers, mlp.layers):
        layer.linear.load_state_dict({"weight": linear.weight, "bias": linear.bias})
    x = torch.rand(5, 6, 7, 3, dtype=torch.float64) - 0.5
    w1, w2 = mlp.layers[0].weight, mlp.layers[1].weight
    hidden = torch.einsum("oi,bi...->bo...", w1, x) + mlp.layers[0].bias.view(1, -1, 1, 1)
    assert float(hidden.detach().abs().max()) < 2.9  # inside the fitted interval, with room for the identity error
    grid = torch.linspace(-3, 3, 6001, dtype=torch.float64, requires_grad=True)
    f_gelu = kan.layers[1].rational
    (slope,) = torch.autograd.grad(f_gelu(grid.unsqueeze(-1).expand(-1, 12).contiguous()).sum(), grid)
    lipschitz = float(slope.abs().max()) / 12 * 1.01
    norm = lambda w: float(w.detach().abs().sum(dim=1).max())  # noqa: E731  (induced infinity norm)
    bound = norm(w2) * (FITS["gelu"]["max_error"] + lipschitz * norm(w1) * FITS["identity"]["max_error"])
    with torch.no_grad():
        difference = float((kan(x) - mlp(x)).abs().max())
    assert 0 < difference <= bound, (difference, bound)


# ---------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", ["kan-fno", "kan-deeponet"])
def test_gradient_reaches_every_rational_coefficient_and_is_correct(name):
    """Every numerator and denominator coefficient of every group of every rational gets a finite,
    non-zero gradient, and the gradient is the true one: its directional derivative along a random
    direction in all rational coefficients matches a central difference (float64; the difference
    error is O(h^2) = 1e-12 relative, so 1e-6 leaves room for rounding)."""
    torch.manual_seed(2)
    if name == "kan-fno":
        model = operators.build({"model": name, **_fno_settings()}).double()
        x = torch.randn(2, 2, 8, 8, dtype=torch.float64)
    else:
        model = operators.build({"model": name, "sensor_shape": [8, 8], "branch": "conv", "branch_width": 8,
                                 "trunk_width": 16, "basis": 8}).double()
        x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    target = torch.randn_like(model(x))
    loss = lambda: ((model(x) - target) ** 2).mean()  # noqa: E731
    params = [p for m in model.modules() if isinstance(m, GroupRational) for p in (m.numerator, m.denominator)]
    grads = torch.autograd.grad(loss(), params)
    for p, g in zip(params, grads):
        assert torch.isfinite(g).all() and (g != 0).all(), p.shape
    directions = [torch.randn_like(p) for p in params]
    analytic = sum(float((g * d).sum()) for g, d in zip(grads, directions))
    h = 1e-6
    with torch.no_grad():
        values = []
        for sign in (1, -1):
            for p, d in zip(params, directions):
                p.add_(sign * h * d)
            values.append(float(loss()))
            for p, d in zip(params, directions):
                p.sub_(sign * h * d)
    numeric = (values[0] - values[1]) / (2 * h)
    assert abs(numeric - analytic) <= 1e-6 * abs(analytic), (numeric, analytic)


@pytest.mark.parametrize(("name", "scale"), [("kan-fno", None), ("kan-fno", 0.3), ("kan-deeponet", None)])
def test_rational_coefficients_train_at_the_configured_fraction_of_the_learning_rate(name, scale):
    """One step of the trainers' Adam (``build_optimizer``) moves every rational coefficient by
    ``rational_lr_scale * lr`` and every linear weight by ``lr`` (Adam's first step is
    ``lr g / (|g| + eps)``), for the model's default scale and a configured one. Relative deviation
    from the exact step: ``eps / (scale |g|)`` <= 1e-8 / (0.1 * 1e-5) = 1e-2 for the entries kept
    (|g| > 1e-5), far less for most; float64, so rounding is ~1e-16 relative."""
    from operators.registry import MODELS
    from operators.training.config import OptimizerConfig
    from operators.training.optimizers import build_optimizer

    torch.manual_seed(3)
    settings = {} if scale is None else {"rational_lr_scale": scale}
    if name == "kan-fno":
        model = operators.build({"model": name, **_fno_settings(**settings)}).double()
        x = torch.randn(2, 2, 8, 8, dtype=torch.float64)
    else:
        model = operators.build({"model": name, "sensor_shape": [8, 8], "branch": "conv", "branch_width": 8,
                                 "trunk_width": 16, "basis": 8, **settings}).double()
        x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    expected = scale if scale is not None else MODELS[name][1].__dataclass_fields__["rational_lr_scale"].default
    rationals = [m for m in model.modules() if isinstance(m, GroupRational)]
    assert rationals and all(m.lr_scale == expected for m in rationals)
    lr = 1e-3
    optimizer = build_optimizer(model.parameters(), OptimizerConfig(lr=lr))
    before = [torch.cat([c.detach().flatten() for c in m.coefficients()]) for m in rationals]
    linears = [m.linear.weight for m in model.modules() if hasattr(m, "linear") and isinstance(m.linear, torch.nn.Linear)]
    linear_before = [w.detach().clone() for w in linears]
    target = torch.randn_like(model(x))
    optimizer.zero_grad()
    ((model(x) - target) ** 2).mean().backward()
    raw_grads = [torch.cat([m.numerator.grad.flatten(), m.denominator.grad.flatten()]) for m in rationals]
    optimizer.step()
    kept = 0
    for m, old, g in zip(rationals, before, raw_grads):
        step = (torch.cat([c.detach().flatten() for c in m.coefficients()]) - old).abs()
        # the raw parameter's gradient is scale times the coefficient's: keep |d loss / d coefficient| > 1e-5
        mask = g.abs() / m.lr_scale > 1e-5
        kept += int(mask.sum())
        assert torch.allclose(step[mask], torch.full_like(step[mask], expected * lr), rtol=1e-2, atol=0)
    assert kept > 0
    for w, old in zip(linears, linear_before):
        step = (w.detach() - old).abs()
        mask = w.grad.abs() > 1e-5
        assert torch.allclose(step[mask], torch.full_like(step[mask], lr), rtol=1e-2, atol=0)


# ---------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("settings", [
    {"model": "kan-fno", **_fno_settings(shared_numerator=True, hidden_init="silu")},
    {"model": "kan-deeponet", "sensor_shape": [6, 6], "branch": "mlp", "branch_width": 16, "trunk_width": 16,
     "basis": 8, "groups": 4},
    {"model": "kan-deeponet", "sensor_shape": [8, 8], "branch": "conv", "branch_width": 8, "trunk_width": 16,
     "basis": 8},
], ids=["kan-fno", "kan-deeponet-mlp", "kan-deeponet-conv"])
def test_save_load_round_trip_gives_identical_outputs(settings, tmp_path):
    """operators.save then operators.load rebuilds the model from config.json and restores the learned
    rational coefficients (perturbed away from their inits first), so outputs are bit-identical."""
    torch.manual_seed(3)
    model = operators.build(settings)
    _perturb_rationals(model)
    operators.save(model, tmp_path / "ckpt")
    loaded = operators.load(tmp_path / "ckpt").model
    assert type(loaded) is type(model) and loaded.config == model.config
    channels = settings.get("in_channels", 1)
    shape = settings.get("sensor_shape", [8, 8])
    x = torch.randn(2, channels, *shape)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_torchscript_program_of_kan_deeponet_reproduces_it(tmp_path):
    """TorchScript export traces with the reference kernels; the rationals then run as plain tensor
    operations (a Python autograd.Function cannot be saved in a program), so the saved and reloaded
    program gives the model's outputs exactly at another batch size (same operations, same order)."""
    from operators.kernels import reference_kernels

    torch.manual_seed(5)
    model = operators.build({"model": "kan-deeponet", "sensor_shape": [8, 8], "branch": "conv", "branch_width": 8,
                             "trunk_width": 16, "basis": 8}).eval()
    _perturb_rationals(model)
    with torch.no_grad(), reference_kernels():
        traced = torch.jit.trace(model, (torch.randn(2, 1, 8, 8),), check_trace=False)
        torch.jit.save(traced, str(tmp_path / "kan.pt"))
        program = torch.jit.load(str(tmp_path / "kan.pt"))
        x = torch.randn(5, 1, 8, 8)
        torch.testing.assert_close(program(x), model(x), rtol=0, atol=0)


# ---------------------------------------------------------------------------- resolution
def _resolution_gaps(model_name: str, sizes=(16, 32, 64)) -> list[float]:
    """Relative gap between the model at n and its output at 2n sampled at the n grid."""
    torch.manual_seed(4)
    model = operators.build({"model": model_name, "in_channels": 1, "out_channels": 1, "n_modes": [6],
                             "width": 16, "n_layers": 3, "positional_grid": False}).double()
    if model_name == "kan-fno":
        _perturb_rationals(model, 0.02)  # learned-looking rationals, not the fits
    gaps = []
    with torch.no_grad():
        for n in sizes:
            x = lambda m: torch.arange(m, dtype=torch.float64) / m  # noqa: E731
            u = lambda m: (torch.sin(2 * math.pi * x(m)) + 0.5 * torch.cos(6 * math.pi * x(m)))[None, None]  # noqa: E731
            coarse, fine = model(u(n)), model(u(2 * n))[..., ::2]
            gaps.append(float((coarse - fine).norm() / fine.norm()))
    return gaps


def test_kan_fno_output_converges_under_grid_refinement():
    """On a smooth periodic input, KAN-FNO at n and at 2n (sampled back to n) agree better and better:
    the pointwise rationals create harmonics that alias on the coarse grid, and their spectrum decays
    fast, so the gap falls by >= 10x per doubling and is < 1e-4 at n = 64 (measured 1.0e-2, 1.6e-4,
    6.5e-6). The reference FNO's gap is at rounding by then (GELU is analytic; the rationals' |x|
    terms leave a small kink at 0, whose harmonics decay only algebraically). Without the grid
    channels: their x = i/n sawtooth jumps at the period and makes both models first order."""
    kan = _resolution_gaps("kan-fno")
    assert all(a > 10 * b for a, b in zip(kan[:-1], kan[1:])), kan
    assert kan[-1] < 1e-4, kan
    assert _resolution_gaps("fno")[-1] < 1e-10


# ---------------------------------------------------------------------------- training
def test_trainer_reduces_kan_fno_test_error(tmp_path):
    """The common trainer fits KAN-FNO to periodic heat data (one step of u_t = nu u_xx, a linear
    spectral map an FNO represents): test rel. L2 falls from ~0.95 (untrained) below 0.1 in 20 epochs
    (measured 0.046, FNO with the same budget 0.023; the bound leaves 2x room for BLAS-order and
    thread-count differences). `pdeop plot RUN --activations` then draws the run's rationals."""
    from operators.training.config import run_config_from_mapping
    from operators.training.trainer import Trainer
    from tests.operators import tiny_data

    data = tiny_data.heat(tmp_path / "heat.h5", n_samples=28, n=32, steps=3, dim=1, nu=0.005, dt=0.5)
    config = run_config_from_mapping({
        "seed": 0,
        "data": {"path": str(data), "protocol": "window", "t_in": 1, "t_out": 2, "windows": "all",
                 "n_train": 20, "n_val": 4, "n_test": 4, "periodic": True, "normalization": "global"},
        "model": {"model": "kan-fno", "n_modes": [8], "width": 12, "n_layers": 2, "groups": 4},
        "training": {"epochs": 20, "batch_size": 10, "mode": "teacher-forcing", "step": 1,
                     "optimizer": {"lr": 0.01}, "scheduler": {"name": "cosine"}},
    })
    trainer = Trainer(config, tmp_path / "run", progress=False)
    before = trainer.evaluate_split(trainer.data.test)
    trainer.fit()
    after = trainer.evaluate_split(trainer.data.test)
    assert before > 0.5 and after < 0.1, (before, after)
    from operators.cli import main

    assert main(["plot", str(tmp_path / "run"), "--activations", "--checkpoint", "last"]) == 0
    assert (tmp_path / "run" / "plots" / "activations.png").stat().st_size > 10_000


def test_trainer_trains_kan_deeponet_as_well_as_deeponet(tmp_path):
    """KAN-DeepONet (MLP branch on 32 sensors, GR-KAN trunk, shipped defaults: linear maps initialised
    as the twin's, rationals at a tenth of the learning rate) and a plain DeepONet of the same sizes,
    trained by the common trainer on one heat step with the same budget and seed: both start at the
    same untrained error (1.066: the same linear draws, rationals within 3e-3 of GELU) and KAN ends at
    0.620 against DeepONet's 0.635. Asserted: KAN below 0.7, below 0.65 x its untrained error and
    within 10% of DeepONet (the margin covers BLAS-order differences in 30 epochs)."""
    from operators.training.config import run_config_from_mapping
    from operators.training.trainer import Trainer
    from tests.operators import tiny_data

    data = tiny_data.heat(tmp_path / "heat.h5", n_samples=48, n=32, steps=1, dim=1, nu=0.005, dt=0.5)
    errors = {}
    for model in ("kan-deeponet", "deeponet"):
        config = run_config_from_mapping({
            "seed": 0,
            "data": {"path": str(data), "protocol": "window", "t_in": 1, "t_out": 1, "n_train": 40, "n_val": 0,
                     "n_test": 8, "periodic": True, "normalization": "global"},
            "model": {"model": model, "branch": "mlp", "branch_width": 32, "trunk_width": 32, "basis": 16,
                      **({"groups": 4} if model == "kan-deeponet" else {})},
            "training": {"epochs": 30, "batch_size": 10, "optimizer": {"lr": 0.01}, "scheduler": {"name": "cosine"}},
        })
        trainer = Trainer(config, tmp_path / model, progress=False)
        before = trainer.evaluate_split(trainer.data.test)
        trainer.fit()
        errors[model] = (before, trainer.evaluate_split(trainer.data.test))
    (before, after), (_, twin) = errors["kan-deeponet"], errors["deeponet"]
    assert after < 0.7 and after < 0.65 * before and after <= 1.1 * twin, errors


# ---------------------------------------------------------------------------- settings
def test_configs_build_their_models():
    """Every kan_* training config reads as a checked RunConfig whose model builds; the quick
    variants' model is the same kind as the full one (only sizes differ)."""
    from operators.training.config import load_run_config, run_config_from_mapping

    paths = sorted((configs_root() / "train").glob("kan_*.yaml"))
    names = {p.stem for p in paths}
    for stem in ("kan_fno_ns", "kan_fno_darcy", "kan_deeponet_darcy"):
        assert {stem, f"{stem}_quick"} <= names
    for path in paths:
        config = run_config_from_mapping(load_run_config(path))
        settings = dict(config.model)
        if settings["model"] == "kan-fno":
            settings.setdefault("in_channels", config.data.t_in if config.data.time_dependent else 1)
            settings.setdefault("out_channels", 1)
        else:
            settings.setdefault("sensor_shape", [9, 9])
        model = operators.build(settings)
        assert any(isinstance(m, GroupRational) for m in model.modules()), path.name


def test_group_count_and_setting_errors():
    """A layer whose width is not a multiple of ``groups`` uses gcd(width, groups) groups; a group
    count below one is a ConfigError naming the field."""
    assert [group_count(c, 8) for c in (3, 12, 16, 7225)] == [1, 4, 8, 1]
    with pytest.raises(ConfigError, match="groups must be an integer >= 1"):
        operators.build({"model": "kan-fno", **_fno_settings(groups=0)})
    with pytest.raises(ConfigError, match="first_init"):
        operators.build({"model": "kan-deeponet", "sensor_shape": [4], "first_init": "relu"})


# ---------------------------------------------------------------------------- activation plots
def test_activation_curves_are_each_groups_function():
    """The plotted curves are the rationals' functions per group: with group g of a rational set to
    P = g + x, Q = 1 + |x| the curve is (g + x) / (1 + |x|) exactly, and the dashed reference is the
    shipped fit it started from (its max error to GELU on [-3, 3] is the fit's)."""
    model = operators.build({"model": "kan-fno", **_fno_settings()})
    name, rational = next((n, m) for n, m in model.named_modules()
                          if isinstance(m, GroupRational) and m.init == "gelu")
    numerator, denominator = (torch.zeros_like(c) for c in rational.coefficients())
    numerator[:, 0] = torch.arange(rational.groups, dtype=numerator.dtype)
    numerator[:, 1] = 1.0
    denominator[:, 0] = 1.0
    rational.set_coefficients(numerator, denominator)
    curve = next(c for c in activation_curves(model) if c.name == name)
    x = curve.x
    expected = (np.arange(rational.groups)[:, None] + x) / (1 + np.abs(x))
    np.testing.assert_allclose(curve.values, expected, rtol=1e-6, atol=1e-6)
    from scipy.special import erf

    gelu = 0.5 * x * (1 + erf(x / math.sqrt(2)))
    assert np.abs(curve.initial - gelu).max() <= FITS["gelu"]["max_error"] * 1.001


def test_input_ranges_are_the_inputs_percentiles():
    """input_ranges records what each rational receives: for a one-layer stack fed uniform values on
    [-2, 2], the first rational's 0.5/99.5 percentiles are -1.98 and 1.98 to sampling accuracy."""
    stack = KANMLP([4, 3], RationalSettings(groups=2))
    x = torch.rand(20000, 4) * 4 - 2
    ranges = input_ranges(stack, lambda: stack(x))
    low, high = ranges["layers.0.rational"]
    assert abs(low + 1.98) < 0.02 and abs(high - 1.98) < 0.02, (low, high)


def test_activation_plot_refuses_models_without_rationals():
    """--activations on an FNO is a ConfigError saying it is for KAN models."""
    with pytest.raises(ConfigError, match="no rational activations"):
        activation_curves(operators.build({"model": "fno", **_fno_settings()}))
