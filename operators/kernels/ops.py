"""The compiled ``pdeop`` custom ops: loading ``operators._C`` and the ops' Python faces.

``operators._C`` (built from ``csrc/`` by ``setup.py``) registers the ops under ``torch.ops.pdeop``
with their CPU (and, when built against a CUDA torch, CUDA) kernels:

* ``rational_forward(x, numerator, denominator, groups, channel_dim) -> y``
* ``rational_backward(grad_out, x, numerator, denominator, groups, channel_dim) -> (grad_x, grad_numerator, grad_denominator)``
* ``spectral_mix_forward(x, weight) -> out``
* ``spectral_mix_backward_input(grad_out, weight) -> grad_x``
* ``spectral_mix_backward_weight(grad_out, x) -> grad_weight``

This module adds what the C++ side does not: a fake (meta) kernel for each op, so that
``torch.compile`` and ``torch.library.opcheck`` can trace them, and the autograd rules of the two
forward ops. The rational backward op is itself differentiable (double backward, e.g. for
physics-informed losses through GR-KAN layers) by autograd through the reference backward formula.

Nothing happens at import: :func:`load` loads the library on first use. If it is missing or does
not load, one ``RuntimeWarning`` says so and callers use the pure-PyTorch reference kernels.
``PDEOP_NO_EXT=1`` in the environment skips the extension silently (it was asked for).
"""

from __future__ import annotations

import importlib
import os
import warnings
from typing import Any

import torch

_LOADED: bool | None = None  # None: not tried yet
_WITH_CUDA = False
_MAX_MODE_AXES = 0


def load() -> bool:
    """Load the compiled ops once; return whether they are available.

    Returns
    -------
    bool
        True when ``torch.ops.pdeop`` holds the compiled kernels and their fake kernels and
        autograd rules are registered.
    """
    global _LOADED
    if _LOADED is None:
        _LOADED = _try_load()
    return _LOADED


def has_cuda_kernels() -> bool:
    """Whether the loaded extension was compiled with its CUDA kernels."""
    return load() and _WITH_CUDA


def max_mode_axes() -> int:
    """Most mode axes (spatial dimensions) the compiled spectral-mixing ops take; 0 without them."""
    return _MAX_MODE_AXES if load() else 0


def _try_load() -> bool:
    global _WITH_CUDA, _MAX_MODE_AXES
    if os.environ.get("PDEOP_NO_EXT", "0") not in ("", "0"):
        return False
    try:
        _C = importlib.import_module("operators._C")
    except ImportError as err:
        warnings.warn(
            f"pdeop: the compiled kernels (operators._C) could not be loaded ({err}); using the "
            "pure-PyTorch kernels, which give the same numbers more slowly. Build them with "
            "`pip install --no-build-isolation -e .` (see README.md).",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    _WITH_CUDA = bool(getattr(_C, "WITH_CUDA", 0))
    _MAX_MODE_AXES = int(getattr(_C, "MAX_MODE_AXES", 3))  # an extension built before the bound was exported
    _register_fake_kernels()
    _register_autograd()
    return True


def _contiguous_like(t: torch.Tensor) -> torch.Tensor:
    return torch.empty(t.shape, dtype=t.dtype, device=t.device)


def _mode_output(a: torch.Tensor, b: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """``[rows, cols, *modes]`` laid out as csrc/registration.cpp's ``mode_output`` does.

    Mode-major (``[*modes, rows, cols]`` in memory) when ``a`` or ``b`` keeps its channels
    contiguous under its modes (``stride(1) < stride(-1)``), else contiguous.
    """
    modes = tuple(a.shape[2:])
    if a.stride(1) < a.stride(-1) or b.stride(1) < b.stride(-1):
        d = len(modes)
        return a.new_empty((*modes, rows, cols)).permute(d, d + 1, *range(d))
    return a.new_empty((rows, cols, *modes))


def _register_fake_kernels() -> None:
    """Shape-only versions of the ops, with the real kernels' output layouts."""

    @torch.library.register_fake("pdeop::rational_forward")
    def _rational_forward(x, numerator, denominator, groups, channel_dim):  # noqa: ANN001, ANN202
        return _contiguous_like(x)

    @torch.library.register_fake("pdeop::rational_backward")
    def _rational_backward(grad_out, x, numerator, denominator, groups, channel_dim):  # noqa: ANN001, ANN202
        return _contiguous_like(x), _contiguous_like(numerator), _contiguous_like(denominator)

    @torch.library.register_fake("pdeop::spectral_mix_forward")
    def _spectral_forward(x, weight):  # noqa: ANN001, ANN202
        return _mode_output(x, weight, x.shape[0], weight.shape[1])

    @torch.library.register_fake("pdeop::spectral_mix_backward_input")
    def _spectral_backward_input(grad_out, weight):  # noqa: ANN001, ANN202
        return _mode_output(grad_out, weight, grad_out.shape[0], weight.shape[0])

    @torch.library.register_fake("pdeop::spectral_mix_backward_weight")
    def _spectral_backward_weight(grad_out, x):  # noqa: ANN001, ANN202
        return _mode_output(x, grad_out, x.shape[1], grad_out.shape[1])


def _register_autograd() -> None:
    torch.library.register_autograd(
        "pdeop::rational_forward", _rational_backward, setup_context=_rational_setup
    )
    torch.library.register_autograd(
        "pdeop::rational_backward", _rational_double_backward, setup_context=_rational_backward_setup
    )
    torch.library.register_autograd(
        "pdeop::spectral_mix_forward", _spectral_backward, setup_context=_spectral_setup
    )


def _rational_setup(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    x, numerator, denominator, groups, channel_dim = inputs
    ctx.save_for_backward(x, numerator, denominator)
    ctx.groups = groups
    ctx.channel_dim = channel_dim


def _rational_backward(ctx: Any, grad_out: torch.Tensor) -> tuple:
    x, numerator, denominator = ctx.saved_tensors
    grad_x, grad_numerator, grad_denominator = torch.ops.pdeop.rational_backward(
        grad_out, x, numerator, denominator, ctx.groups, ctx.channel_dim
    )
    needs = ctx.needs_input_grad
    return (
        grad_x if needs[0] else None,
        grad_numerator if needs[1] else None,
        grad_denominator if needs[2] else None,
        None,
        None,
    )


def _rational_backward_setup(ctx: Any, inputs: tuple, output: tuple) -> None:
    grad_out, x, numerator, denominator, groups, channel_dim = inputs
    ctx.save_for_backward(grad_out, x, numerator, denominator)
    ctx.groups = groups
    ctx.channel_dim = channel_dim


def _rational_double_backward(
    ctx: Any, grad_grad_x: torch.Tensor, grad_grad_numerator: torch.Tensor, grad_grad_denominator: torch.Tensor
) -> tuple:
    """Vector-Jacobian product of the backward op, by autograd through the reference formulas."""
    from operators.kernels.rational_reference import rational_backward_reference

    def backward(grad_out, x, numerator, denominator):  # noqa: ANN001, ANN202
        return rational_backward_reference(grad_out, x, numerator, denominator, ctx.groups, ctx.channel_dim)

    primals = ctx.saved_tensors
    outputs, vjp = torch.func.vjp(backward, *primals)
    cotangents = tuple(
        torch.zeros_like(out) if g is None else g
        for out, g in zip(outputs, (grad_grad_x, grad_grad_numerator, grad_grad_denominator))
    )
    return (*vjp(cotangents), None, None)


def _spectral_setup(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    x, weight = inputs
    ctx.save_for_backward(x, weight)


def _spectral_backward(ctx: Any, grad_out: torch.Tensor) -> tuple:
    x, weight = ctx.saved_tensors
    grad_x = grad_weight = None
    if ctx.needs_input_grad[0]:
        grad_x = torch.ops.pdeop.spectral_mix_backward_input(grad_out, weight)
    if ctx.needs_input_grad[1]:
        grad_weight = torch.ops.pdeop.spectral_mix_backward_weight(grad_out, x)
    return grad_x, grad_weight
