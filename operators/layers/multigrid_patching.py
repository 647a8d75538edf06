"""Multigrid domain patching on a periodic grid (Kossaifi et al. 2023, "Multi-Grid Tensorized Fourier
Neural Operator for High-Resolution PDEs"), in 1, 2 or 3 dimensions.

With ``levels = L`` every axis of ``n`` cells is cut into ``P = 2^L`` patches of ``s = n / P`` cells.
Each patch becomes one model input of ``w = s + 2 m`` cells per axis (``m``: the margin of that axis,
cells of overlap with the neighbours on each side) and ``C (L + 1)`` channels, level by level:

* level 0: the patch and its margins at full resolution, cells ``j s - m .. j s + s + m - 1``;
* level ``l`` (1..L): the window ``2^l`` times wider, centred on the patch, averaged over blocks of
  ``2^l x ... x 2^l`` cells (the field coarsened by ``2^l``) so that it again has ``w`` cells.

Indices are taken modulo the grid size: windows that cross the edge of the torus wrap around, and the
coarsest windows (``2^L w >= n``) see the whole domain around the patch. The coarse cells of a window
coincide with whole blocks of the coarsened field when ``s`` is divisible by ``2^(L+1)``, i.e. when ``n``
is divisible by ``2^(2L+1)`` along every axis (checked).

:func:`stitch_patches` is the inverse on the patch interiors: it drops the margins of each model
output and puts the ``s``-cell interiors back in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from solvers.errors import ConfigError

_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def check_patch_grid(sizes: Sequence[int], levels: int, margins: Sequence[int]) -> None:
    """Raise ConfigError unless a grid of ``sizes`` can be patched with ``levels`` and per-axis ``margins``."""
    factor = 2 ** (2 * levels + 1)
    if any(n % factor for n in sizes):
        raise ConfigError(f"multigrid patching with {levels} level(s) needs grid sizes divisible by 2^(2 levels + 1) "
                          f"= {factor} (got {list(sizes)})")
    if len(margins) != len(sizes) or any(not 0 <= m <= n // 2 ** levels for m, n in zip(margins, sizes)):
        raise ConfigError(f"the patch margins must be 0 to the patch size {[n // 2 ** levels for n in sizes]} cells "
                          f"per axis (got {list(margins)})")


def window_indices(n: int, levels: int, margin: int, level: int, device: torch.device | None = None) -> torch.Tensor:
    """Indices into the field coarsened by ``2^level`` of every patch's window along one axis.

    Parameters
    ----------
    n
        Fine cells along the axis.
    levels
        Patching levels (``2^levels`` patches).
    margin
        Cells of overlap on each side of a fine patch.
    level
        0 (the fine window) to ``levels``.

    Returns
    -------
    torch.Tensor
        ``[2^levels, s + 2 margin]`` int64 indices modulo ``n / 2^level``.
    """
    patches = 2 ** levels
    size = n // patches
    width = size + 2 * margin
    scale = 2 ** level
    centres = torch.arange(patches, device=device) * size + size // 2   # fine cell at the patch's centre
    starts = (centres - scale * (width // 2)) // scale                  # exact: see the module docstring
    return (starts[:, None] + torch.arange(width, device=device)[None, :]) % (n // scale)


def _gather_windows(field: torch.Tensor, indices: Sequence[torch.Tensor]) -> torch.Tensor:
    """``field`` ``[B, C, *m]`` -> ``[B * P_1 * ... * P_d, C, *w]`` with ``indices[k]`` ``[P_k, w_k]`` per axis."""
    d = len(indices)
    x = field
    for axis, index in enumerate(indices):
        dim = 2 + 2 * axis  # every earlier axis has become (P, w)
        x = x.index_select(dim, index.flatten()).unflatten(dim, tuple(index.shape))
    # [B, C, P_1, w_1, ..., P_d, w_d] -> [B, P_1..P_d, C, w_1..w_d]
    order = (0, *(2 + 2 * k for k in range(d)), 1, *(3 + 2 * k for k in range(d)))
    x = x.permute(order)
    return x.reshape(-1, field.shape[1], *x.shape[2 + d:])


def multigrid_patches(x: torch.Tensor, levels: int, margins: Sequence[int]) -> torch.Tensor:
    """Cut ``x`` into multigrid patches (see the module docstring).

    Parameters
    ----------
    x
        ``[B, C, n_1..n_d]`` fields on a periodic grid.
    levels
        ``L``: ``2^L`` patches per axis and ``L`` coarser context levels.
    margins
        Overlap cells on each side of a patch, per axis.

    Returns
    -------
    torch.Tensor
        ``[B * 2^(L d), C (L + 1), s_1 + 2 m_1, ...]``; patches are ordered like the cells of a
        ``[B, 2^L, ..., 2^L]`` array, channels level by level (level 0 first).
    """
    d = x.ndim - 2
    sizes = tuple(int(n) for n in x.shape[2:])
    check_patch_grid(sizes, levels, margins)
    parts = []
    for level in range(levels + 1):
        coarse = x if level == 0 else _AVG_POOL[d](x, kernel_size=2 ** level)
        parts.append(_gather_windows(coarse, [window_indices(n, levels, m, level, x.device)
                                              for n, m in zip(sizes, margins)]))
    return torch.cat(parts, dim=1)


def stitch_patches(y: torch.Tensor, levels: int, margins: Sequence[int], batch: int) -> torch.Tensor:
    """Inverse of :func:`multigrid_patches` on the interiors: drop the margins and reassemble.

    Parameters
    ----------
    y
        ``[batch * 2^(L d), C, w_1..w_d]`` per-patch fields (e.g. model outputs).
    levels, margins
        As given to :func:`multigrid_patches`.
    batch
        ``B``.

    Returns
    -------
    torch.Tensor
        ``[B, C, n_1..n_d]`` with ``n_k = 2^L (w_k - 2 m_k)``.
    """
    d = y.ndim - 2
    patches = 2 ** levels
    interior = y[(slice(None), slice(None), *(slice(m, y.shape[2 + k] - m) for k, m in enumerate(margins)))]
    sizes = interior.shape[2:]
    x = interior.reshape(batch, *(patches,) * d, y.shape[1], *sizes)
    # [B, P_1..P_d, C, s_1..s_d] -> [B, C, P_1, s_1, ..., P_d, s_d]
    order = (0, d + 1, *(q for k in range(d) for q in (1 + k, d + 2 + k)))
    return x.permute(order).reshape(batch, y.shape[1], *(patches * s for s in sizes))
