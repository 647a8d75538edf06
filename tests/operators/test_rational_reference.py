"""The pure-PyTorch group-rational op: forward against a plain formula, explicit backward against
autograd and finite differences, layouts, numerator sharing and the sign(0) convention."""

from __future__ import annotations

import pytest
import torch

from operators.kernels.rational_reference import (
    rational_backward_reference,
    rational_forward_reference,
    rational_reference,
)

DTYPE = torch.float64


def _plain_rational(x, numerator, denominator, groups: int, channel_dim: int) -> torch.Tensor:
    """Independent formula: loop over channels, explicit powers, torch.abs (autograd-differentiable)."""
    xc = x.movedim(channel_dim, -1)
    channels = xc.shape[-1]
    per_group = channels // groups
    columns = []
    for c in range(channels):
        g = c // per_group
        a = numerator if numerator.dim() == 1 else numerator[g]
        b = denominator[g]
        t = xc[..., c]
        p = sum(a[i] * t**i for i in range(6))
        q = 1 + sum(torch.abs(b[j - 1]) * torch.abs(t) ** j for j in range(1, 5))
        columns.append(p / q)
    return torch.stack(columns, dim=-1).movedim(-1, channel_dim)


def _operands(shape, groups, shared, channel_dim, seed=0, zeros=True):
    """Random float64 operands; with ``zeros``, some x entries and some b_j are exactly 0."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=DTYPE)
    numerator = 0.5 * torch.randn((6,) if shared else (groups, 6), generator=gen, dtype=DTYPE)
    denominator = torch.randn((groups, 4), generator=gen, dtype=DTYPE)
    if zeros:
        x.view(-1)[::5] = 0.0
        denominator[0, 0] = 0.0
        denominator[-1, 2] = 0.0
    return x, numerator, denominator


# (shape, groups, channel_dim): channels-last 1-D/2-D and channels-first 1-D/2-D/3-D.
LAYOUTS = [
    ((3, 8), 4, -1),
    ((2, 3, 4, 6), 3, -1),
    ((2, 6, 5), 2, 1),
    ((2, 4, 3, 3), 4, 1),
    ((1, 4, 2, 3, 2), 2, 1),
]


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize(("shape", "groups", "channel_dim"), LAYOUTS)
def test_forward_matches_plain_formula(shape, groups, channel_dim, shared):
    """Horner evaluation with grouped broadcasting equals the per-channel textbook formula.

    Both are float64 evaluations of the same degree-5/4 polynomials on |x| <~ 4; they differ only by
    rounding, so 1e-12 relative is ample.
    """
    x, num, den = _operands(shape, groups, shared, channel_dim)
    got = rational_forward_reference(x, num, den, groups, channel_dim)
    want = _plain_rational(x, num, den, groups, channel_dim)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize(("shape", "groups", "channel_dim"), LAYOUTS)
def test_gradcheck_x_numerator_denominator(shape, groups, channel_dim, shared):
    """Explicit backward agrees with central finite differences for x, a and b in float64.

    Includes x = 0 and b_j = 0 entries: with sign(0) = 0 the analytic derivative of |.| at 0 is the
    central difference (|e| - |-e|)/(2e) = 0, so gradcheck's default tolerances (atol 1e-5,
    rtol 1e-3 on eps = 1e-6 differences) hold there too.
    """
    x, num, den = _operands(shape, groups, shared, channel_dim)
    inputs = tuple(t.requires_grad_() for t in (x, num, den))
    assert torch.autograd.gradcheck(lambda *t: rational_reference(*t, groups, channel_dim), inputs)


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize(("shape", "groups", "channel_dim"), LAYOUTS)
def test_explicit_backward_equals_autograd_of_plain_formula(shape, groups, channel_dim, shared):
    """rational_backward_reference equals autograd through the plain formula, zeros included.

    torch.abs's derivative is sign(.) with sign(0) = 0, the same convention, so the two agree to
    float64 rounding of sums over at most ~100 terms: 1e-11.
    """
    x, num, den = _operands(shape, groups, shared, channel_dim, seed=1)
    grad_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=DTYPE)
    got = rational_backward_reference(grad_out, x, num, den, groups, channel_dim)
    leaves = tuple(t.clone().requires_grad_() for t in (x, num, den))
    out = _plain_rational(*leaves, groups, channel_dim)
    want = torch.autograd.grad(out, leaves, grad_out)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=1e-11, atol=1e-11)


def test_sign_zero_convention():
    """At x = 0 the x-gradient is exactly a1 (Q'(0) = 0), and a b_j that is exactly 0 gets zero gradient.

    These are the defining consequences of sign(0) = 0; with sign(0) = +1 the first would be
    a1 - a0 |b1| and the second nonzero. Exact equality: no rounding is involved at x = 0.
    """
    x = torch.zeros(4, 2, dtype=DTYPE)
    x[2:, :] = 1.5
    num = torch.tensor([0.7, -1.3, 0.2, 0.4, -0.1, 0.05], dtype=DTYPE)
    den = torch.tensor([[0.9, 0.0, 0.3, 0.2]], dtype=DTYPE)
    grad_x, _, grad_den = rational_backward_reference(torch.ones_like(x), x, num, den, 1, -1)
    assert torch.equal(grad_x[:2], torch.full((2, 2), -1.3, dtype=DTYPE))
    assert grad_den[0, 1] == 0.0
    assert (grad_den[0, [0, 2, 3]] != 0).all()
    # Negative b_j: Q uses |b_j|, the gradient flips sign with sign(b_j).
    _, _, grad_flipped = rational_backward_reference(torch.ones_like(x), x, num, -den, 1, -1)
    assert torch.equal(grad_flipped, -grad_den)


@pytest.mark.parametrize("shared", [False, True])
def test_channels_first_equals_channels_last(shared):
    """Moving the channel axis gives the same values and gradients (exactly: same arithmetic per element,
    reductions over the same set; 1e-13 covers a different summation order)."""
    x, num, den = _operands((2, 6, 3, 4), 3, shared, 1, seed=3)
    grad_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=DTYPE)
    first = rational_backward_reference(grad_out, x, num, den, 3, 1)
    last = rational_backward_reference(grad_out.movedim(1, -1), x.movedim(1, -1), num, den, 3, -1)
    torch.testing.assert_close(first[0], last[0].movedim(-1, 1), rtol=0, atol=0)
    torch.testing.assert_close(first[1], last[1], rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(first[2], last[2], rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(
        rational_forward_reference(x, num, den, 3, 1),
        rational_forward_reference(x.movedim(1, -1), num, den, 3, -1).movedim(-1, 1),
        rtol=0,
        atol=0,
    )


def test_shared_numerator_equals_repeated_per_group_numerator():
    """A shared numerator [6] is the per-group numerator repeated: same output, and its gradient is
    the sum of the per-group gradients (1e-13: one extra summation)."""
    x, num, den = _operands((5, 8), 4, True, -1, seed=5)
    grad_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(6), dtype=DTYPE)
    shared = rational_backward_reference(grad_out, x, num, den, 4, -1)
    repeated = rational_backward_reference(grad_out, x, num.repeat(4, 1), den, 4, -1)
    torch.testing.assert_close(shared[0], repeated[0], rtol=0, atol=0)
    torch.testing.assert_close(shared[1], repeated[1].sum(dim=0), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(shared[2], repeated[2], rtol=0, atol=0)


def test_gradgradcheck_away_from_kinks():
    """The explicit backward is itself differentiable (needed e.g. for PDE residuals by autograd).

    Second derivatives of |.| do not exist at 0, so x and b stay away from 0 here; default
    gradgradcheck tolerances in float64.
    """
    x, num, den = _operands((2, 4, 3), 2, False, 1, seed=7, zeros=False)
    x = x + 0.3 * torch.sign(x)
    inputs = tuple(t.requires_grad_() for t in (x, num, den))
    assert torch.autograd.gradgradcheck(lambda *t: rational_reference(*t, 2, 1), inputs)


def test_float32_matches_float64():
    """Float32 forward and gradients agree with float64 to single-precision rounding.

    Q >= 1 keeps the division benign; values are O(1) and gradient sums run over 64 elements, so
    2e-5 relative (about 200 float32 ulps) bounds the accumulated rounding.
    """
    x, num, den = _operands((8, 16), 4, False, -1, seed=8)
    grad_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=DTYPE)
    ref = rational_backward_reference(grad_out, x, num, den, 4, -1)
    single = rational_backward_reference(grad_out.float(), x.float(), num.float(), den.float(), 4, -1)
    for s, r in zip(single, ref):
        assert s.dtype == torch.float32
        torch.testing.assert_close(s.double(), r, rtol=2e-5, atol=2e-5)


def test_vmap_jacobian_matches_autograd():
    """torch.func transforms work through the autograd.Function (generated vmap rule): the per-sample
    Jacobian from vmap(jacrev) equals the diagonal-block Jacobian from plain autograd (1e-12)."""
    x, num, den = _operands((3, 4), 2, False, -1, seed=10, zeros=False)
    jac = torch.func.vmap(torch.func.jacrev(lambda row: rational_reference(row, num, den, 2, -1)))(x)
    full = torch.autograd.functional.jacobian(lambda t: _plain_rational(t, num, den, 2, -1), x)
    want = torch.stack([full[i, :, i, :] for i in range(x.shape[0])])
    torch.testing.assert_close(jac, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "num_shape", "den_shape", "groups", "message"),
    [
        ((2, 6), (6,), (4, 4), 4, "must divide"),
        ((2, 8), (3, 6), (4, 4), 4, "numerator must have shape"),
        ((2, 8), (6,), (4, 3), 4, "denominator must have shape"),
        ((2, 8), (6,), (4, 4), 0, "positive integer"),
    ],
)
def test_bad_shapes_are_rejected(shape, num_shape, den_shape, groups, message):
    """Shape mistakes raise ValueError naming the offending argument instead of broadcasting silently."""
    with pytest.raises(ValueError, match=message):
        rational_reference(torch.zeros(shape), torch.zeros(num_shape), torch.zeros(den_shape), groups)
