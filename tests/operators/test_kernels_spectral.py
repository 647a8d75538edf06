"""The compiled spectral mode-mixing ops (``torch.ops.pdeop.spectral_mix_*``) against einsum.

Truth is ``einsum`` in complex128. Each output value is a sum of C_in (or B, or C_out) complex
products, so complex64 results are held to 1e-5 relative to the output's largest value (a few
ulps times the sum length) and complex128 results to 1e-12.
"""

from __future__ import annotations

import pytest
import torch

import operators.kernels as kernels
from operators.kernels import ops
from operators.kernels.spectral_reference import spectral_mix_reference

HAS_EXT = ops.load()
needs_ext = pytest.mark.skipif(not HAS_EXT, reason="pdeop extension not built (PDEOP_NO_EXT)")
needs_cuda = pytest.mark.skipif(
    not (HAS_EXT and ops.has_cuda_kernels() and torch.cuda.is_available()), reason="no CUDA kernels or GPU"
)
pytestmark = needs_ext

TOL = {torch.complex64: 1e-5, torch.complex128: 1e-12}
# (B, C_in, C_out, modes): 1D to 4D blocks (3-D + time); channel counts off the register-tile sizes.
SHAPES = [(3, 5, 7, (33,)), (4, 6, 8, (12, 7)), (2, 3, 5, (4, 3, 5)), (1, 9, 1, (5, 9)), (2, 3, 4, (3, 4, 2, 5))]


def _random(shape, dtype, seed, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.complex128).to(device=device, dtype=dtype)


def _mode_major(shape, dtype, seed, device="cpu"):
    """A [P, Q, *modes] tensor stored as [*modes, P, Q] (channels contiguous, modes outermost)."""
    p, q, *modes = shape
    d = len(modes)
    return _random((*modes, p, q), dtype, seed, device).permute(d, d + 1, *range(d))


def _sliced(shape, dtype, seed, device="cpu"):
    """A [P, Q, *modes] slice of a larger tensor, as the low modes of an FFT output are."""
    p, q, *modes = shape
    big = _random((p, q, *(2 * m + 1 for m in modes)), dtype, seed, device)
    return big[(slice(None), slice(None), *(slice(0, m) for m in modes))]


LAYOUTS = {"contiguous": _random, "mode_major": _mode_major, "sliced": _sliced}
# Pairs (x, weight, grad) of layouts for the equality test: each layout alone, and mixtures.
LAYOUT_MIXES = [(name, name, name) for name in sorted(LAYOUTS)] + [
    ("mode_major", "mode_major", "contiguous"), ("sliced", "mode_major", "contiguous"),
    ("contiguous", "sliced", "mode_major")]


def _relative_error(value: torch.Tensor, truth: torch.Tensor) -> float:
    return ((value.to(torch.complex128) - truth).abs().max() / truth.abs().max()).item()


def _expected(x, weight, grad):
    x, weight, grad = (t.to(torch.complex128) for t in (x, weight, grad))
    return (
        torch.einsum("bi...,io...->bo...", x, weight),
        torch.einsum("bo...,io...->bi...", grad, weight.conj()),
        torch.einsum("bi...,bo...->io...", x.conj(), grad),
    )


@pytest.mark.parametrize("b,c_in,c_out,modes", SHAPES)
@pytest.mark.parametrize("layouts", LAYOUT_MIXES)
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_forward_and_both_gradients_match_einsum(b, c_in, c_out, modes, layouts, dtype):
    """out = sum_i x w, grad_x = sum_o g conj(w), grad_w = sum_b conj(x) g, in every layout and
    mixture of layouts (which choose between the modes-as-lanes kernel and the batched GEMM)."""
    x = LAYOUTS[layouts[0]]((b, c_in, *modes), dtype, 0)
    weight = LAYOUTS[layouts[1]]((c_in, c_out, *modes), dtype, 1)
    grad = LAYOUTS[layouts[2]]((b, c_out, *modes), dtype, 2)
    want = _expected(x, weight, grad)
    got = (
        torch.ops.pdeop.spectral_mix_forward(x, weight),
        torch.ops.pdeop.spectral_mix_backward_input(grad, weight),
        torch.ops.pdeop.spectral_mix_backward_weight(grad, x),
    )
    for name, value, truth in zip(("out", "grad_x", "grad_weight"), got, want):
        assert value.shape == truth.shape and value.dtype == dtype, name
        assert _relative_error(value, truth) < TOL[dtype], name


def test_conjugate_views_are_read_as_their_values():
    """Lazily conjugated inputs (x.conj()) are resolved, not read as raw memory."""
    x = _random((2, 4, 6, 5), torch.complex128, 0)
    weight = _random((4, 3, 6, 5), torch.complex128, 1)
    got = torch.ops.pdeop.spectral_mix_forward(x.conj(), weight.conj())
    assert _relative_error(got, torch.einsum("bi...,io...->bo...", x.conj(), weight.conj())) < 1e-12


def test_output_layout_follows_the_inputs():
    """If either operand keeps its channels contiguous under its modes (mode-major), the output is
    mode-major (the layout DFT-by-matmul pipelines continue with); channel-major and sliced
    operands give a contiguous output."""
    mode_major_x = _mode_major((4, 6, 12, 7), torch.complex64, 0)
    mode_major_w = _mode_major((6, 8, 12, 7), torch.complex64, 1)
    sliced_x = _sliced((4, 6, 12, 7), torch.complex64, 0)
    contiguous_w = _random((6, 8, 12, 7), torch.complex64, 1)
    for x, weight in ((mode_major_x, mode_major_w), (mode_major_x, contiguous_w), (sliced_x, mode_major_w)):
        assert torch.ops.pdeop.spectral_mix_forward(x, weight).permute(2, 3, 0, 1).is_contiguous()
    assert torch.ops.pdeop.spectral_mix_forward(sliced_x, contiguous_w).is_contiguous()


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_gradcheck_complex128(layout):
    """Finite differences (complex, Wirtinger convention) confirm the autograd rule of the op."""
    make = LAYOUTS[layout]
    x = make((2, 3, 4, 3), torch.complex128, 0).detach().requires_grad_()
    weight = make((3, 2, 4, 3), torch.complex128, 1).detach().requires_grad_()
    assert kernels.backend(x.device) == "cpp"
    assert torch.autograd.gradcheck(kernels.spectral_mix, (x, weight), eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("modes", [(6, 5), (3, 4, 2, 3)])
@pytest.mark.parametrize("layout", ["contiguous", "mode_major"])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_opcheck(layout, dtype, modes):
    """torch.library.opcheck: schema, fake kernels (with the output layouts), autograd, AOT dispatch,
    on 2 mode axes and on 4 (3-D + time)."""
    make = LAYOUTS[layout]
    x = make((3, 4, *modes), dtype, 0)
    weight = make((4, 5, *modes), dtype, 1)
    grad = make((3, 5, *modes), dtype, 2)
    torch.library.opcheck(
        torch.ops.pdeop.spectral_mix_forward.default, (x.requires_grad_(), weight.requires_grad_())
    )
    torch.library.opcheck(torch.ops.pdeop.spectral_mix_backward_input.default, (grad, weight.detach()))
    torch.library.opcheck(torch.ops.pdeop.spectral_mix_backward_weight.default, (grad, x.detach()))


def test_dispatch_equals_reference_path_with_gradients():
    """`spectral_mix` runs the compiled op; inside `reference_kernels()` it runs einsum; values and
    gradients agree (complex128: 1e-12)."""
    results = []
    for force_reference in (False, True):
        x = _mode_major((4, 6, 12, 7), torch.complex128, 0).detach().requires_grad_()
        weight = _random((6, 5, 12, 7), torch.complex128, 1).requires_grad_()
        if force_reference:
            with kernels.reference_kernels():
                out = kernels.spectral_mix(x, weight)
        else:
            out = kernels.spectral_mix(x, weight)
        (out.abs() ** 2).sum().backward()
        results.append((out.detach(), x.grad, weight.grad))
    for a, b in zip(*results):
        assert _relative_error(a, b) < 1e-12


def test_torch_compile_traces_through_fake_kernel():
    """torch.compile (full graph, AOT autograd) runs the op and its backward unchanged."""
    x = _mode_major((2, 4, 6, 5), torch.complex64, 0).detach().requires_grad_()
    weight = _random((4, 3, 6, 5), torch.complex64, 1).requires_grad_()
    fn = lambda x, w: torch.view_as_real(kernels.spectral_mix(x, w)).square().sum()  # noqa: E731
    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    want = torch.autograd.grad(fn(x, weight), (x, weight))
    got = torch.autograd.grad(compiled(x, weight), (x, weight))
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_more_mode_axes_than_compiled_fall_back_to_einsum():
    """Beyond the compiled kernels' mode axes (8), `spectral_mix` gives the reference result."""
    axes = ops.max_mode_axes() + 1
    x = _random((2, 3, *(2,) * axes), torch.complex64, 0)
    weight = _random((3, 2, *(2,) * axes), torch.complex64, 1)
    assert torch.equal(kernels.spectral_mix(x, weight), spectral_mix_reference(x, weight))
    with pytest.raises(RuntimeError, match="1 <= d <= 8"):
        torch.ops.pdeop.spectral_mix_forward(x, weight)


@needs_cuda
@pytest.mark.parametrize("b,c_in,c_out,modes", SHAPES)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_cuda_matches_einsum(b, c_in, c_out, modes, layout, dtype):
    """The CUDA kernel gives the einsum values for the forward and both gradients."""
    make = LAYOUTS[layout]
    x = make((b, c_in, *modes), dtype, 0, "cuda")
    weight = make((c_in, c_out, *modes), dtype, 1, "cuda")
    grad = make((b, c_out, *modes), dtype, 2, "cuda")
    want = _expected(x, weight, grad)
    got = (
        torch.ops.pdeop.spectral_mix_forward(x, weight),
        torch.ops.pdeop.spectral_mix_backward_input(grad, weight),
        torch.ops.pdeop.spectral_mix_backward_weight(grad, x),
    )
    for value, truth in zip(got, want):
        assert _relative_error(value, truth) < TOL[dtype]
