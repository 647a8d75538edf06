"""exponax / APEBench trajectories saved with ``numpy.save``: one array ``[sample, time, channel, *space]``
with one to three spatial axes, on exponax's periodic grid ``x_i = i L / N``.

They become one variable per channel (``u`` for one, ``u0``, ``u1``... for several) of dims
``(sample, t, x[, y[, z]])``; ``--set length=L`` (exponax's ``domain_extent``, default 1) and ``--set dt=``
(the time between saved states, default 1) give the coordinates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pde_data.family import Layout, Variable
from pde_data.importers.plan import (ImportFormat, ImportPlan, channel_names, periodic_points, register_format,
                                     setting)
from pde_data.importers.source import SourceInventory

SPACE_DIMS = ("x", "y", "z")


@register_format("exponax")
class Exponax(ImportFormat):
    """exponax / APEBench NumPy trajectories."""

    summary = "exponax / APEBench .npy trajectories [sample, time, channel, *space]"

    @staticmethod
    def matches(source: SourceInventory) -> bool:
        return source.container == "npy" and 4 <= len(source.entries[""]) <= 6

    @staticmethod
    def plan(source: SourceInventory, settings: dict[str, Any]) -> ImportPlan:
        array = np.load(source.path, mmap_mode="r", allow_pickle=False)
        n, nt, nc, *space = array.shape
        length, dt = setting(settings, "length", 1.0), setting(settings, "dt", 1.0)
        dims = SPACE_DIMS[:len(space)]
        names = channel_names(nc)
        coords = {"t": np.arange(nt) * dt, **{d: periodic_points(size, length) for d, size in zip(dims, space)}}
        layout = Layout(coords=coords,
                        variables={name: Variable(("sample", "t", *dims), array.dtype.name) for name in names})

        def read(start: int, stop: int) -> dict[str, np.ndarray]:
            block = np.asarray(array[start:stop])
            return {name: block[:, :, c] for c, name in enumerate(names)}

        return ImportPlan("exponax", layout, n, read, periodic=True)
