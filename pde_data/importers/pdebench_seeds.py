"""PDEBench seed-grouped 2-D files (``2D_diff-react_NA_NA.h5``, ``2D_rdb_NA_NA.h5``): one group per sample
(``0000``, ``0001``...) holding ``data(T, X, Y, C)`` and ``grid/x``, ``grid/y``, ``grid/t``.

They become one variable per channel (``u`` for one, ``u0``, ``u1``... for several) of dims
``(sample, t, x, y)``, samples in the order of the group names, on the first group's grid (every group
must have the same shapes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pde_data.family import Layout, Variable
from pde_data.importers.pdebench_names import name_parameters
from pde_data.importers.plan import ImportFormat, ImportPlan, channel_names, register_format
from pde_data.importers.source import SourceInventory
from solvers.errors import ConfigError


def _groups(source: SourceInventory) -> list[str]:
    return sorted({name.split("/")[0] for name in source.entries if name.split("/")[0].isdigit()})


@register_format("pdebench-seeds")
class PdeBenchSeeds(ImportFormat):
    """PDEBench 2-D files with one group per seed (``data``, ``grid/x``, ``grid/y``, ``grid/t``)."""

    summary = "PDEBench seed-grouped 2-D HDF5 (0000/data, 0000/grid/x, y, t, ...)"

    @staticmethod
    def matches(source: SourceInventory) -> bool:
        groups = _groups(source)
        return (source.container == "hdf5" and bool(groups)
                and all(source.has(f"{g}/data", f"{g}/grid/x", f"{g}/grid/y", f"{g}/grid/t") for g in groups)
                and len(source.entries[f"{groups[0]}/data"]) == 4)

    @staticmethod
    def plan(source: SourceInventory, settings: dict[str, Any]) -> ImportPlan:
        import h5py

        groups = _groups(source)
        shape = source.entries[f"{groups[0]}/data"]
        different = [g for g in groups if source.entries[f"{g}/data"] != shape]
        if different:
            raise ConfigError(f"{source.path}: group {different[0]} holds data of shape "
                              f"{source.entries[different[0] + '/data']}, group {groups[0]} {shape}; "
                              f"pdeop files need one shape")
        f = h5py.File(source.path, "r")
        names = channel_names(shape[-1])
        first = f[groups[0]]
        coords = {dim: np.asarray(first[f"grid/{dim}"][()], dtype=np.float64).reshape(-1) for dim in ("x", "y", "t")}
        dtype = first["data"].dtype.name

        def read(start: int, stop: int) -> dict[str, np.ndarray]:
            data = np.stack([f[g]["data"][()] for g in groups[start:stop]])
            return {name: data[..., c] for c, name in enumerate(names)}

        equation, parameters = name_parameters(source.path)
        layout = Layout(coords=coords, variables={n: Variable(("sample", "t", "x", "y"), dtype) for n in names},
                        attrs=parameters)
        return ImportPlan(f"pdebench-{equation or '2d'}", layout, len(groups), read, periodic=False, close=f.close)
