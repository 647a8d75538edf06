"""Coordinates of regular grids, used as extra input channels and as DeepONet query points."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def regular_grid(sizes: Sequence[int], dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None, endpoint: bool = False) -> torch.Tensor:
    """Coordinates of a regular grid on the unit cube.

    Parameters
    ----------
    sizes
        Points per axis ``(n_1, ..., n_d)``.
    endpoint
        False: ``x_i = i / n`` (periodic grid, as the FNO data and neuralop use); True:
        ``x_i = i / (n - 1)`` (vertex grid including both boundaries, as the Darcy data).

    Returns
    -------
    torch.Tensor
        ``[d, n_1, ..., n_d]``; channel ``k`` holds the ``k``-th coordinate.
    """
    axes = []
    for n in sizes:
        if endpoint:
            axes.append(torch.linspace(0.0, 1.0, n, dtype=torch.float64))
        else:
            axes.append(torch.arange(n, dtype=torch.float64) / n)
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(mesh).to(dtype=dtype, device=device)


def append_grid_channels(x: torch.Tensor, n_dim: int) -> torch.Tensor:
    """Append the periodic-grid coordinates (:func:`regular_grid`) as ``n_dim`` channels of ``x``.

    ``x`` is ``[B, C, n_1..n_d]``; the result is ``[B, C + d, n_1..n_d]``.
    """
    grid = regular_grid(x.shape[-n_dim:], dtype=x.dtype, device=x.device)
    return torch.cat((x, grid.unsqueeze(0).expand(x.shape[0], *grid.shape)), dim=1)
