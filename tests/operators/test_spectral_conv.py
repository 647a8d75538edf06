"""Our spectral convolution on real fields against neuralop's, against a direct DFT, and across resolutions.

Complex fields, 4-D grids and output rescaling: test_spectral_conv_complex.py; the truncated transforms:
test_truncated_dft.py."""

from __future__ import annotations

import itertools

import pytest
import torch

from operators.layers.factorized_weights import cp_rank, tucker_ranks
from operators.layers.neuralop_interop import pdeop_state_for_neuralop_model, spectral_conv_state_from_neuralop
from operators.layers.spectral_conv import SpectralConv
from operators.layers.truncated_dft import use_dft_matrix

neuralop_conv = pytest.importorskip("neuralop.layers.spectral_convolution")


def _copy_of_neuralop(theirs, n_dim: int, **kwargs) -> SpectralConv:
    ours = SpectralConv(theirs.in_channels, theirs.out_channels, kwargs.pop("n_modes"), **kwargs)
    state = {k: v for k, v in theirs.state_dict().items() if isinstance(v, torch.Tensor)}
    ours.load_state_dict(spectral_conv_state_from_neuralop(state, n_dim))
    return ours


def _direct_reference(x: torch.Tensor, conv: SpectralConv) -> torch.Tensor:
    """The layer's definition evaluated term by term in float64 on a 2-D grid of any size.

    For every kept frequency (k1, k2) with k2 >= 0: Y(k) = sum_i X_i(k) W_io(k), placed with its
    conjugate at -k; y = real inverse DFT of Y plus the bias. X is the forward-normalised DFT.
    """
    batch, _, n1, n2 = x.shape
    spectrum = torch.fft.fft2(x.double()) / (n1 * n2)
    kept = conv.kept_modes((n1, n2))
    weight = conv.dense_weight(kept).to(torch.complex128)
    m1 = kept[0]
    freqs1 = list(range(0, m1 - m1 // 2)) + list(range(-(m1 // 2), 0))
    out = torch.zeros(batch, conv.out_channels, n1, n2, dtype=torch.complex128)
    for i, k1 in enumerate(freqs1):
        for k2 in range(kept[1]):
            mode = torch.einsum("bc,co->bo", spectrum[:, :, k1 % n1, k2], weight[:, :, i, k2])
            out[:, :, k1 % n1, k2] = mode
            if k2 > 0 and (n2 - k2) % n2 != k2:
                out[:, :, (-k1) % n1, (-k2) % n2] = mode.conj()
    y = torch.fft.ifft2(out * (n1 * n2)).real
    return y + conv.bias.double()


@pytest.mark.parametrize("modes,size", [((8,), (32,)), ((6, 8), (16, 20)), ((16, 16), (64, 64)), ((4, 6, 4), (8, 12, 10))])
def test_dense_layer_equals_neuralop(modes, size):
    """With neuralop's weights copied in, outputs and input gradients agree to float32 precision.

    Output magnitudes are O(1); float32 transforms of these sizes round at ~1e-7 relative, so 1e-5 is
    a tolerance no layout or normalisation mistake could pass.
    """
    torch.manual_seed(0)
    theirs = neuralop_conv.SpectralConv(3, 5, modes)
    ours = _copy_of_neuralop(theirs, len(modes), n_modes=modes)
    x = torch.randn(2, 3, *size, requires_grad=True)
    y_theirs = theirs(x)
    (g_theirs,) = torch.autograd.grad(y_theirs.square().sum(), x)
    y_ours = ours(x)
    (g_ours,) = torch.autograd.grad(y_ours.square().sum(), x)
    torch.testing.assert_close(y_ours, y_theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g_ours, g_theirs, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("factorization", ["tucker", "cp"])
def test_factorized_layer_equals_neuralop(factorization):
    """Tucker and CP weights copied factor by factor from neuralop give the same outputs (1e-5)."""
    torch.manual_seed(1)
    modes = (8, 6)
    theirs = neuralop_conv.SpectralConv(4, 6, modes, factorization=factorization, rank=0.5)
    rank = theirs.weight.rank
    ours = _copy_of_neuralop(theirs, 2, n_modes=modes, factorization=factorization, rank=rank)
    x = torch.randn(2, 4, 16, 12)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


def test_fractional_ranks_follow_tensorly():
    """A fractional rank gives tensorly's Tucker ranks and CP rank, so TFNO sizes match neuralop's."""
    tensorly_tucker = pytest.importorskip("tensorly.decomposition._tucker")
    tensorly_cp = pytest.importorskip("tensorly.decomposition._cp")
    for shape, fraction in itertools.product([(32, 32, 16, 9), (20, 20, 12), (8, 16, 6, 4, 3)], [0.05, 0.1, 0.5, 1.0]):
        assert list(tucker_ranks(shape, fraction)) == list(tensorly_tucker.validate_tucker_rank(shape, fraction))
        assert cp_rank(shape, fraction) == tensorly_cp.validate_cp_rank(shape, fraction)


def test_odd_grid_matches_the_direct_definition():
    """On odd grids the layer equals its term-by-term definition (float64 reference, 1e-5).

    neuralop's layer differs here: it applies ``fftshift`` twice (instead of fftshift then
    ifftshift), which is the identity only on even grids; the check shows ours is the correct one.
    """
    torch.manual_seed(2)
    conv = SpectralConv(3, 4, (6, 8))
    x = torch.randn(2, 3, 17, 21)
    torch.testing.assert_close(conv(x).double(), _direct_reference(x, conv), atol=1e-5, rtol=0)


def test_grid_coarser_than_the_modes_uses_the_resolved_ones():
    """A 6x6 grid cannot hold 8x8 modes: the layer keeps the 6 resolved rows and 4 real-FFT columns
    and the matching part of the weight, exactly as the direct definition with those modes (1e-5)."""
    torch.manual_seed(3)
    conv = SpectralConv(2, 3, (8, 8))
    x = torch.randn(2, 2, 6, 6)
    assert conv.kept_modes((6, 6)) == (6, 4)
    torch.testing.assert_close(conv(x).double(), _direct_reference(x, conv), atol=1e-5, rtol=0)


def test_band_limited_input_gives_the_same_function_on_two_grids():
    """Resolution consistency: a trigonometric polynomial with frequencies below both grids' Nyquist
    limits, sampled at 24 and 48 points, gives outputs that agree on the shared points (1e-5).

    The layer only sees Fourier coefficients, which are grid independent for such inputs under the
    forward-normalised transform.
    """
    torch.manual_seed(4)
    conv = SpectralConv(2, 3, (8, 8))

    def field(n: int) -> torch.Tensor:
        t = torch.arange(n, dtype=torch.float64) / n
        X, Y = torch.meshgrid(t, t, indexing="ij")
        u0 = torch.sin(2 * torch.pi * X) + 0.5 * torch.cos(2 * torch.pi * (3 * X - 2 * Y))
        u1 = torch.cos(2 * torch.pi * 5 * Y) - 0.3 * torch.sin(2 * torch.pi * (X + 4 * Y))
        return torch.stack((u0, u1))[None].float()

    coarse, fine = conv(field(24)), conv(field(48))
    torch.testing.assert_close(fine[..., ::2, ::2], coarse, atol=1e-5, rtol=0)


def test_output_grid_is_fourier_interpolation():
    """Asking for a finer output grid evaluates the same band-limited output on more points: every
    second point equals the output on the input grid (1e-5)."""
    torch.manual_seed(5)
    conv = SpectralConv(2, 2, (6, 6))
    x = torch.randn(1, 2, 16, 16)
    fine = conv(x, output_shape=(32, 32))
    torch.testing.assert_close(fine[..., ::2, ::2], conv(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("factorization", ["dense", "tucker", "cp"])
def test_layer_gradients_are_correct(factorization):
    """gradcheck (float64/complex128) of the whole layer with respect to input and every weight:
    the complex parameters' Wirtinger gradients are what PyTorch's optimisers expect."""
    torch.manual_seed(7)
    conv = SpectralConv(2, 2, (4, 4), factorization=factorization, rank=0.5).to(torch.float64)
    assert all(p.dtype in (torch.float64, torch.complex128) for p in conv.parameters())
    x = torch.randn(1, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    params = [p for p in conv.parameters()]
    names = [n for n, _ in conv.named_parameters()]

    def apply(inp, *values):
        state = dict(zip(names, values))
        return torch.func.functional_call(conv, state, (inp,))

    assert torch.autograd.gradcheck(apply, (x, *params), atol=1e-6)


def test_layer_works_as_conv_module_of_neuralop_fno():
    """Inside neuralop's FNO our layer trains (finite, non-zero gradients on its complex weights) and,
    with the spectral weights copied from a default neuralop FNO, the two models agree (1e-5)."""
    models = pytest.importorskip("neuralop.models")
    torch.manual_seed(8)
    theirs = models.FNO(n_modes=(8, 8), in_channels=2, out_channels=1, hidden_channels=8, n_layers=2)
    hybrid = models.FNO(n_modes=(8, 8), in_channels=2, out_channels=1, hidden_channels=8, n_layers=2,
                        conv_module=SpectralConv)
    hybrid.load_state_dict(pdeop_state_for_neuralop_model(theirs.state_dict(), 2))
    x = torch.randn(3, 2, 32, 32)
    torch.testing.assert_close(hybrid(x), theirs(x), atol=1e-5, rtol=1e-5)
    hybrid(x).square().mean().backward()
    grad = hybrid.fno_blocks.convs[0].weight.weight.grad
    assert grad is not None and grad.is_complex() and torch.isfinite(torch.view_as_real(grad)).all()
    assert grad.abs().max() > 0


def test_unsupported_neuralop_options_are_refused():
    """Options our layer does not implement are errors naming the option, not silently ignored settings."""
    for name, value in (("fno_block_precision", "half"), ("fixed_rank_modes", True),
                        ("decomposition_kwargs", {"init": "svd"})):
        with pytest.raises(ValueError, match=name):
            SpectralConv(4, 4, (4, 4), **{name: value})
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        SpectralConv(4, 5, (4, 4), separable=True)
    with pytest.raises(ValueError, match="complex_data=True"):
        SpectralConv(2, 2, (4, 4))(torch.randn(1, 2, 8, 8, dtype=torch.cfloat))


@pytest.mark.parametrize("factorization", ["dense", "tucker", "cp"])
def test_dtype_conversions_keep_complex_weights(factorization):
    """``.double()`` and ``.to(torch.float64)`` give complex128 weights with the same values (PyTorch's
    defaults would keep complex64 or drop the imaginary part), and the float64 layer then agrees with
    the float32 one to float32 precision (1e-5)."""
    torch.manual_seed(9)
    conv = SpectralConv(3, 3, (6, 6), factorization=factorization, rank=0.5)
    x = torch.randn(2, 3, 12, 12)
    expected = conv(x)
    for convert in (lambda m: m.double(), lambda m: m.to(torch.float64)):
        converted = convert(SpectralConv(3, 3, (6, 6), factorization=factorization, rank=0.5))
        converted.load_state_dict({k: v.to(torch.complex128 if v.is_complex() else torch.float64)
                                   for k, v in conv.state_dict().items()})
        assert {p.dtype for p in converted.parameters()} <= {torch.float64, torch.complex128}
        torch.testing.assert_close(converted(x.double()).float(), expected, atol=1e-5, rtol=0)
    double = SpectralConv(3, 3, (6, 6), factorization=factorization, rank=0.5)
    double.load_state_dict(conv.state_dict())
    double.double()
    torch.testing.assert_close(double.dense_weight(), conv.dense_weight().to(torch.complex128), atol=1e-6, rtol=0)


@pytest.mark.parametrize("modes", [(8, 8), (8, 48)])
def test_fused_residual_equals_adding_it(modes):
    """``conv(x, residual=r)`` equals ``conv(x) + r`` (1e-6) on the matrix-product path (few columns)
    and on the FFT path (48 modes: 25 of 33 columns), including the bias folded into frequency zero."""
    torch.manual_seed(10)
    conv = SpectralConv(3, 4, modes)
    kept = conv.kept_modes((64, 64))
    assert use_dft_matrix(64, kept[-1]) == (modes[1] == 8)
    x, r = torch.randn(2, 3, 64, 64), torch.randn(2, 4, 64, 64)
    torch.testing.assert_close(conv(x, residual=r), conv(x) + r, atol=1e-6, rtol=1e-6)
