"""Pure-PyTorch reference of the group-rational (GR-KAN) activation, with an explicit backward.

The activation is ``F(x) = P(x) / Q(x)`` applied channel by channel, with

* ``P(x) = a0 + a1 x + a2 x^2 + a3 x^3 + a4 x^4 + a5 x^5``
* ``Q(x) = 1 + |b1| |x| + |b2| |x|^2 + |b3| |x|^3 + |b4| |x|^4``  (so ``Q >= 1``: no poles).

The ``C`` channels are split into ``G`` contiguous groups (channel ``c`` belongs to group
``c // (C // G)``); each group has its own denominator ``b`` and either its own numerator ``a`` or
one numerator shared by all groups.

Gradients (DESIGN.md §6), with upstream gradient ``g`` and ``Q'(x) = sign(x) sum_j j |b_j| |x|^(j-1)``::

    dF/dx   = g (P'/Q - P Q'/Q^2)
    dL/da_i = sum g x^i / Q
    dL/db_j = sum g (-P/Q^2) sign(b_j) |x|^j

where the sums run over every non-channel position and over the channels of the group (and over
the groups too, for a shared numerator).

**sign(0) convention.** ``sign(0) = 0`` everywhere (``torch.sign``): ``d|x|/dx = 0`` at ``x = 0``
and ``d|b|/db = 0`` at ``b = 0``. This is the symmetric (central-difference) derivative of ``|.|``,
so ``gradcheck`` passes at ``x = 0`` and ``b_j = 0``. A consequence worth knowing: a denominator
coefficient that is *exactly* zero receives zero gradient and never moves, which is why the fitted
initial coefficients keep every ``b_j`` strictly positive (see :mod:`operators.layers.rational_fit`).
Every implementation of this op (C++, CUDA) must use the same convention.

Layers call :func:`operators.kernels.rational`, which dispatches here or to the compiled kernels.
"""

from __future__ import annotations

import torch

NUMERATOR_TERMS = 6  # a0..a5
DENOMINATOR_TERMS = 4  # b1..b4


def rational_reference(
    x: torch.Tensor,
    numerator: torch.Tensor,
    denominator: torch.Tensor,
    groups: int,
    channel_dim: int = -1,
) -> torch.Tensor:
    """Group-rational activation ``P(x)/Q(x)`` with the explicit backward of this module.

    Parameters
    ----------
    x, numerator, denominator, groups, channel_dim
        As in :func:`operators.kernels.rational`.

    Returns
    -------
    torch.Tensor
        ``F(x)``, same shape and dtype as ``x``.

    Raises
    ------
    ValueError
        If the shapes do not fit ``groups`` (:func:`check_rational_operands`).

    Notes
    -----
    Under ``torch.jit.trace`` (TorchScript export) the plain forward
    :func:`rational_forward_reference` runs instead: the tracer cannot record a Python
    ``autograd.Function``, and an exported program needs no explicit backward.
    """
    if torch.jit.is_tracing():
        return rational_forward_reference(x, numerator, denominator, groups, channel_dim)
    return RationalFunction.apply(x, numerator, denominator, groups, channel_dim)


def rational_forward_reference(
    x: torch.Tensor,
    numerator: torch.Tensor,
    denominator: torch.Tensor,
    groups: int,
    channel_dim: int = -1,
) -> torch.Tensor:
    """Forward pass ``F(x) = P(x)/Q(x)`` in plain tensor operations (Horner's scheme).

    Parameters and shapes as in :func:`rational_reference`. Uses a few ``x``-sized temporaries;
    coefficients are used in ``x``'s dtype.
    """
    grouped, a, b = _grouped_operands(x, numerator, denominator, groups, channel_dim)
    abs_x = grouped.abs()
    p = _horner(a, grouped)
    q = 1.0 + abs_x * _horner(b, abs_x)
    return (p / q).reshape(x.shape)


def rational_backward_reference(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    numerator: torch.Tensor,
    denominator: torch.Tensor,
    groups: int,
    channel_dim: int = -1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of ``sum(grad_out * F(x))`` by the explicit formulas of this module.

    Parameters
    ----------
    grad_out
        Upstream gradient, same shape as ``x``.
    x, numerator, denominator, groups, channel_dim
        As in :func:`rational_reference`.

    Returns
    -------
    grad_x, grad_numerator, grad_denominator
        Shapes and dtypes of ``x``, ``numerator`` (``[6]`` or ``[G, 6]``) and ``denominator``
        (``[G, 4]``).

    Notes
    -----
    Built only from differentiable tensor operations, so autograd can differentiate it again
    (second derivatives away from ``x = 0`` and ``b_j = 0``, where ``|.|`` has no second
    derivative).
    """
    grouped, a, b = _grouped_operands(x, numerator, denominator, groups, channel_dim)
    g = grad_out.to(grouped.dtype).reshape(grouped.shape)
    abs_x = grouped.abs()
    powers = torch.arange(1, NUMERATOR_TERMS, dtype=a.dtype, device=a.device)
    derivative_a = a[1:] * powers.view(-1, *([1] * (a.dim() - 1)))
    derivative_b = b * powers[:DENOMINATOR_TERMS].view(-1, *([1] * (b.dim() - 1)))
    # Temporaries are dropped as soon as they are used: the backward should stay within a few
    # x-sized tensors.
    q = 1.0 + abs_x * _horner(b, abs_x)
    g_over_q = g / q
    ratio = _horner(a, grouped) / q
    del q
    # Q'(x) = sign(x) * sum_j j |b_j| |x|^(j-1), with sign(0) = 0 (torch.sign).
    dq = torch.sign(grouped) * _horner(derivative_b, abs_x)
    grad_x = g_over_q * (_horner(derivative_a, grouped) - ratio * dq)
    del dq

    group_dim = _group_dim(x, channel_dim)
    reduce_dims = [d for d in range(grouped.dim()) if d != group_dim]
    grad_a = _power_sums(g_over_q, grouped, NUMERATOR_TERMS, reduce_dims)
    grad_b = _power_sums(-(g_over_q * ratio) * abs_x, abs_x, DENOMINATOR_TERMS, reduce_dims)
    grad_b = grad_b * torch.sign(denominator.to(grad_b.dtype))
    if numerator.dim() == 1:
        grad_a = grad_a.sum(dim=0)
    return (
        grad_x.reshape(x.shape).to(x.dtype),
        grad_a.to(numerator.dtype),
        grad_b.to(denominator.dtype),
    )


class RationalFunction(torch.autograd.Function):
    """Autograd rule of the group-rational activation: forward and backward by the references above.

    ``apply(x, numerator, denominator, groups, channel_dim)``. The backward is differentiable
    (double backward works), and ``generate_vmap_rule`` lets ``torch.func`` transforms use it.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        x: torch.Tensor,
        numerator: torch.Tensor,
        denominator: torch.Tensor,
        groups: int,
        channel_dim: int,
    ) -> torch.Tensor:
        return rational_forward_reference(x, numerator, denominator, groups, channel_dim)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # noqa: ANN001 (autograd signature)
        x, numerator, denominator, groups, channel_dim = inputs
        ctx.save_for_backward(x, numerator, denominator)
        ctx.groups = groups
        ctx.channel_dim = channel_dim

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # noqa: ANN001, ANN205 (autograd signature)
        x, numerator, denominator = ctx.saved_tensors
        grad_x, grad_a, grad_b = rational_backward_reference(
            grad_out, x, numerator, denominator, ctx.groups, ctx.channel_dim
        )
        needs = ctx.needs_input_grad
        return (
            grad_x if needs[0] else None,
            grad_a if needs[1] else None,
            grad_b if needs[2] else None,
            None,
            None,
        )


def _group_dim(x: torch.Tensor, channel_dim: int) -> int:
    """Index of the group dimension in the grouped view of ``x`` (= the channel dim, normalised)."""
    return channel_dim % x.dim()


def _grouped_operands(
    x: torch.Tensor,
    numerator: torch.Tensor,
    denominator: torch.Tensor,
    groups: int,
    channel_dim: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check shapes and return ``x`` viewed with the channel dim split into ``[G, C // G]``.

    Also returns the coefficients as ``[6, G, 1, ..., 1]`` and ``|b|`` as ``[4, G, 1, ..., 1]`` in
    ``x``'s dtype, shaped to broadcast against the grouped view (leading index = power).
    """
    check_rational_operands(x, numerator, denominator, groups, channel_dim)
    dim = _group_dim(x, channel_dim)
    channels = x.shape[dim]
    grouped = x.reshape(*x.shape[:dim], groups, channels // groups, *x.shape[dim + 1 :])
    trailing = [1] * (grouped.dim() - dim - 1)
    a = numerator.to(x.dtype).expand(groups, NUMERATOR_TERMS).t().reshape(NUMERATOR_TERMS, groups, *trailing)
    b = denominator.to(x.dtype).abs().t().reshape(DENOMINATOR_TERMS, groups, *trailing)
    return grouped, a, b


def _horner(coefficients: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``sum_i coefficients[i] * x**i`` by Horner's scheme (``coefficients[i]`` broadcasts to x)."""
    result = coefficients[-1].expand_as(x)
    for c in coefficients.flip(0)[1:]:
        result = torch.addcmul(c, result, x)
    return result


def _power_sums(
    weight: torch.Tensor, base: torch.Tensor, terms: int, reduce_dims: list[int]
) -> torch.Tensor:
    """``[sum(weight * base**k) for k in range(terms)]`` reduced over ``reduce_dims``: ``[G, terms]``."""
    sums = []
    term = weight
    for k in range(terms):
        if k:
            term = term * base
        sums.append(term.sum(dim=reduce_dims))
    return torch.stack(sums, dim=-1)


def check_rational_operands(
    x: torch.Tensor,
    numerator: torch.Tensor,
    denominator: torch.Tensor,
    groups: int,
    channel_dim: int,
) -> None:
    """Check the operands of the group-rational activation (every backend runs this check).

    Parameters
    ----------
    x, numerator, denominator, groups, channel_dim
        As in :func:`operators.kernels.rational`.

    Raises
    ------
    ValueError
        Naming the argument whose shape does not fit the others: ``groups`` not a positive
        integer, ``channel_dim`` out of range, ``groups`` not dividing the channels, or a
        coefficient tensor of the wrong shape.
    """
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive integer (got {groups!r})")
    if x.dim() == 0 or not -x.dim() <= channel_dim < x.dim():
        raise ValueError(f"channel_dim {channel_dim} is out of range for x of shape {tuple(x.shape)}")
    channels = x.shape[channel_dim]
    if channels % groups:
        raise ValueError(f"groups ({groups}) must divide the number of channels ({channels}) of x")
    if tuple(numerator.shape) not in ((NUMERATOR_TERMS,), (groups, NUMERATOR_TERMS)):
        raise ValueError(
            f"numerator must have shape [{NUMERATOR_TERMS}] or [{groups}, {NUMERATOR_TERMS}] "
            f"(got {list(numerator.shape)})"
        )
    if tuple(denominator.shape) != (groups, DENOMINATOR_TERMS):
        raise ValueError(
            f"denominator must have shape [{groups}, {DENOMINATOR_TERMS}] (got {list(denominator.shape)})"
        )
