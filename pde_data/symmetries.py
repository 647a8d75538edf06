"""Symmetry transforms of periodic trajectories: translations, Galilean boosts, the square's reflections.

Each function maps stored solutions to stored solutions of the same equation (Lie-point symmetries
and lattice symmetries of the periodic grid), batched over samples with one transform per sample:

* :func:`translate`: ``u(x) -> u(x - s)`` by whole cells (exact on the grid; any equation that does
  not depend on position);
* :func:`galilean_boost`: ``u(x, t) -> u(x - eps t, t) + eps`` for ``u_t + u u_x = ...`` (Burgers,
  Kuramoto-Sivashinsky). The added ``eps`` is exact; the shift ``eps t`` is rarely a whole number
  of cells and is applied by Fourier interpolation (:func:`fourier_shift`), which keeps the field
  periodic and is exact for fields band-limited on the grid (no Nyquist component);
* :func:`torus_transform`: the 2-D lattice maps ``w'(p) = det(g) w(g^-1 (p - s))`` with ``g`` one of
  the 8 symmetries of the square (reflections ``x -> -x``, ``y -> -y``, the swap ``x <-> y`` and
  their products) and ``s`` a shift. Vorticity and the curl of a body force are pseudo-scalars:
  they change sign under reflections (``det g = -1``); :func:`torus_transform` takes ``pseudo``.

Shapes: 1-D fields ``[B, T, n]``, 2-D fields ``[B, C, n_x, n_y]`` (``C`` times or channels);
per-sample parameters have a leading ``[B]``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: symmetries of the square as bit sets: 1 flips x, 2 flips y, 4 swaps x and y (swap first, then flips)
FLIP_X, FLIP_Y, SWAP = 1, 2, 4
SQUARE_ELEMENTS = tuple(range(8))


def element_sign(element: torch.Tensor | int) -> torch.Tensor | int:
    """``det g = (-1)^(number of reflections)`` of a square symmetry (bit set, see :data:`SWAP`)."""
    if isinstance(element, int):
        return -1 if bin(element).count("1") % 2 else 1
    bits = (element & 1) + ((element >> 1) & 1) + ((element >> 2) & 1)
    return 1 - 2 * (bits % 2)


def translate(fields: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Circular shift of the last ``d`` axes by whole cells, one shift per sample.

    Parameters
    ----------
    fields
        ``[B, C, n_1..n_d]``.
    shifts
        ``[B, d]`` integer shifts: the result at cell ``p`` is the input at ``p - s``.
    """
    out = fields
    d = shifts.shape[1]
    for axis in range(d):
        n = fields.shape[fields.ndim - d + axis]
        dim = fields.ndim - d + axis
        source = (torch.arange(n, device=fields.device)[None, :] - shifts[:, axis:axis + 1]) % n   # [B, n]
        shape = [fields.shape[0]] + [1] * (fields.ndim - 1)
        shape[dim] = n
        out = out.gather(dim, source.reshape(shape).expand(out.shape))
    return out


def fourier_shift(u: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``u(x - shift)`` along the last axis by Fourier interpolation (in float64, returned in ``u``'s dtype).

    Parameters
    ----------
    u
        ``[..., n]`` samples of a periodic field at ``x_j = j`` (cells).
    shift
        Shift in cells, broadcastable to ``u.shape[:-1]``.

    Notes
    -----
    Mode ``k`` is multiplied by ``exp(-2 pi i k shift / n)``. For even ``n`` the Nyquist mode of a real
    field cannot be shifted by a fraction of a cell and stay real; the real part is kept (what
    ``irfft`` does), so the result is exact only for fields without a Nyquist component.
    """
    n = u.shape[-1]
    spectrum = torch.fft.rfft(u.to(torch.float64), dim=-1)
    k = torch.arange(n // 2 + 1, dtype=torch.float64, device=u.device)
    phase = torch.exp(torch.complex(torch.zeros_like(k), -2.0 * math.pi * k / n)
                      * torch.as_tensor(shift, dtype=torch.float64, device=u.device)[..., None])
    return torch.fft.irfft(spectrum * phase, n=n, dim=-1).to(u.dtype)


def galilean_boost(window: torch.Tensor, velocity: torch.Tensor, elapsed: torch.Tensor,
                   period: torch.Tensor) -> torch.Tensor:
    """``u(x, t) -> u(x - eps t, t) + eps`` on a periodic 1-D grid, one boost velocity per sample.

    Parameters
    ----------
    window
        ``[B, T, n]`` states at times ``t_0 + elapsed``.
    velocity
        ``[B]`` boost velocities ``eps`` (units of ``u``: length per time).
    elapsed
        ``[B, T]`` time of each state since the boost's origin ``t_0`` (the equation is autonomous,
        so any origin gives a solution).
    period
        ``[B]`` domain length ``L`` of each sample (the grid is ``x_j = j L / n``).

    Returns
    -------
    torch.Tensor
        ``[B, T, n]``; samples with zero velocity are returned unchanged (no interpolation).
    """
    n = window.shape[-1]
    moving = velocity != 0
    if not bool(moving.any()):
        return window
    out = window.clone()
    cells = (velocity[moving, None] * elapsed[moving] * n / period[moving, None])
    out[moving] = fourier_shift(window[moving], cells) + velocity[moving, None, None].to(window.dtype)
    return out


def square_source_indices(element: torch.Tensor, shift: torch.Tensor, sizes: tuple[int, int]) -> torch.Tensor:
    """Flat source cell of every cell of the output of :func:`torus_transform`: ``[B, n_x * n_y]`` int64.

    Cell ``p`` of the output reads cell ``g^-1 (p - s)`` (taken modulo the grid) of the input.
    """
    nx, ny = sizes
    device = element.device
    i = torch.arange(nx, device=device)[None, :, None] - shift[:, 0, None, None]
    j = torch.arange(ny, device=device)[None, None, :] - shift[:, 1, None, None]
    flip_x = ((element & FLIP_X) != 0)[:, None, None]
    flip_y = ((element & FLIP_Y) != 0)[:, None, None]
    swap = ((element & SWAP) != 0)[:, None, None]
    i, j = torch.where(flip_x, -i, i), torch.where(flip_y, -j, j)        # undo the flips, then the swap
    a, b = torch.where(swap, j, i) % nx, torch.where(swap, i, j) % ny
    return (a * ny + b).flatten(1)


def torus_transform(fields: torch.Tensor, element: torch.Tensor, shift: torch.Tensor, pseudo: bool) -> torch.Tensor:
    """``w'(p) = det(g)^pseudo w(g^-1 (p - s))`` on a periodic 2-D grid, one ``(g, s)`` per sample.

    Parameters
    ----------
    fields
        ``[B, C, n_x, n_y]`` (all channels of a sample get the same transform).
    element
        ``[B]`` square symmetries as bit sets (:data:`FLIP_X`, :data:`FLIP_Y`, :data:`SWAP`); the
        swap needs ``n_x == n_y``.
    shift
        ``[B, 2]`` integer shifts in cells.
    pseudo
        Whether the fields are pseudo-scalars (vorticity, the curl of a forcing), which change sign
        under reflections.
    """
    b, c, nx, ny = fields.shape
    source = square_source_indices(element, shift, (nx, ny))
    out = fields.flatten(2).gather(2, source[:, None, :].expand(b, c, nx * ny)).view_as(fields)
    if pseudo:
        out = out * element_sign(element).to(fields.dtype)[:, None, None, None]
    return out


def square_stabiliser(field: np.ndarray, elements: tuple[int, ...], shifts: bool, rtol: float = 1e-5) -> np.ndarray:
    """The transforms ``(g, s)`` of :func:`torus_transform` (pseudo-scalar) that leave ``field`` unchanged.

    Parameters
    ----------
    field
        ``[n_x, n_y]`` e.g. a forcing that the model is not given (training on transformed samples
        would then teach it a different forcing).
    elements
        Square symmetries to consider.
    shifts
        Consider every shift (True) or only ``s = 0``.
    rtol
        ``||T f - f|| <= rtol ||f||`` counts as unchanged (the stored field is float32, whose
        rounding is ~6e-8 relative).

    Returns
    -------
    numpy.ndarray
        ``[K, 3]`` rows ``(element, s_x, s_y)``; every candidate when ``field`` is zero.
    """
    f = np.asarray(field, dtype=np.float64)
    nx, ny = f.shape
    norm2 = float(np.sum(f * f))
    spectrum = np.fft.fft2(f)
    rows = []
    for element in elements:
        image = torus_transform(torch.from_numpy(f)[None, None], torch.tensor([element]), torch.zeros(1, 2, dtype=torch.long),
                                pseudo=True)[0, 0].numpy()
        # ||T_{g,s} f - f||^2 = 2 ||f||^2 - 2 sum_p f(p) image(p - s): a circular cross-correlation
        correlation = np.fft.ifft2(spectrum * np.conj(np.fft.fft2(image))).real
        residual = np.maximum(2.0 * norm2 - 2.0 * correlation, 0.0)
        if not shifts:
            residual = np.where(np.add.outer(np.arange(nx), np.arange(ny)) == 0, residual, np.inf)
        sx, sy = np.nonzero(residual <= (rtol ** 2) * norm2) if norm2 > 0 else np.nonzero(np.isfinite(residual))
        rows.append(np.stack([np.full(sx.shape, element), sx, sy], axis=1))
    return np.concatenate(rows).astype(np.int64)
