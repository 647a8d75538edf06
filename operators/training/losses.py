"""Relative L2 and H1 errors of fields, resolution independent.

Every function takes channel-first batches ``[B, C, *space]`` and treats one item (all channels
and grid points) as one function. The norms are discretisations of the continuous ones, so the
same pair of functions sampled on a coarse and on a fine grid gives (nearly) the same error:

* L2: the grid sum, whose ratio is the ratio of the integrals (uniform grids);
* H1 on periodic grids: Parseval, ``sum_k (1 + |2 pi k / L|^2) |u_k|^2`` (spectrally exact);
* H1 on vertex grids with both boundaries: second-order finite differences (``torch.gradient``,
  one-sided at the edges) with spacing ``L / (n - 1)`` and trapezoidal weights, so the error is
  O(h^2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

Reduction = Literal["mean", "sum", "none"]

#: guards the division for an all-zero target
_TINY = 1e-12


def _reduce(values: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def relative_l2(pred: torch.Tensor, target: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """Relative L2 error ``||pred - target|| / ||target||`` per item.

    Parameters
    ----------
    pred, target
        ``[B, ...]``; everything after the batch axis is one function.
    reduction
        ``mean`` or ``sum`` over the batch, or ``none`` for the ``[B]`` errors.
    """
    diff = (pred - target).flatten(1).norm(dim=1)
    norm = target.flatten(1).norm(dim=1)
    return _reduce(diff / norm.clamp_min(_TINY), reduction)


def _grid_mean(values: torch.Tensor, periodic: bool) -> torch.Tensor:
    """Mean over the grid per item of ``[B, C, *space]``: plain on periodic grids, trapezoidal on
    vertex grids (half weight on boundary points), i.e. the integral over a unit-volume domain."""
    if periodic:
        return values.flatten(1).mean(dim=1)
    for axis in range(2, values.ndim):
        n = values.shape[axis]
        weights = torch.ones(n, dtype=values.dtype, device=values.device)
        weights[0] = weights[-1] = 0.5
        shape = [1] * values.ndim
        shape[axis] = n
        values = values * (weights / (n - 1)).reshape(shape)
    return values.flatten(1).sum(dim=1) / values.shape[1]


def h1_seminorm_squared(u: torch.Tensor, periodic: bool, lengths: Sequence[float] | None = None) -> torch.Tensor:
    """Squared gradient norm ``mean |grad u|^2`` per item of ``u`` ``[B, C, *space]``.

    Averages instead of integrals: the domain volume cancels in relative errors.
    """
    n_space = u.ndim - 2
    lengths = tuple(lengths) if lengths is not None else (1.0,) * n_space
    if len(lengths) != n_space:
        raise ValueError(f"lengths has {len(lengths)} entries for {n_space} space dimensions")
    if periodic:
        dims = tuple(range(2, u.ndim))
        spectrum = torch.fft.fftn(u, dim=dims, norm="forward")
        weight = torch.zeros(spectrum.shape[2:], dtype=u.dtype, device=u.device)
        for axis, (n, length) in enumerate(zip(u.shape[2:], lengths)):
            k = torch.fft.fftfreq(n, d=1.0 / n, device=u.device, dtype=u.dtype) * (2 * math.pi / length)
            shape = [1] * n_space
            shape[axis] = n
            weight = weight + (k ** 2).reshape(shape)
        return (weight * spectrum.abs() ** 2).flatten(1).sum(dim=1) / u.shape[1]
    spacing = [length / (n - 1) for n, length in zip(u.shape[2:], lengths)]
    grads = torch.gradient(u, spacing=spacing, dim=tuple(range(2, u.ndim)), edge_order=2)
    return sum(_grid_mean(g ** 2, periodic=False) for g in grads)


def relative_h1(pred: torch.Tensor, target: torch.Tensor, periodic: bool = True,
                lengths: Sequence[float] | None = None, reduction: Reduction = "mean") -> torch.Tensor:
    """Relative H1 error ``||pred - target||_H1 / ||target||_H1`` per item.

    Parameters
    ----------
    pred, target
        ``[B, C, *space]`` fields on a uniform grid.
    periodic
        Periodic grid (FFT derivatives) or vertex grid including both boundaries (finite
        differences).
    lengths
        Physical domain length per space axis (default 1); sets the balance between the value
        and gradient terms.
    reduction
        ``mean``, ``sum`` or ``none``.
    """
    diff = pred - target

    def squared(u: torch.Tensor) -> torch.Tensor:
        return _grid_mean(u.pow(2), periodic) + h1_seminorm_squared(u, periodic, lengths)

    return _reduce((squared(diff) / squared(target).clamp_min(_TINY)).sqrt(), reduction)


def per_step_relative_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Relative L2 error of every channel (time step) separately: ``[B, C, *space]`` -> ``[B, C]``."""
    diff = (pred - target).flatten(2).norm(dim=2)
    return diff / target.flatten(2).norm(dim=2).clamp_min(_TINY)


def per_step_relative_h1(pred: torch.Tensor, target: torch.Tensor, periodic: bool = True,
                         lengths: Sequence[float] | None = None) -> torch.Tensor:
    """Relative H1 error (:func:`relative_h1`) of every channel (time step) separately: ``[B, C, *space]`` -> ``[B, C]``."""
    steps = lambda u: u.reshape(u.shape[0] * u.shape[1], 1, *u.shape[2:])  # noqa: E731
    return relative_h1(steps(pred), steps(target), periodic, lengths, reduction="none").reshape(pred.shape[:2])


def loss_function(name: str, periodic: bool, lengths: Sequence[float] | None = None):
    """Training loss ``f(pred, target, reduction)`` by name: ``l2`` or ``h1`` (relative)."""
    if name == "l2":
        return relative_l2
    if name == "h1":
        return lambda pred, target, reduction="mean": relative_h1(pred, target, periodic, lengths, reduction)
    raise ValueError(f"unknown loss {name!r}")
