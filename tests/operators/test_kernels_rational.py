"""The compiled group-rational op (``torch.ops.pdeop.rational_*``) against the pure-PyTorch reference.

Truth is the float64 reference of :mod:`operators.kernels.rational_reference`. Float32 results are
compared with it at a tolerance of a few hundred float32 ulps of the output scale (the kernels and
the reference evaluate the same Horner forms, but in a different order, with fused multiply-adds,
and the coefficient gradients sum thousands of terms); float64 results at 1e-12 relative.
"""

from __future__ import annotations

import os
import sys
import warnings

import pytest
import torch

import operators.kernels as kernels
from operators.kernels import ops
from operators.kernels.rational_reference import rational_backward_reference, rational_forward_reference

HAS_EXT = ops.load()
needs_ext = pytest.mark.skipif(not HAS_EXT, reason="pdeop extension not built (PDEOP_NO_EXT)")
needs_cuda = pytest.mark.skipif(
    not (HAS_EXT and ops.has_cuda_kernels() and torch.cuda.is_available()), reason="no CUDA kernels or GPU"
)

# (shape, channel_dim, groups): channels-last with narrow groups (pattern loop) and wide groups
# (broadcast loop over each group's run), channels-first operator-like with long and short runs, a
# middle channel dim, a 2-D input.
LAYOUTS = [
    ((3, 17, 48), -1, 8),
    ((5, 7, 256), -1, 4),
    ((2, 12, 9, 7), 1, 4),
    ((2, 8, 40, 3), 1, 2),
    ((4, 6, 5), 1, 3),
    ((37, 5), -1, 5),
]


def _inputs(shape, channel_dim, groups, shared, dtype, device="cpu", seed=0):
    """Random x with exact zeros, coefficients with b_j = 0 and negative b_j."""
    g = torch.Generator().manual_seed(seed)
    x = 2.0 * torch.randn(shape, generator=g, dtype=torch.float64)
    x.view(-1)[::7] = 0.0
    numerator = torch.randn((6,) if shared else (groups, 6), generator=g, dtype=torch.float64)
    denominator = torch.randn(groups, 4, generator=g, dtype=torch.float64)
    denominator[0, 1] = 0.0
    denominator[-1, 3] = 0.0
    return [t.to(device=device, dtype=dtype) for t in (x, numerator, denominator)]


def _relative_error(value: torch.Tensor, truth: torch.Tensor) -> float:
    return ((value.double() - truth).abs().max() / truth.abs().max().clamp_min(1e-300)).item()


def test_extension_is_built_unless_disabled():
    """The set-up builds the extension: it must load unless PDEOP_NO_EXT asks for the fallback."""
    if os.environ.get("PDEOP_NO_EXT", "0") not in ("", "0"):
        assert kernels.backend() == "torch"
    else:
        assert HAS_EXT
        assert kernels.backend() in ("cpp", "cuda")


@needs_ext
@pytest.mark.parametrize("shape,channel_dim,groups", LAYOUTS)
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_forward_and_gradients_match_reference(shape, channel_dim, groups, shared, dtype, tol):
    """Output, grad_x and both coefficient gradients equal the float64 reference (x = 0, b_j = 0 included)."""
    x, num, den = _inputs(shape, channel_dim, groups, shared, dtype)
    grad = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    x64, num64, den64, grad64 = (t.double() for t in (x, num, den, grad))

    y = torch.ops.pdeop.rational_forward(x, num, den, groups, channel_dim)
    assert y.dtype == dtype and y.shape == x.shape
    assert _relative_error(y, rational_forward_reference(x64, num64, den64, groups, channel_dim)) < tol

    got = torch.ops.pdeop.rational_backward(grad, x, num, den, groups, channel_dim)
    want = rational_backward_reference(grad64, x64, num64, den64, groups, channel_dim)
    for name, value, truth in zip(("grad_x", "grad_numerator", "grad_denominator"), got, want):
        assert value.shape == truth.shape, name
        assert _relative_error(value, truth) < tol, name


@needs_ext
def test_zero_denominator_coefficient_gets_zero_gradient():
    """sign(0) = 0: a b_j that is exactly 0 receives exactly zero gradient, as in the reference."""
    x, num, den = _inputs((4, 16), -1, 4, False, torch.float64)
    _, _, grad_den = torch.ops.pdeop.rational_backward(torch.ones_like(x), x, num, den, 4, -1)
    assert grad_den[0, 1].item() == 0.0 and grad_den[-1, 3].item() == 0.0
    assert (grad_den[den != 0] != 0).all()


@needs_ext
@pytest.mark.parametrize("shape,channel_dim,groups", [((3, 8), -1, 2), ((2, 4, 3, 5), 1, 2)])
@pytest.mark.parametrize("shared", [True, False])
def test_gradcheck_float64(shape, channel_dim, groups, shared):
    """Finite differences confirm the C++ gradients, at x = 0 and b_j = 0 too (central differences
    of |.| at 0 are 0, the sign(0) = 0 convention).

    Tolerance: at x = 0 the central difference has a first-order error, eps |b_1 P'(0)| (Q has a
    kink there), about 1e-7 with eps = 1e-7; elsewhere the error is O(eps^2) plus 1e-16 / eps
    rounding, far below atol = 1e-6.
    """
    x, num, den = (t.requires_grad_() for t in _inputs(shape, channel_dim, groups, shared, torch.float64))
    assert kernels.backend(x.device) == "cpp"
    fn = lambda x, n, d: kernels.rational(x, n, d, groups, channel_dim)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, num, den), eps=1e-7, atol=1e-6, rtol=1e-6)


@needs_ext
def test_gradgradcheck_float64_away_from_kinks():
    """Second derivatives (physics-informed losses through GR-KAN) are right: the C++ backward is
    differentiable through the reference formulas. x and b_j are kept away from 0, where |.| has
    no second derivative."""
    x, num, den = _inputs((2, 3, 4), 1, 3, False, torch.float64, seed=3)
    x = (x.sign() + (x == 0).double()) * (x.abs() + 0.2)
    den = den.sign() * (den.abs() + 0.1) + (den == 0).double() * 0.3
    inputs = tuple(t.requires_grad_() for t in (x, num, den))
    fn = lambda x, n, d: kernels.rational(x, n, d, 3, 1)  # noqa: E731
    assert torch.autograd.gradgradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


@needs_ext
@pytest.mark.parametrize("shape,channel_dim,groups", [((3, 17, 48), -1, 8), ((2, 12, 9, 7), 1, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck(shape, channel_dim, groups, dtype):
    """torch.library.opcheck: schema, fake kernel, autograd registration and AOT dispatch agree."""
    for shared in (True, False):
        x, num, den = _inputs(shape, channel_dim, groups, shared, dtype)
        args = (x.requires_grad_(), num.requires_grad_(), den.requires_grad_(), groups, channel_dim)
        torch.library.opcheck(torch.ops.pdeop.rational_forward.default, args)
        grad = torch.randn_like(x).detach()
        torch.library.opcheck(
            torch.ops.pdeop.rational_backward.default,
            (grad, x.detach(), num.detach(), den.detach(), groups, channel_dim),
        )


@needs_ext
def test_noncontiguous_input_equals_contiguous():
    """A strided view (channels-last tensor seen channels-first) gives the values of its copy."""
    x, num, den = _inputs((2, 9, 7, 12), -1, 4, False, torch.float32)
    view = x.permute(0, 3, 1, 2)
    assert not view.is_contiguous()
    a = torch.ops.pdeop.rational_forward(view, num, den, 4, 1)
    b = torch.ops.pdeop.rational_forward(view.contiguous(), num, den, 4, 1)
    assert torch.equal(a, b)


@needs_ext
def test_coefficient_gradients_do_not_depend_on_thread_count():
    """Partial sums are per task, with tasks fixed by the shape, and combined in task order: the
    coefficient gradients are bitwise identical on 1 and 2 threads."""
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            for shape, channel_dim in (((64, 96), -1), ((4, 8, 3000), 1)):
                x, num, den = _inputs(shape, channel_dim, 4, False, torch.float32, seed=5)
                results.append(torch.ops.pdeop.rational_backward(torch.ones_like(x), x, num, den, 4, channel_dim))
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(results[:2], results[2:]):
        for a, b in zip(one, two):
            assert torch.equal(a, b)


@needs_ext
def test_dispatch_uses_cpp_and_equals_reference_path():
    """`rational` runs the compiled op for float32/float64 CPU tensors and the reference inside
    `reference_kernels()`; both give the same values and gradients (float64: 1e-12)."""
    x, num, den = _inputs((5, 24), -1, 4, False, torch.float64)
    results = []
    for force_reference in (False, True):
        leaves = [t.clone().requires_grad_() for t in (x, num, den)]
        if force_reference:
            with kernels.reference_kernels():
                assert kernels.backend() == "torch"
                y = kernels.rational(*leaves, 4)
        else:
            assert kernels.backend() == "cpp"
            y = kernels.rational(*leaves, 4)
        y.pow(2).sum().backward()
        results.append([y.detach()] + [t.grad for t in leaves])
    for a, b in zip(*results):
        assert _relative_error(a, b.double()) < 1e-12


@needs_ext
def test_half_precision_input_runs_the_float32_kernels():
    """bfloat16 has no compiled kernel and too few digits for the polynomials: `rational` evaluates it in
    float32 (compiled, or reference inside `reference_kernels`), and both agree to float32 accuracy
    (the 1e-5 of the float32 comparisons above)."""
    x, num, den = (t.to(torch.bfloat16) for t in _inputs((3, 8), -1, 2, True, torch.float64))
    with kernels.reference_kernels():
        want = kernels.rational(x, num, den, 2)
    got = kernels.rational(x, num, den, 2)
    assert got.dtype == want.dtype == torch.float32
    assert _relative_error(got, want.double()) < 1e-5


@needs_ext
def test_shape_errors_are_the_reference_errors():
    """Bad shapes raise the reference's ValueError whichever path would run."""
    x, num, den = _inputs((3, 8), -1, 2, True, torch.float64)
    with pytest.raises(ValueError, match="groups"):
        kernels.rational(x, num, den[:1], 3)
    with pytest.raises(ValueError, match="denominator"):
        kernels.rational(x, num, den[:1], 2)


@needs_ext
def test_torch_compile_traces_through_fake_kernel():
    """torch.compile (full graph, AOT autograd) runs the custom op and its backward unchanged."""
    x, num, den = (t.requires_grad_() for t in _inputs((4, 16), -1, 4, False, torch.float32))
    fn = lambda x, n, d: kernels.rational(x, n, d, 4).square().sum()  # noqa: E731
    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    want = torch.autograd.grad(fn(x, num, den), (x, num, den))
    got = torch.autograd.grad(compiled(x, num, den), (x, num, den))
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_missing_extension_warns_once_and_falls_back(monkeypatch):
    """If operators._C cannot be imported, one RuntimeWarning is issued and the reference runs."""
    monkeypatch.setattr(ops, "_LOADED", None)
    monkeypatch.setitem(sys.modules, "operators._C", None)  # makes the import fail
    monkeypatch.delenv("PDEOP_NO_EXT", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert kernels.backend() == "torch"
        x, num, den = _inputs((3, 8), -1, 2, True, torch.float64)
        y = kernels.rational(x, num, den, 2)
        kernels.rational(x, num, den, 2)
    assert [w.category for w in caught] == [RuntimeWarning]
    assert torch.allclose(y, rational_forward_reference(x, num, den, 2), rtol=0, atol=0)


def test_no_ext_environment_variable_selects_reference_silently(monkeypatch):
    """PDEOP_NO_EXT=1 is an explicit choice: the torch path, without a warning."""
    monkeypatch.setattr(ops, "_LOADED", None)
    monkeypatch.setenv("PDEOP_NO_EXT", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernels.backend() == "torch"


@needs_cuda
@pytest.mark.parametrize("shape,channel_dim,groups", LAYOUTS)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_cuda_matches_reference(shape, channel_dim, groups, dtype, tol):
    """CUDA outputs and gradients equal the float64 reference, in both reduction modes."""
    for shared in (True, False):
        x, num, den = _inputs(shape, channel_dim, groups, shared, dtype, device="cuda")
        grad = torch.randn_like(x)
        want = rational_backward_reference(*(t.double() for t in (grad, x, num, den)), groups, channel_dim)
        y = torch.ops.pdeop.rational_forward(x, num, den, groups, channel_dim)
        assert _relative_error(y, rational_forward_reference(x.double(), num.double(), den.double(), groups, channel_dim)) < tol
        for deterministic in (False, True):
            torch.use_deterministic_algorithms(deterministic)
            try:
                got = torch.ops.pdeop.rational_backward(grad, x, num, den, groups, channel_dim)
            finally:
                torch.use_deterministic_algorithms(False)
            for value, truth in zip(got, want):
                assert _relative_error(value, truth) < tol


@needs_cuda
def test_cuda_deterministic_mode_is_bitwise_reproducible():
    """With deterministic algorithms on, the two-stage reduction gives identical bits run to run."""
    x, num, den = _inputs((64, 768), -1, 8, False, torch.float32, device="cuda")
    grad = torch.randn_like(x)
    torch.use_deterministic_algorithms(True)
    try:
        a = torch.ops.pdeop.rational_backward(grad, x, num, den, 8, -1)
        b = torch.ops.pdeop.rational_backward(grad, x, num, den, 8, -1)
    finally:
        torch.use_deterministic_algorithms(False)
    for u, v in zip(a, b):
        assert torch.equal(u, v)
