"""GroupRational / GRKAN layers: the shipped fits, their reproducibility, the variance-preserving
initialisation and the agreement of channels-last and channels-first layouts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.polynomial.polynomial import polyval
from scipy.integrate import quad
from torch.nn import functional as F

from operators.layers.rational import GRKAN, GroupRational
from operators.layers.rational_fit import (
    DENOMINATOR_FLOOR,
    evaluate,
    fit_grid,
    fit_names,
    fit_target,
    load_fit,
)
from solvers.errors import ConfigError

# Independent (torch) implementations of the targets; the fit itself used scipy's erf/expit.
TARGETS = {"identity": lambda x: x, "gelu": F.gelu, "silu": F.silu, "tanh": torch.tanh}


def test_every_target_has_a_fit():
    """The layer offers exactly the four required initialisations."""
    assert fit_names() == sorted(TARGETS)


@pytest.mark.parametrize("name", sorted(TARGETS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fit_reproduces_target_on_interval(name, dtype):
    """Each fitted layer reproduces its target to max error < 1e-2 on [-3, 3] (the requirement).

    Checked on a grid 5x finer than the fitting grid, through the layer in float64 and float32
    (float32 rounding adds ~1e-6, far below the bound).
    """
    layer = GroupRational(4, groups=2, init=name).to(dtype)
    x = torch.linspace(-3.0, 3.0, 6001, dtype=dtype).unsqueeze(-1).expand(-1, 4)
    with torch.no_grad():
        error = (layer(x) - TARGETS[name](x)).abs().max().item()
    assert error < 1e-2


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fitted_denominators_are_trainable(name):
    """Every b_j starts strictly positive (>= the floor), so with sign(0) = 0 none is frozen at 0."""
    _, denominator = load_fit(name)
    assert min(denominator) >= DENOMINATOR_FLOOR * (1 - 1e-12)


def test_fitting_script_reproduces_shipped_coefficients():
    """Re-running the deterministic fit gives the shipped rationals back (same functions on the grid
    to 1e-8; coefficients of near-degenerate rationals are compared through their values)."""
    x = fit_grid()
    for name in sorted(TARGETS):
        fit = fit_target(name)
        shipped = evaluate(*load_fit(name), x)
        np.testing.assert_allclose(evaluate(fit.numerator, fit.denominator, x), shipped, rtol=0, atol=1e-8)
        assert fit.max_error < 1e-2


@pytest.mark.parametrize(("name", "std"), [("gelu", 1.0), ("tanh", 2.0), ("silu", 0.5)])
def test_second_moment_matches_adaptive_quadrature(name, std):
    """E[F(x)^2], x ~ N(0, std^2), from the layer's split Gauss-Legendre rule equals SciPy's adaptive
    quad of the independently evaluated rational to 1e-9 relative (quad's own error is ~1e-12)."""
    layer = GroupRational(6, groups=3, init=name)
    # The layer's own (float32) coefficients: the moment is of the rational it actually holds.
    num, den = (c[0].double().numpy() for c in layer.group_coefficients())

    def integrand(t: float) -> float:
        value = evaluate(num, den, np.array([t]))[0]
        return value**2 * math.exp(-0.5 * (t / std) ** 2) / (std * math.sqrt(2 * math.pi))

    want = sum(quad(integrand, lo, hi, epsabs=0, epsrel=1e-12)[0] for lo, hi in ((-np.inf, 0), (0, np.inf)))
    got = layer.second_moment(std)
    assert got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9)


@pytest.mark.parametrize(("name", "std"), [("gelu", 1.0), ("tanh", 1.0), ("silu", 2.0), ("identity", 0.5)])
def test_variance_preserving_init(name, std):
    """For x ~ N(0, std^2) the GR-KAN output keeps E[y^2] = Var[x] within 5%.

    With d_in = d_out = 256 and 4096 samples the Monte-Carlo spread of E[y^2] is ~2% (weights: 65536
    squared normals; the E[F]^2 cross terms averaged over 256 outputs); 5% still fails for the
    common mistake of using Var[F] instead of E[F^2] (off by 23-26% for GELU and SiLU) and for
    ignoring the rational (tanh at std 1 is off by 2.5x).
    """
    torch.manual_seed(0)
    layer = GRKAN(256, 256, groups=8, init=name, input_std=std, linear_init="variance-preserving")
    x = std * torch.randn(4096, 256)
    with torch.no_grad():
        second_moment = layer(x).square().mean().item()
    assert second_moment == pytest.approx(std**2, rel=0.05)


def test_variance_preserving_init_uses_trained_coefficients():
    """reset_linear reads the current coefficients: after doubling the numerator (F -> 2F) the weight
    scale halves exactly (1e-12 relative: same quadrature, exact factor of 4 in E[F^2])."""
    torch.manual_seed(1)
    layer = GRKAN(32, 16, groups=4, init="gelu", linear_init="variance-preserving")
    before = layer.rational.second_moment(1.0)
    numerator, denominator = layer.rational.coefficients()
    layer.rational.set_coefficients(2.0 * numerator.detach(), denominator.detach())
    after = layer.rational.second_moment(1.0)
    torch.testing.assert_close(after, 4 * before, rtol=1e-12, atol=0)
    torch.manual_seed(2)
    layer.reset_linear(1.0)
    std_after = layer.linear.weight.std().item()
    expected = 1.0 / math.sqrt(32 * after.mean().item())
    assert std_after == pytest.approx(expected, rel=0.05)  # 512 normal draws: std spread ~3%


@pytest.mark.parametrize("spatial", [(), (7,), (4, 5), (3, 2, 4)])
@pytest.mark.parametrize("shared", [False, True])
def test_grkan_channels_first_equals_channels_last(spatial, shared):
    """With the same state dict, the 1x1-conv (channels-first) and Linear (channels-last) paths give the
    same outputs and parameter gradients (float64; 1e-12 covers different summation orders)."""
    torch.manual_seed(3)
    last = GRKAN(8, 6, groups=4, init="silu", shared_numerator=shared, channel_dim=-1).double()
    first = GRKAN(8, 6, groups=4, init="silu", shared_numerator=shared, channel_dim=1).double()
    with torch.no_grad():
        last.rational.numerator.add_(0.1 * torch.randn_like(last.rational.numerator))
        last.rational.denominator.add_(0.1 * torch.randn_like(last.rational.denominator))
        last.linear.bias.normal_()
    first.load_state_dict(last.state_dict())
    x = torch.randn(2, 8, *spatial, dtype=torch.float64)
    y_first = first(x)
    y_last = last(x.movedim(1, -1))
    torch.testing.assert_close(y_first, y_last.movedim(-1, 1), rtol=1e-12, atol=1e-12)
    y_first.square().sum().backward()
    y_last.square().sum().backward()
    for (name, p_first), p_last in zip(first.named_parameters(), last.parameters()):
        torch.testing.assert_close(p_first.grad, p_last.grad, rtol=1e-12, atol=1e-12, msg=name)


def test_grkan_equals_rational_then_linear():
    """GRKAN is exactly the grouped rational followed by the linear map: compared with NumPy's
    polyval of P and Q and a matrix product (float64, 1e-12)."""
    torch.manual_seed(4)
    layer = GRKAN(6, 3, groups=3, init="tanh").double()
    x = torch.randn(5, 6, dtype=torch.float64)
    num, den = (c[0].numpy() for c in layer.rational.group_coefficients())
    t = x.numpy()
    activated = torch.as_tensor(polyval(t, num) / polyval(np.abs(t), np.r_[1.0, np.abs(den)]))
    want = activated @ layer.linear.weight.detach().T + layer.linear.bias.detach()
    torch.testing.assert_close(layer(x), want, rtol=1e-12, atol=1e-12)


def test_float32_layer_accepts_float64_input():
    """Parameters are cast to the input dtype: a float32 layer on float64 input gives the float64
    result of the same coefficients (1e-12) and float32 parameter gradients."""
    layer = GroupRational(4, groups=2, init="gelu")
    x = torch.randn(3, 4, dtype=torch.float64)
    y = layer(x)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, layer.double()(x), rtol=1e-12, atol=1e-12)
    layer.float()(x).sum().backward()
    assert layer.numerator.grad.dtype == torch.float32 and layer.numerator.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 6, "groups": 4}, "groups must be a positive divisor of channels=6 \\(got 4\\)"),
        ({"channels": 6, "groups": 3, "init": "relu"}, "init must be one of .*gelu.*\\(got 'relu'\\)"),
        ({"channels": 6, "groups": 3, "channel_dim": 2}, "channel_dim must be -1 .* or 1"),
        ({"channels": 0, "groups": 1}, "channels must be a positive integer"),
    ],
)
def test_bad_layer_settings_raise_config_error(kwargs, message):
    """User mistakes in layer settings are ConfigErrors naming the field, the expectation and the value."""
    with pytest.raises(ConfigError, match=message):
        GroupRational(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"input_std": 0.0, "linear_init": "variance-preserving"}, "input_std"), ({"out_channels": 0}, "out_channels"),
     ({"linear_init": "xavier"}, "linear_init must be one of mlp, variance-preserving"),
     ({"lr_scale": 0.0}, "lr_scale must be a positive number")],
)
def test_bad_grkan_settings_raise_config_error(kwargs, message):
    """GR-KAN's own settings are checked too: a non-positive input_std (for the variance-preserving
    init), out_channels or lr_scale, or an unknown linear_init, names the field."""
    settings = {"in_channels": 4, "out_channels": 2, "groups": 2, **kwargs}
    with pytest.raises(ConfigError, match=message):
        GRKAN(**settings)
