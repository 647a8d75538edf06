"""U-Net and dilated ResNet baselines: periodic equivariance, FiLM conditioning, checkpoints, a tiny fit."""

from __future__ import annotations

import pytest
import torch

import operators
from operators.training.config import run_config_from_mapping
from operators.training.trainer import Trainer
from solvers.errors import ConfigError
from tests.operators import tiny_data
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)

UNET = {"model": "unet", "in_channels": 3, "out_channels": 2, "width": 8, "channel_multipliers": [1, 2, 2],
        "norm_groups": 4}
RESNET = {"model": "resnet", "in_channels": 3, "out_channels": 2, "width": 8, "n_blocks": 2, "norm_groups": 4}


def _roll(x: torch.Tensor, shift: int) -> torch.Tensor:
    dims = tuple(range(2, x.ndim))
    return torch.roll(x, (shift, -2 * shift)[:len(dims)], dims)


@pytest.mark.parametrize("settings,shift", [(UNET, 4), (RESNET, 3)])
@pytest.mark.parametrize("n_dim", [1, 2])
def test_circular_padding_makes_the_network_commute_with_shifts(settings, shift, n_dim):
    """With circular padding, shifting the input circularly shifts the output, to float32 rounding (1e-5
    on O(1) outputs): every convolution wraps around and group norms use whole-grid statistics. The
    U-Net's stride-2 down-sampling needs shifts by multiples of 2^(levels-1) = 4; the ResNet takes any
    shift. Zero padding breaks it at the boundary (difference > 1e-3)."""
    torch.manual_seed(0)
    model = operators.build({**settings, "n_dim": n_dim}).eval()
    x = torch.randn(2, 3, *(32,) * n_dim)
    with torch.no_grad():
        torch.testing.assert_close(model(_roll(x, shift)), _roll(model(x), shift), atol=1e-5, rtol=0)
        zeros = operators.build({**settings, "n_dim": n_dim, "padding": "zeros"}).eval()
        assert float((zeros(_roll(x, shift)) - _roll(zeros(x), shift)).abs().max()) > 1e-3


@pytest.mark.parametrize("settings", [UNET, RESNET])
def test_film_conditioning_starts_neutral_and_then_depends_on_the_scalar(settings):
    """The last input channel as a FiLM scalar: at initialisation (zero FiLM weights) the output does
    not depend on it at all; once the FiLM maps are nonzero it does. A scalar channel that varies over
    the grid enters through its mean only (the protocol broadcasts per-sample scalars)."""
    torch.manual_seed(1)
    model = operators.build({**settings, "n_dim": 1, "conditioning": 1}).eval()
    x = torch.randn(2, 3, 32)
    other = x.clone()
    other[:, -1] = 5.0
    with torch.no_grad():
        assert torch.equal(model(x), model(other))
        for name, p in model.named_parameters():
            if "film" in name:
                p.normal_()
        assert float((model(x) - model(other)).abs().max()) > 1e-2
        same_mean = x.clone()
        same_mean[:, -1] = x[:, -1].mean(dim=1, keepdim=True)
        torch.testing.assert_close(model(x), model(same_mean), atol=1e-5, rtol=0)


@pytest.mark.parametrize("settings", [UNET, RESNET])
def test_input_residual_predicts_an_increment(settings):
    """With input_residual and a zeroed output convolution the prediction is the last input fields
    (those before the conditioning channel), exactly."""
    model = operators.build({**settings, "n_dim": 2, "out_channels": 1, "conditioning": 1, "input_residual": True})
    last = model.conv_out if hasattr(model, "conv_out") else model.decoder
    for p in last.parameters():
        p.data.zero_()
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(model(x), x[:, 1:2])


@pytest.mark.parametrize("settings", [UNET, RESNET, {**UNET, "conditioning": 1}, {**RESNET, "conditioning": 1, "input_residual": False}])
def test_checkpoint_round_trip_is_exact(settings, tmp_path):
    """operators.save -> operators.load rebuilds the same config and bit-identical outputs."""
    torch.manual_seed(2)
    model = operators.build({**settings, "n_dim": 2})
    for name, p in model.named_parameters():
        if "film" in name:
            p.data.normal_()
    operators.save(model, tmp_path / "ckpt")
    loaded = operators.load(tmp_path / "ckpt")
    assert loaded.config == model.config
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


@pytest.mark.parametrize("name", ["unet", "resnet"])
def test_tiny_fit_beats_mean_and_persistence(name, tmp_path):
    """Teacher-forced training on periodic heat trajectories (each step damps mode k by
    exp(-nu (2 pi k)^2 dt)) for 25 epochs brings the one-step test error well below the two trivial
    predictions: the training-mean field (error ~1 on zero-mean fields) and persistence u(t+1) = u(t)
    (error ~0.2 here); an untrained or broken network does not get below half of persistence's."""
    path = tiny_data.heat(tmp_path / "heat.h5", n_samples=24, n=32, steps=3, dim=1, nu=0.005, dt=0.5)
    model = {"model": name, "n_dim": 1, "width": 8, "norm_groups": 4}
    model.update({"channel_multipliers": [1, 2]} if name == "unet" else {"n_blocks": 2, "dilations": [1, 2, 4, 2, 1]})
    config = run_config_from_mapping({
        "data": {"path": str(path), "protocol": "one-step", "n_train": 16, "n_test": 8, "normalization": "global"},
        "model": model,
        "training": {"epochs": 15, "batch_size": 12, "mode": "teacher-forcing", "step": 1,
                     "optimizer": {"name": "adam", "lr": 3e-3}, "scheduler": {"name": "cosine"}},
        "seed": 0,
    })
    trainer = Trainer(config, tmp_path / "run", progress=False)
    trainer.fit()
    test = trainer.data.test
    x, y, _ = test.batch(range(len(test)))
    mean = trainer.data.train.trajectories.mean(dim=0).mean(dim=0)
    from operators.training.losses import relative_l2

    mean_error = float(relative_l2(mean.expand_as(y), y))
    persistence = float(relative_l2(x, y))
    error = trainer.evaluate_split(test)
    assert mean_error > 0.9 and persistence > 0.1
    assert error < 0.5 * persistence, (error, persistence)


def test_bad_settings_are_config_errors():
    """Grids the U-Net cannot halve, group counts that do not divide the channels, a residual without
    fields: ConfigErrors naming the setting."""
    model = operators.build({**UNET, "n_dim": 1})
    with pytest.raises(ConfigError, match="divisible by 4"):
        model(torch.randn(1, 3, 30))
    with pytest.raises(ConfigError, match="norm_groups"):
        operators.build({**UNET, "width": 6})
    with pytest.raises(ConfigError, match="input_residual"):
        operators.build({**RESNET, "in_channels": 2, "out_channels": 2, "conditioning": 1, "input_residual": True})
    with pytest.raises(ConfigError, match="conditioning"):
        operators.build({**RESNET, "conditioning": 3})


NEW_CONFIGS = [f"{model}_{problem}{quick}" for model in ("unet", "resnet") for problem in ("ns", "ks")
               for quick in ("", "_quick")] + ["mg_tfno_ns", "mg_tfno_ns_quick", "fno_ks_augmented",
                                                "fno_ks_augmented_quick"]


@pytest.mark.parametrize("name", NEW_CONFIGS)
def test_shipped_configs_build_and_run_on_their_grids(name):
    """Each shipped config parses, its data recipe resolves, and its model (channels filled as the
    trainer does) maps one input on the recipe's stored grid to one output of the right shape."""
    from operators.training.config import load_run_config
    from operators.training.trainer import model_settings
    from pde_data.config import configs_root
    from pde_data.pipeline import resolve_config

    config = run_config_from_mapping(load_run_config(configs_root() / "train" / f"{name}.yaml"))
    recipe = config.data.generate
    family = resolve_config(recipe["problem"], recipe.get("preset"),
                            overrides=[f"{k}={v}" for k, v in recipe.get("set", {}).items()]).settings
    grid = (family.resolution,) * (2 if recipe["problem"] == "navier-stokes" else 1)
    in_channels = config.data.t_in + len(config.data.conditioning)
    model = operators.build(model_settings(config, in_channels, config.call_steps(config.data.t_out), grid, True))
    with torch.no_grad():
        assert model(torch.randn(1, in_channels, *grid)).shape == (1, 1, *grid)
