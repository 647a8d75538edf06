"""Torch datasets over loaded fields: static input -> output maps and time windows of trajectories.

Both classes serve items ``(x, y, cond)`` in physical units, channel first:

* ``x`` ``[C_in, *space]`` — the input (static input fields, or ``t_in`` time steps of one variable);
* ``y`` ``[C_out, *space]`` — the target (static output fields, or the next ``t_out`` time steps);
* ``cond`` ``[C_cond, *space]`` — conditioning channels given to the model at every call (a domain
  length broadcast over the grid, a forcing field); ``C_cond`` may be 0.

:meth:`batch` gathers many items with one indexing operation; the trainer uses it instead of a
``DataLoader`` because every field already sits in memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


class FieldDataset(Dataset):
    """Common part of :class:`StaticPairs` and :class:`TrajectoryWindows`.

    Attributes
    ----------
    cond
        ``[N, C_cond, *space]`` conditioning channels per sample.
    samples
        ``[N]`` global sample indices (rows of the file) of the loaded samples.
    item_sample
        ``[n_items]`` row (0..N-1) of each item.
    """

    cond: torch.Tensor
    samples: np.ndarray
    item_sample: torch.Tensor

    def __len__(self) -> int:
        return int(self.item_sample.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y, cond = self.batch(torch.tensor([index]))
        return x[0], y[0], cond[0]

    def batch(self, items: torch.Tensor | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(x, y, cond)`` with a leading batch axis for the item indices ``items``."""
        raise NotImplementedError

    @property
    def space_shape(self) -> tuple[int, ...]:
        """Grid shape of every field."""
        return tuple(self.cond.shape[2:])

    @property
    def cond_channels(self) -> int:
        """Number of conditioning channels."""
        return int(self.cond.shape[1])


class StaticPairs(FieldDataset):
    """Input fields -> output fields, one item per sample (e.g. Darcy ``a -> u``).

    Parameters
    ----------
    inputs, outputs
        ``[N, C_in, *space]`` and ``[N, C_out, *space]``.
    cond
        ``[N, C_cond, *space]``.
    samples
        ``[N]`` global sample indices.
    """

    time_dependent = False

    def __init__(self, inputs: torch.Tensor, outputs: torch.Tensor, cond: torch.Tensor, samples: np.ndarray) -> None:
        self.inputs, self.outputs, self.cond = inputs, outputs, cond
        self.samples = np.asarray(samples)
        self.item_sample = torch.arange(inputs.shape[0])

    @property
    def in_channels(self) -> int:
        """Channels of ``x``."""
        return int(self.inputs.shape[1])

    @property
    def out_channels(self) -> int:
        """Channels of ``y``."""
        return int(self.outputs.shape[1])

    def batch(self, items: torch.Tensor | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = self.item_sample[torch.as_tensor(items, dtype=torch.long)]
        return self.inputs[rows], self.outputs[rows], self.cond[rows]


class TrajectoryWindows(FieldDataset):
    """Windows of ``t_in`` input steps followed by ``t_out`` target steps of one variable.

    Parameters
    ----------
    trajectories
        ``[N, T, *space]`` the variable over time.
    times
        ``[T]`` the time coordinate.
    t_in, t_out
        Steps in and out of each window.
    starts
        First time index of each window; every sample gets every start.
    cond, samples
        As in :class:`StaticPairs`.
    """

    time_dependent = True

    def __init__(self, trajectories: torch.Tensor, times: np.ndarray, t_in: int, t_out: int,
                 starts: Sequence[int], cond: torch.Tensor, samples: np.ndarray) -> None:
        self.trajectories, self.cond = trajectories, cond
        self.times = np.asarray(times, dtype=np.float64)
        self.t_in, self.t_out = int(t_in), int(t_out)
        self.samples = np.asarray(samples)
        n = trajectories.shape[0]
        self.starts = np.asarray(starts, dtype=np.int64)
        self.item_sample = torch.arange(n).repeat_interleave(len(self.starts))
        self.item_start = torch.as_tensor(self.starts).repeat(n)

    @property
    def in_channels(self) -> int:
        """Channels of ``x`` (input time steps)."""
        return self.t_in

    @property
    def out_channels(self) -> int:
        """Channels of ``y`` (target time steps)."""
        return self.t_out

    def target_times(self, start: int | None = None) -> np.ndarray:
        """Times of the target steps of the window starting at ``start`` (default: the first)."""
        first = int(self.starts[0] if start is None else start) + self.t_in
        return self.times[first:first + self.t_out]

    def batch(self, items: torch.Tensor | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        items = torch.as_tensor(items, dtype=torch.long)
        rows, starts = self.item_sample[items], self.item_start[items]
        offsets = torch.arange(self.t_in + self.t_out)
        window = self.trajectories[rows[:, None], starts[:, None] + offsets[None, :]]
        return window[:, :self.t_in], window[:, self.t_in:], self.cond[rows]
