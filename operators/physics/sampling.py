"""Collocation points for physics-informed training.

Points are drawn uniformly and afresh at every step from a generator seeded by ``(seed, step)``
(:func:`step_generator`), so a resumed run sees exactly the points an uninterrupted run would.
Every function returns coordinates ``[N, 1 + d]`` (time first) in float64; callers cast.
"""

from __future__ import annotations

import torch

from operators.physics.pde_specs import PDESpec


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """Random generator of training step ``step``; depends only on ``(seed, step, stream)``."""
    generator = torch.Generator()
    generator.manual_seed((int(seed) * 1_000_003 + int(step)) * 7 + int(stream))
    return generator


def _space(spec: PDESpec, n: int, generator: torch.Generator) -> torch.Tensor:
    lower = torch.tensor(spec.lower, dtype=torch.float64)
    upper = torch.tensor(spec.upper, dtype=torch.float64)
    return lower + (upper - lower) * torch.rand(n, spec.space_dim, generator=generator, dtype=torch.float64)


def interior(spec: PDESpec, n: int, generator: torch.Generator, t_start: float = 0.0,
             t_stop: float | None = None) -> torch.Tensor:
    """``n`` points uniform in ``[t_start, t_stop] x domain`` (``t_stop`` defaults to ``spec.t_end``)."""
    t_stop = spec.t_end if t_stop is None else t_stop
    t = t_start + (t_stop - t_start) * torch.rand(n, 1, generator=generator, dtype=torch.float64)
    return torch.cat((t, _space(spec, n, generator)), dim=1)


def time_slices(spec: PDESpec, n_slices: int, per_slice: int, generator: torch.Generator,
                t_start: float = 0.0, t_stop: float | None = None) -> torch.Tensor:
    """Stratified points for the causal loss: slice ``i`` holds ``per_slice`` points with t uniform
    in ``[t_i, t_{i+1})``, the ``n_slices`` slices splitting ``[t_start, t_stop]`` evenly.

    Returns ``[n_slices * per_slice, 1 + d]``, slice-major (rows ``i*per_slice ... (i+1)*per_slice-1``
    belong to slice ``i``), so ``residual.view(n_slices, per_slice)`` groups them.
    """
    t_stop = spec.t_end if t_stop is None else t_stop
    width = (t_stop - t_start) / n_slices
    offsets = torch.arange(n_slices, dtype=torch.float64).repeat_interleave(per_slice)[:, None]
    t = t_start + width * (offsets + torch.rand(n_slices * per_slice, 1, generator=generator, dtype=torch.float64))
    return torch.cat((t, _space(spec, n_slices * per_slice, generator)), dim=1)


def initial(spec: PDESpec, n: int, generator: torch.Generator, t: float = 0.0) -> torch.Tensor:
    """``n`` points at time ``t`` (default the initial time), uniform in space."""
    return torch.cat((torch.full((n, 1), float(t), dtype=torch.float64), _space(spec, n, generator)), dim=1)


def periodic_pairs(spec: PDESpec, n: int, generator: torch.Generator, t_start: float = 0.0,
                   t_stop: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Matching points on opposite faces of the periodic domain, for a soft periodic condition.

    For each spatial axis, ``n`` random points are put on its lower face and copied to its upper
    face. Returns ``(low, high)``, each ``[n * d, 1 + d]``.
    """
    base = interior(spec, n * spec.space_dim, generator, t_start, t_stop)
    low, high = base.clone(), base.clone()
    for axis in range(spec.space_dim):
        rows = slice(axis * n, (axis + 1) * n)
        low[rows, 1 + axis] = spec.lower[axis]
        high[rows, 1 + axis] = spec.upper[axis]
    return low, high


def grid(spec: PDESpec, n_t: int, n_space: int, t_start: float = 0.0,
         t_stop: float | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Tensor-product evaluation grid: ``n_t`` times including both ends, ``n_space`` periodic points
    per axis (``x_j = lower + j L / n_space``).

    Returns ``(coords [n_t * n_space^d, 1 + d], [t, x(, y)])`` with coords ordered like
    ``meshgrid(t, x, (y), indexing="ij")``.
    """
    t_stop = spec.t_end if t_stop is None else t_stop
    axes = [torch.linspace(t_start, t_stop, n_t, dtype=torch.float64)]
    for lo, hi in zip(spec.lower, spec.upper):
        axes.append(lo + (hi - lo) * torch.arange(n_space, dtype=torch.float64) / n_space)
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1), axes
