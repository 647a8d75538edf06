"""The truncated Fourier transforms of the spectral convolution against torch.fft.

Everything here is float64/complex128: a length-n DFT by matrix product or FFT rounds at a few ulps
times log2(n) to n relative to the largest coefficient, so 1e-12 on O(1) data leaves a wide margin.
"""

from __future__ import annotations

import pytest
import torch

from operators.layers.truncated_dft import (
    _FOLD_COLUMNS,
    _matrix_times_batch,
    dft_matrices,
    fft_last,
    gather_modes,
    ifft_last,
    kept_frequencies,
    truncated_fftn,
    truncated_ifftn,
    use_dft_matrix,
)

NORMS = ("forward", "backward", "ortho")


@pytest.mark.parametrize("n,columns", [(64, 9), (64, 33), (17, 5), (17, 9), (10, 6), (40, 3)])
def test_real_dft_matrices_equal_torch_fft(n, columns):
    """The real-data matrices equal rfft/irfft (1e-12), including the Nyquist column on even grids and
    odd lengths, for every normalisation."""
    torch.manual_seed(6)
    x = torch.randn(3, n, dtype=torch.float64)
    spectrum = torch.randn(3, columns, dtype=torch.complex128)
    for norm in NORMS:
        forward, inverse = dft_matrices(n, columns, norm, torch.float64, torch.device("cpu"))
        ours = torch.view_as_complex((x @ forward).unflatten(-1, (columns, 2)))
        torch.testing.assert_close(ours, torch.fft.rfft(x, norm=norm)[:, :columns], atol=1e-12, rtol=0)
        back = torch.view_as_real(spectrum).flatten(-2) @ inverse
        torch.testing.assert_close(back, torch.fft.irfft(spectrum, n=n, norm=norm), atol=1e-12, rtol=0)


@pytest.mark.parametrize("n,modes", [(64, 16), (64, 5), (17, 17), (17, 8), (10, 10), (40, 1)])
def test_complex_dft_matrices_equal_torch_fft(n, modes):
    """The complex-data matrices give the centred modes of fft (FFT order) and their inverse equals ifft
    of the zero-padded spectrum (1e-12), on odd and even lengths, for every normalisation."""
    torch.manual_seed(7)
    x = torch.randn(3, n, dtype=torch.complex128)
    spectrum = torch.randn(3, modes, dtype=torch.complex128)
    padded = torch.zeros(3, n, dtype=torch.complex128)
    padded[:, [f % n for f in kept_frequencies(modes)]] = spectrum
    for norm in NORMS:
        forward, inverse = dft_matrices(n, modes, norm, torch.float64, torch.device("cpu"), complex_data=True)
        ours = torch.view_as_complex((torch.view_as_real(x).flatten(-2) @ forward).unflatten(-1, (modes, 2)))
        torch.testing.assert_close(ours, gather_modes(torch.fft.fft(x, norm=norm), -1, modes), atol=1e-12, rtol=0)
        back = torch.view_as_complex((torch.view_as_real(spectrum).flatten(-2) @ inverse).unflatten(-1, (n, 2)))
        torch.testing.assert_close(back, torch.fft.ifft(padded, norm=norm), atol=1e-12, rtol=0)


@pytest.mark.parametrize("complex_data", [False, True])
def test_last_axis_transforms_have_correct_gradients(complex_data):
    """gradcheck of both last-axis transforms on the matrix-product path (real and complex data)."""
    dtype = torch.complex128 if complex_data else torch.float64
    x = torch.randn(2, 16, dtype=dtype, requires_grad=True)
    spectrum = torch.randn(2, 5, dtype=torch.complex128, requires_grad=True)
    residual = torch.randn(2, 16, dtype=dtype, requires_grad=True)
    assert use_dft_matrix(16, 5)
    assert torch.autograd.gradcheck(lambda v: torch.view_as_real(fft_last(v, 5, "forward", complex_data)), (x,))
    assert torch.autograd.gradcheck(lambda s, r: ifft_last(s, 16, "forward", complex_data, r), (spectrum, residual))


@pytest.mark.parametrize("n,columns,norm", [(40, 21, "ortho"), (41, 21, "backward"), (64, 25, "forward")])
def test_fft_path_transforms_have_correct_first_and_second_gradients(n, columns, norm):
    """On the FFT path (many modes kept) the last-axis transforms have their own backward passes (the
    truncated real FFT's by an inverse real FFT, the gather/scatter of centred modes by each other):
    gradcheck and gradgradcheck (fast mode: random projections), real and complex data, with and
    without a Nyquist column, each normalisation."""
    torch.manual_seed(10)
    assert not use_dft_matrix(n, columns)
    x = torch.randn(2, n, dtype=torch.float64, requires_grad=True)
    xc = torch.randn(2, n, dtype=torch.complex128, requires_grad=True)
    spectrum = torch.randn(2, columns, dtype=torch.complex128, requires_grad=True)
    cases = [(lambda v: torch.view_as_real(fft_last(v, min(columns, n // 2 + 1), norm, False)), x),
             (lambda v: torch.view_as_real(fft_last(v, columns, norm, True)), xc),
             (lambda s: ifft_last(s, n, norm, True), spectrum)]
    for fn, arg in cases:
        assert torch.autograd.gradcheck(fn, (arg,), fast_mode=True)
        assert torch.autograd.gradgradcheck(fn, (arg,), fast_mode=True)


def test_traced_fft_path_transforms_equal_the_eager_ones():
    """Under torch.jit.trace the FFT path falls back to plain torch operations (a traced program cannot
    hold a Python autograd.Function); the traced pair gives the eager numbers (1e-12, float64)."""
    torch.manual_seed(11)
    x = torch.randn(2, 3, 40, dtype=torch.complex128)

    def pair(v):
        return ifft_last(fft_last(v, 23, "forward", True), 40, "forward", True)

    def real_pair(v):
        return ifft_last(fft_last(v.real, 21, "forward", False), 40, "forward", False)

    for fn in (pair, real_pair):
        traced = torch.jit.trace(fn, (x,))
        torch.testing.assert_close(traced(x), fn(x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("complex_data", [False, True])
@pytest.mark.parametrize("sizes,kept,out_sizes", [((12, 64), (5, 9), (12, 64)), ((9, 7, 40), (4, 7, 12), (9, 14, 40)),
                                                  ((6, 5, 4, 20), (3, 5, 2, 9), (6, 5, 8, 10))])
def test_nd_transforms_equal_fftn_with_the_kept_modes(complex_data, sizes, kept, out_sizes):
    """truncated_fftn equals fftn (rfftn for real data) restricted to the kept modes of every axis, and
    truncated_ifftn equals ifftn (irfftn) of the spectrum zero-padded onto the output grid (1e-12),
    with a residual fused in, on matrix-product and FFT last axes, 2-D to 4-D, odd and even sizes."""
    torch.manual_seed(8)
    d = len(sizes)
    dims = tuple(range(-d, 0))
    if not complex_data:
        kept = (*kept[:-1], kept[-1] // 2 + 1)
    x = torch.randn(2, 3, *sizes, dtype=torch.complex128 if complex_data else torch.float64)
    full = torch.fft.fftn(x, dim=dims, norm="forward") if complex_data else torch.fft.rfftn(x, dim=dims, norm="forward")
    want = full
    for axis in range(-d, 0):
        if axis == -1 and not complex_data:
            want = want.narrow(-1, 0, kept[-1])
        else:
            want = gather_modes(want, axis, kept[axis])
    got = truncated_fftn(x, kept, "forward", complex_data)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)

    residual = torch.randn(2, 3, *out_sizes, dtype=x.dtype)
    padded = torch.zeros(2, 3, *out_sizes[:-1], out_sizes[-1] if complex_data else out_sizes[-1] // 2 + 1,
                         dtype=torch.complex128)
    index = [torch.tensor([f % o for f in kept_frequencies(m)]) for m, o in zip(kept[:-1], out_sizes[:-1])]
    index.append(torch.tensor([f % out_sizes[-1] for f in kept_frequencies(kept[-1])]) if complex_data
                 else torch.arange(kept[-1]))
    padded[(slice(None), slice(None), *torch.meshgrid(*index, indexing="ij"))] = got
    if complex_data:
        back = torch.fft.ifftn(padded, s=out_sizes, dim=dims, norm="forward")
    else:
        back = torch.fft.irfftn(padded, s=out_sizes, dim=dims, norm="forward")
    torch.testing.assert_close(truncated_ifftn(got, out_sizes, "forward", complex_data, residual), back + residual,
                               atol=1e-12, rtol=0)


@pytest.mark.parametrize("complex_data", [False, True])
def test_nd_transforms_have_correct_first_and_second_gradients(complex_data):
    """gradcheck and gradgradcheck of the pair on a 3-D grid whose full-FFT axes all go through the
    matrix products (their backward is a product with the stored adjoint, itself differentiable)."""
    torch.manual_seed(9)
    dtype = torch.complex128 if complex_data else torch.float64
    kept = (3, 2, 3) if complex_data else (3, 2, 2)
    x = torch.randn(1, 2, 6, 5, 4, dtype=dtype, requires_grad=True)
    spectrum = torch.randn(1, 2, *kept, dtype=torch.complex128, requires_grad=True)
    assert all(use_dft_matrix(n, m) for n, m in zip((6, 5, 4), kept))

    def forward(v):
        return torch.view_as_real(truncated_fftn(v, kept, "forward", complex_data))

    def inverse(s):
        return truncated_ifftn(s, (7, 5, 4), "ortho", complex_data)

    for fn, arg in ((forward, x), (inverse, spectrum)):
        assert torch.autograd.gradcheck(fn, (arg,))
        assert torch.autograd.gradgradcheck(fn, (arg,))


@pytest.mark.parametrize("batch,columns", [(1, 3), (7, 1), (7, _FOLD_COLUMNS - 1), (5, _FOLD_COLUMNS), (3, 70)])
def test_batched_left_product_equals_matmul_on_both_paths(batch, columns):
    """The left product folded into one matrix product (few columns) and the batched one (many) both
    equal torch.matmul: each entry is the same length-9 complex dot product, summed in either order
    (a few ulps of 9 terms of size ~3, so 1e-13 is a wide margin)."""
    torch.manual_seed(10)
    matrix = torch.randn(6, 9, dtype=torch.complex128)
    x = torch.randn(batch, 9, columns, dtype=torch.complex128)
    torch.testing.assert_close(_matrix_times_batch(matrix, x), torch.matmul(matrix, x), atol=1e-13, rtol=0)
