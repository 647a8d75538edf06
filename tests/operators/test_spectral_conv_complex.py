"""The spectral convolution on complex fields, on 4-D grids and onto other output grids.

Truth is the layer's definition evaluated index by index in float64 (:func:`_definition`), neuralop's
``SpectralConv`` where that layer is a Fourier multiplier, and exact solution operators. Tolerances:
float64 paths (DFTs of at most 40 points, sums of at most 3 channel products, O(1) values) round at
~1e-14, checked at 1e-12; float32 paths at ~1e-7 relative, checked at 1e-5.
"""

from __future__ import annotations

import math

import pytest
import torch

from operators.layers.neuralop_interop import spectral_conv_state_from_neuralop
from operators.layers.spectral_conv import SpectralConv

neuralop_conv = pytest.importorskip("neuralop.layers.spectral_convolution")


def _centred(m: int) -> list[int]:
    """The m kept frequencies of a full-FFT axis in FFT order: 0 .. m - m//2 - 1, then -(m//2) .. -1."""
    return list(range(m - m // 2)) + list(range(-(m // 2), 0))


def _definition(x: torch.Tensor, conv: SpectralConv, out_sizes: tuple[int, ...]) -> torch.Tensor:
    """``y = sum over kept k of (W(k) X(k)) e^{2 pi i k.x} + b`` on the output grid, in float64.

    X is the forward-normalised DFT of the input (rfftn for real data: the output is then the real
    field whose half spectrum is the mixed one). Each kept frequency is read at ``k mod n`` of the
    input spectrum and written at ``k mod n_out`` of the output's.
    """
    d = conv.order
    sizes = tuple(x.shape[-d:])
    dims = tuple(range(-d, 0))
    kept = conv.kept_modes(sizes, out_sizes)
    weight = conv.dense_weight(kept).detach().to(torch.complex128)
    if conv.complex_data:
        spectrum = torch.fft.fftn(x.to(torch.complex128), dim=dims, norm="forward")
        freqs = [torch.tensor(_centred(m)) for m in kept]
        out = torch.zeros(x.shape[0], conv.out_channels, *out_sizes, dtype=torch.complex128)
    else:
        spectrum = torch.fft.rfftn(x.double(), dim=dims, norm="forward")
        freqs = [torch.tensor(_centred(m)) for m in kept[:-1]] + [torch.arange(kept[-1])]
        out = torch.zeros(x.shape[0], conv.out_channels, *out_sizes[:-1], out_sizes[-1] // 2 + 1,
                          dtype=torch.complex128)
    read = torch.meshgrid(*[f % n for f, n in zip(freqs, sizes)], indexing="ij")
    write = torch.meshgrid(*[f % n for f, n in zip(freqs, out_sizes)], indexing="ij")
    equation = "bi...,i...->bi..." if conv.separable else "bi...,io...->bo..."
    out[(slice(None), slice(None), *write)] = torch.einsum(equation, spectrum[(slice(None), slice(None), *read)], weight)
    if conv.complex_data:
        y = torch.fft.ifftn(out, dim=dims, norm="forward")
    else:
        y = torch.fft.irfftn(out, s=out_sizes, dim=dims, norm="forward")
    return y if conv.bias is None else y + conv.bias.detach().double()


def _from_neuralop(theirs, complex_data: bool = False, **kwargs) -> SpectralConv:
    ours = SpectralConv(theirs.in_channels, theirs.out_channels, complex_data=complex_data, **kwargs)
    state = {k: v for k, v in theirs.state_dict().items() if isinstance(v, torch.Tensor)}
    ours.load_state_dict(spectral_conv_state_from_neuralop(state, ours.order, complex_data, ours.separable))
    return ours


CASES = [  # (n_modes, input grid, output grid): 1-D to 4-D, odd and even, grids coarser than the modes
    ((5,), (16,), (16,)),
    ((6, 5), (15, 12), (30, 12)),
    ((8, 8), (6, 7), (6, 7)),
    ((4, 5, 6), (9, 8, 10), (9, 5, 21)),
    ((3, 4, 2, 5), (6, 5, 4, 6), (6, 5, 8, 3)),
]


@pytest.mark.parametrize("modes,grid,out_grid", CASES)
@pytest.mark.parametrize("complex_data", [True, False])
def test_layer_equals_its_definition(modes, grid, out_grid, complex_data):
    """Real and complex data, 1-D to 4-D, odd grids, grids coarser than the modes, finer and coarser
    output grids: the layer equals its definition (float64, 1e-12)."""
    torch.manual_seed(0)
    conv = SpectralConv(3, 2, modes, complex_data=complex_data).double()
    x = torch.randn(2, 3, *grid, dtype=torch.complex128 if complex_data else torch.float64)
    y = conv(x, output_shape=out_grid)
    assert y.shape == (2, 2, *out_grid) and y.is_complex() == complex_data
    torch.testing.assert_close(y, _definition(x, conv, out_grid), atol=1e-12, rtol=0)


@pytest.mark.parametrize("complex_data", [True, False])
def test_separable_layer_equals_its_definition(complex_data):
    """Separable (one weight per channel and mode, no mixing), 3-D, output grid refined (1e-12)."""
    torch.manual_seed(1)
    conv = SpectralConv(3, 3, (4, 3, 6), complex_data=complex_data, separable=True).double()
    x = torch.randn(2, 3, 8, 7, 10, dtype=torch.complex128 if complex_data else torch.float64)
    torch.testing.assert_close(conv(x, output_shape=(8, 14, 10)), _definition(x, conv, (8, 14, 10)),
                               atol=1e-12, rtol=0)


@pytest.mark.parametrize("modes,grid", [((4, 4, 2, 4), (8, 6, 4, 6)), ((6,) * 4, (8,) * 4)])
def test_4d_layer_equals_neuralop(modes, grid):
    """3-D + time: with neuralop's weights copied in, outputs and input gradients agree (float32, 1e-5)."""
    torch.manual_seed(2)
    theirs = neuralop_conv.SpectralConv(3, 4, modes)
    ours = _from_neuralop(theirs, n_modes=modes)
    x = torch.randn(2, 3, *grid, requires_grad=True)
    y_theirs, y_ours = theirs(x), ours(x)
    torch.testing.assert_close(y_ours, y_theirs, atol=1e-5, rtol=1e-5)
    (g_theirs,) = torch.autograd.grad(y_theirs.square().sum(), x)
    (g_ours,) = torch.autograd.grad(y_ours.square().sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, atol=1e-4, rtol=1e-5)


def test_separable_layer_equals_neuralop():
    """Separable weights copied from neuralop's separable layer give its outputs (float32, 1e-5)."""
    torch.manual_seed(3)
    theirs = neuralop_conv.SpectralConv(4, 4, (6, 8), separable=True)
    ours = _from_neuralop(theirs, n_modes=(6, 8), separable=True)
    x = torch.randn(2, 4, 16, 12)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scaling,output_shape", [(None, (16, 40)), (None, (16, 9)), ([1, 2.5], None), ([1, 0.5], None)])
def test_last_axis_rescaling_equals_neuralop(scaling, output_shape):
    """Finer and coarser outputs along the real-FFT axis, by ``output_shape`` or by
    ``resolution_scaling_factor``: neuralop's numbers (float32, 1e-5), gradients included."""
    torch.manual_seed(4)
    theirs = neuralop_conv.SpectralConv(3, 2, (6, 10), resolution_scaling_factor=scaling)
    ours = _from_neuralop(theirs, n_modes=(6, 10), resolution_scaling_factor=scaling)
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    y_theirs, y_ours = theirs(x, output_shape=output_shape), ours(x, output_shape=output_shape)
    assert y_ours.shape == y_theirs.shape
    torch.testing.assert_close(y_ours, y_theirs, atol=1e-5, rtol=1e-5)
    (g_theirs,) = torch.autograd.grad(y_theirs.square().sum(), x)
    (g_ours,) = torch.autograd.grad(y_ours.square().sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("modes,grid", [((8,), (8,)), ((6, 8), (12, 8)), ((4, 6, 6), (8, 8, 6)), ((4, 4, 2, 4), (6, 4, 4, 4))])
def test_complex_layer_against_neuralop(modes, grid):
    """neuralop's complex layer is a Fourier multiplier when every mode of the last axis is kept; then,
    for equal weights, it equals ours in 1-D and ours times (-1)^j along the last axis in 2-D and up:
    it reads the last axis ``fftshift``-ed and writes it unshifted, which moves every output frequency
    by n/2 (float32, 1e-5; no bias, which it adds after the shift)."""
    torch.manual_seed(5)
    theirs = neuralop_conv.SpectralConv(2, 3, modes, complex_data=True, bias=False)
    ours = _from_neuralop(theirs, complex_data=True, n_modes=modes, bias=False)
    x = torch.randn(2, 2, *grid, dtype=torch.cfloat)
    sign = (-1.0) ** torch.arange(grid[-1]) if len(grid) > 1 else torch.ones(grid[-1])
    torch.testing.assert_close(theirs(x), sign * ours(x), atol=1e-5, rtol=1e-5)


def test_where_neuralop_is_not_a_fourier_multiplier():
    """The two places our numbers part from neuralop's (documented in SpectralConv), checked on plane
    waves. With complex data and fewer last-axis modes than points, neuralop's 2-D layer maps the
    wave of frequency (0, 1), which it should keep, to zero. Refining a full-FFT axis, it sends the
    negative frequencies to positive ones: its finer output has modes beyond the kept ones. Ours
    keeps the wave with its weight and stays band-limited. If a neuralop release fixes either, this
    fails, and the two layers should then agree there too."""
    torch.manual_seed(6)
    n = 16
    t = torch.arange(n) / n
    wave = torch.exp(2j * math.pi * t)[None, None, None, :].expand(1, 1, n, n).to(torch.cfloat)
    theirs = neuralop_conv.SpectralConv(1, 1, (5, 5), complex_data=True, bias=False)
    ours = _from_neuralop(theirs, complex_data=True, n_modes=(5, 5), bias=False)
    assert theirs(wave).abs().max() < 1e-6
    torch.testing.assert_close(ours(wave), ours.dense_weight()[0, 0, 0, 1] * wave, atol=1e-6, rtol=1e-6)

    real_theirs = neuralop_conv.SpectralConv(2, 2, (6, 6), bias=False)
    real_ours = _from_neuralop(real_theirs, n_modes=(6, 6), bias=False)
    x = torch.randn(1, 2, n, n)

    def beyond_kept_modes(y: torch.Tensor) -> float:  # largest coefficient at |k_1| > 3 on the 32-point axis
        return torch.fft.fftn(y, dim=(-2, -1), norm="forward")[:, :, 4:-3].abs().max().item()

    assert beyond_kept_modes(real_theirs(x, output_shape=(32, n))) > 1e-2
    assert beyond_kept_modes(real_ours(x, output_shape=(32, n))) < 1e-7


@pytest.mark.parametrize("grid,modes", [((64,), (11,)), ((32, 24), (9, 7))])
def test_complex_weights_give_the_schrodinger_propagator(grid, modes):
    """The free Schrödinger equation i u_t = -Laplacian(u) on the unit torus is the Fourier multiplier
    exp(-i |2 pi k|^2 t). With those weights (one channel, no bias) the complex layer maps a
    band-limited u(0) to the exact u(t), sum_k c_k exp(i (2 pi k.x - |2 pi k|^2 t)) (float64, 1e-12)."""
    g = torch.Generator().manual_seed(7)
    d, time = len(grid), 1e-3
    conv = SpectralConv(1, 1, modes, complex_data=True, bias=False).double()
    freqs = torch.meshgrid(*[torch.tensor(_centred(m), dtype=torch.float64) for m in modes], indexing="ij")
    k_squared = sum((2 * math.pi * f) ** 2 for f in freqs)
    with torch.no_grad():
        conv.weight.weight.copy_(torch.exp(-1j * k_squared * time)[None, None])
    # u(0): a few random modes inside the kept band
    chosen = [tuple(int(torch.randint(-(m // 2), m - m // 2, (1,), generator=g)) for m in modes) for _ in range(5)]
    coefficients = torch.randn(5, dtype=torch.complex128, generator=g)
    axes = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) / n for n in grid], indexing="ij")

    def solution(t: float) -> torch.Tensor:
        u = torch.zeros(grid, dtype=torch.complex128)
        for k, c in zip(chosen, coefficients):
            phase = sum(2 * math.pi * ki * xi for ki, xi in zip(k, axes)) - sum((2 * math.pi * ki) ** 2 for ki in k) * t
            u = u + c * torch.exp(1j * phase)
        return u[None, None]

    assert d == len(modes)
    torch.testing.assert_close(conv(solution(0.0)), solution(time), atol=1e-12, rtol=0)


@pytest.mark.parametrize("complex_data", [True, False])
@pytest.mark.parametrize("grid,fine", [((16, 12), (32, 24)), ((15, 7), (30, 14)), ((6, 4, 8), (12, 8, 16))])
def test_transform_is_fourier_interpolation(complex_data, grid, fine):
    """The skip path onto a finer grid interpolates exactly: every second point is the input (any input,
    the Nyquist modes of even grids split between +n/2 and -n/2), and coming back down returns the
    input (float64, 1e-12)."""
    torch.manual_seed(8)
    conv = SpectralConv(2, 2, (4,) * len(grid), complex_data=complex_data)
    x = torch.randn(2, 2, *grid, dtype=torch.complex128 if complex_data else torch.float64)
    up = conv.transform(x, output_shape=fine)
    assert up.shape == (2, 2, *fine) and up.dtype == x.dtype
    torch.testing.assert_close(up[(..., *(slice(None, None, 2),) * len(grid))], x, atol=1e-12, rtol=0)
    torch.testing.assert_close(conv.transform(up, output_shape=grid), x, atol=1e-12, rtol=0)


def test_resolution_scaling_factor_sets_the_output_grid():
    """A per-axis factor gives the grid round(n * r) for the layer and its skip transform, the same
    numbers as asking for that grid; an explicit output_shape overrides it; bad factors are refused."""
    torch.manual_seed(9)
    conv = SpectralConv(2, 3, (6, 6, 4), resolution_scaling_factor=[2, 0.5, 1.5])
    x = torch.randn(1, 2, 12, 10, 6)
    torch.testing.assert_close(conv(x), conv(x, output_shape=(24, 5, 9)), atol=0, rtol=0)
    assert conv.transform(x).shape == (1, 2, 24, 5, 9)
    assert conv(x, output_shape=(12, 10, 6)).shape == (1, 3, 12, 10, 6)
    for bad in ([2, 2], 0, [1, -1, 1]):
        with pytest.raises(ValueError, match="resolution_scaling_factor"):
            SpectralConv(2, 2, (4, 4, 4), resolution_scaling_factor=bad)


@pytest.mark.parametrize("factorization,separable", [("dense", False), ("tucker", False), ("cp", False), ("dense", True)])
def test_complex_layer_gradients_are_correct(factorization, separable):
    """gradcheck (complex128) of the complex layer onto a finer grid, with respect to the input and
    every weight, dense, Tucker, CP and separable."""
    torch.manual_seed(10)
    conv = SpectralConv(2, 2, (4, 3), factorization=factorization, rank=0.5, complex_data=True,
                        separable=separable).double()
    x = torch.randn(1, 2, 5, 6, dtype=torch.complex128, requires_grad=True)
    names = [n for n, _ in conv.named_parameters()]

    def apply(inp, *values):
        return torch.func.functional_call(conv, dict(zip(names, values)), (inp,), {"output_shape": (7, 6)})

    assert torch.autograd.gradcheck(apply, (x, *conv.parameters()), atol=1e-6)
