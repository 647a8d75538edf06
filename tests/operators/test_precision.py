"""Mixed precision (training.precision): what runs in which type, and how close a bfloat16 step is to float32."""

from __future__ import annotations

import pytest
import torch

from operators.kernels import rational
from operators.layers import spectral_conv
from operators.layers.channel_mlp import PointwiseLinear
from operators.models.fno import FNO, FNOConfig
from operators.training.config import run_config_from_mapping
from operators.training.precision import LossScaler, Precision, check_supported
from operators.training.trainer import Trainer
from solvers.errors import ConfigError
from tests.operators import tiny_data
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)

#: bfloat16 keeps 8 significant bits: unit roundoff u = 2^-9
BF16_ROUNDOFF = 2.0 ** -9


def test_spectral_products_stay_complex64_under_bfloat16_autocast(monkeypatch):
    """Inside a bfloat16 autocast region the FNO's linear layers compute in bfloat16, while every spectral
    mode mixing receives complex64 spectra and weights and every spectral layer returns float32."""
    seen = []
    mix = spectral_conv.spectral_mix

    def recording(x, weight):
        seen.append((x.dtype, weight.dtype))
        return mix(x, weight)

    monkeypatch.setattr(spectral_conv, "spectral_mix", recording)
    model = FNO(FNOConfig(in_channels=2, out_channels=1, n_modes=(6, 6), width=8, n_layers=2))
    outputs = []
    for module in model.modules():
        if isinstance(module, spectral_conv.SpectralConv):
            module.register_forward_hook(lambda m, args, out: outputs.append(out.dtype))
    linear_types = []
    for module in model.modules():
        if isinstance(module, PointwiseLinear):
            module.register_forward_hook(lambda m, args, out: linear_types.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(3, 2, 16, 16))
    assert seen == [(torch.complex64, torch.complex64)] * 2
    assert outputs == [torch.float32] * 2
    assert linear_types and set(linear_types) == {torch.bfloat16}
    assert torch.isfinite(out).all()


def test_the_rational_activation_evaluates_half_inputs_in_float32():
    """A bfloat16 input (what autocast hands on) gives the float32 rational of its float32 value exactly."""
    x = torch.randn(4, 8).to(torch.bfloat16)
    numerator = torch.tensor([0.0, 1.0, 0.5, 0.1, 0.01, 0.001])
    denominator = torch.tensor([[0.2, 0.1, 0.05, 0.01]])
    y = rational(x, numerator, denominator, groups=1)
    assert y.dtype == torch.float32
    assert torch.equal(y, rational(x.float(), numerator, denominator, groups=1))


@pytest.fixture(scope="module")
def heat2d(tmp_path_factory):
    return tiny_data.heat(tmp_path_factory.mktemp("data") / "heat2d.h5", n_samples=8, n=16, steps=3, dim=2)


def _trainer(data, precision: str, tmp_path) -> Trainer:
    config = run_config_from_mapping({
        "seed": 0,
        "data": {"path": str(data), "protocol": "window", "t_in": 1, "t_out": 2, "n_train": 6, "n_val": 1,
                 "n_test": 1, "periodic": True},
        "model": {"model": "fno", "n_modes": [6, 6], "width": 12, "n_layers": 2},
        "training": {"batch_size": 6, "mode": "unrolled", "step": 1, "precision": precision}})
    return Trainer(config, tmp_path / precision, progress=False)


def test_a_bfloat16_step_is_the_float32_step_to_bfloat16_accuracy(heat2d, tmp_path):
    """From the same weights and batch, the bfloat16 step's loss and gradient equal float32's to the
    accuracy bfloat16 rounding allows, and the step changes the float32 parameters.

    Error budget, worst case (errors adding up): each bfloat16 product rounds its two inputs and its
    output, 3 roundings of relative size u = 2^-9. One model call chains 10 products (lifting 2, two
    blocks of skip + channel MLP 3 each, projection 2); the unrolled step chains two calls, so the loss
    is within 60 u (~12%) and the gradient, whose backward products are bfloat16 as well, within
    120 u (~23%, norm-wise). The spectral layers add nothing (float32). Observed: ~3% for the gradient.
    """
    steps = {}
    for precision in ("float32", "bfloat16"):
        trainer = _trainer(heat2d, precision, tmp_path)
        x, y, c = trainer.data.train.batch(torch.arange(6))
        before = [p.detach().clone() for p in trainer.surrogate.model.parameters()]
        loss, _, _ = trainer.train_step(x, y, c, torch.arange(6))
        grads = torch.cat([torch.view_as_real(p.grad).flatten() if p.grad.is_complex() else p.grad.flatten()
                           for p in trainer.surrogate.model.parameters()])
        moved = any(not torch.equal(b, p) for b, p in zip(before, trainer.surrogate.model.parameters()))
        assert moved and all(p.dtype in (torch.float32, torch.complex64) for p in trainer.surrogate.model.parameters())
        steps[precision] = (loss, grads)
    (loss32, grad32), (loss16, grad16) = steps["float32"], steps["bfloat16"]
    assert loss16 != loss32  # autocast did something
    assert abs(loss16 - loss32) <= 60 * BF16_ROUNDOFF * loss32
    assert float((grad16 - grad32).norm()) <= 120 * BF16_ROUNDOFF * float(grad32.norm())


def test_a_float16_step_trains_complex_weights_with_loss_scaling(heat2d, tmp_path):
    """float16 scales the loss (2^16) and unscales the gradients itself — complex spectral weights included,
    which torch's GradScaler cannot unscale — so the step gives a finite loss and moves the parameters."""
    trainer = _trainer(heat2d, "float16", tmp_path)
    x, y, c = trainer.data.train.batch(torch.arange(6))
    before = [p.detach().clone() for p in trainer.surrogate.model.parameters()]
    loss, _, _ = trainer.train_step(x, y, c, torch.arange(6))
    assert torch.isfinite(torch.tensor(loss))
    assert trainer.precision.state() == {"scale": 2.0 ** 16, "good_steps": 1}
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.surrogate.model.parameters()))


def test_the_loss_scaler_skips_overflowed_steps_and_adapts_its_scale():
    """A non-finite scaled gradient skips the step and halves the scale; `interval` good steps double it;
    gradients are divided by the scale (complex ones too)."""
    scaler = LossScaler(scale=8.0, interval=2)
    weight = torch.nn.Parameter(torch.ones(2, dtype=torch.complex64))
    weight.grad = torch.tensor([8.0 + 16.0j, float("inf")])
    taken = []
    scaler.unscale([weight])
    scaler.step(lambda: taken.append(1))
    assert taken == [] and scaler.scale == 4.0
    for _ in range(2):
        weight.grad = torch.tensor([4.0 + 8.0j, 4.0])
        scaler.unscale([weight])
        assert torch.equal(weight.grad, torch.tensor([1.0 + 2.0j, 1.0]))
        scaler.step(lambda: taken.append(1))
    assert taken == [1, 1] and scaler.state() == {"scale": 8.0, "good_steps": 0}


def test_a_precision_the_device_cannot_run_is_refused():
    """Without autocast on the device (here: the meta device) a half precision is a ConfigError naming
    training.precision; float32 always runs."""
    check_supported("float32", torch.device("meta"))
    with pytest.raises(ConfigError, match="training.precision 'bfloat16' cannot run on meta"):
        Precision("bfloat16", "meta")
    with pytest.raises(ConfigError, match="must be one of"):
        check_supported("half", torch.device("cpu"))
