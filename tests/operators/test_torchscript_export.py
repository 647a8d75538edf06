"""TorchScript export of Fourier operators: the spectral layer's custom-gradient helper must not end up
in the traced program, and the saved program must run with torch alone."""

from __future__ import annotations

import pytest
import torch

import operators
from operators.checkpoint import Operator
from operators.layers.rational import GroupRational
from operators.training.export import example_inputs, export_surrogate
from operators.training.surrogate import Surrogate
from tests.operators.torch_only import assert_program_reproduces
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)

#: 1-D FNO with the DFT-matrix last-axis path, 2-D FNO with domain padding, a Tucker TFNO, a 2-D KAN-FNO
MODELS = {
    "fno-1d": {"model": "fno", "in_channels": 2, "out_channels": 1, "n_modes": [8], "width": 8, "n_layers": 2},
    "fno-2d-padded": {"model": "fno", "in_channels": 1, "out_channels": 2, "n_modes": [6, 6], "width": 8,
                      "n_layers": 2, "domain_padding": [0.1]},
    "tfno-2d": {"model": "tfno", "in_channels": 1, "out_channels": 1, "n_modes": [6, 6], "width": 8, "n_layers": 2},
    "kan-fno-2d": {"model": "kan-fno", "in_channels": 1, "out_channels": 1, "n_modes": [6, 6], "width": 8,
                   "n_layers": 2},
}
GRIDS = {"fno-1d": (32,), "fno-2d-padded": (16, 16), "tfno-2d": (16, 16), "kan-fno-2d": (16, 16)}


def _surrogate(name: str) -> Surrogate:
    torch.manual_seed(3)
    model = operators.build(MODELS[name])
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for module in model.modules():  # learned-looking rationals rather than the initial fits
            if isinstance(module, GroupRational):
                for p in (module.numerator, module.denominator):
                    p.add_(0.05 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    # the normalisers travel in the program too (test_cli_train covers them); the layers are the point here
    return Surrogate(Operator(model)).eval()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torchscript_program_reproduces_the_model_without_pdeop(name, tmp_path):
    """`export_surrogate(..., "torchscript")` traces, saves and reloads the program (a Python
    autograd.Function in the graph makes torch.jit.save fail), and a fresh interpreter that imports only
    torch gets the eager outputs at another batch size (3, traced at 2). Tolerance 1e-5: the program runs
    the same float32 operations as the eager reference path; only the compiled-kernel path used for the
    eager outputs may sum the mode products in another order (measured differences ~1e-7)."""
    surrogate = _surrogate(name)
    grid = GRIDS[name]
    inputs = example_inputs(MODELS[name]["in_channels"], 0, grid)
    path = tmp_path / "program.pt"
    assert export_surrogate(surrogate, inputs, "torchscript", path) == 0.0
    x = torch.randn(3, MODELS[name]["in_channels"], *grid, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = surrogate(x)
    assert y.abs().max() > 1e-2  # a vanishing output would make the comparison empty
    assert_program_reproduces("torchscript", path, x, y)


def test_mode_major_gradient_helper_changes_no_number():
    """Leaving out the custom-gradient helper (what tracing does) changes no number: the float64
    gradients of a spectral layer's loss with and without it agree to 1e-12 (it only changes the memory
    layout of the gradient, not its values; the bound leaves room for reordered sums)."""
    from operators.layers import spectral_conv

    torch.manual_seed(0)
    layer = spectral_conv.SpectralConv(3, 2, (6, 6)).double()
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64, requires_grad=True)
    layer(x).square().sum().backward()
    grads = [x.grad.clone(), layer.bias.grad.clone()]
    x.grad, layer.bias.grad = None, None
    original = spectral_conv._ModeMajorGrad.apply
    spectral_conv._ModeMajorGrad.apply = lambda t: t  # type: ignore[method-assign]
    try:
        layer(x).square().sum().backward()
    finally:
        spectral_conv._ModeMajorGrad.apply = original  # type: ignore[method-assign]
    torch.testing.assert_close(x.grad, grads[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.bias.grad, grads[1], rtol=1e-12, atol=1e-12)
