"""PDEBench 1-D files (``1D_Burgers_Sols_Nu0.001.hdf5``, ``1D_Advection_Sols_beta0.1.hdf5`` ...):
``tensor(N, T, X)``, ``x-coordinate(X)`` and ``t-coordinate`` (T values, or T + 1 of which the first T
are the stored times).

They become ``u(sample, t, x)`` on the stored coordinates, periodic; problem ``pdebench-<equation>`` and
the parameters of the file name as attributes (:mod:`.pdebench_names`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pde_data.family import Layout, Variable
from pde_data.importers.pdebench_names import name_parameters
from pde_data.importers.plan import ImportFormat, ImportPlan, register_format
from pde_data.importers.source import SourceInventory


@register_format("pdebench-1d")
class PdeBench1D(ImportFormat):
    """PDEBench 1-D ``tensor`` with ``x-coordinate`` / ``t-coordinate``."""

    summary = "PDEBench 1-D HDF5 (tensor, x-coordinate, t-coordinate)"

    @staticmethod
    def matches(source: SourceInventory) -> bool:
        return (source.container == "hdf5" and source.has("tensor", "x-coordinate", "t-coordinate")
                and len(source.entries["tensor"]) == 3)

    @staticmethod
    def plan(source: SourceInventory, settings: dict[str, Any]) -> ImportPlan:
        import h5py

        f = h5py.File(source.path, "r")
        n, nt, nx = f["tensor"].shape
        x = np.asarray(f["x-coordinate"][()], dtype=np.float64).reshape(-1)
        t = np.asarray(f["t-coordinate"][()], dtype=np.float64).reshape(-1)[:nt]
        equation, parameters = name_parameters(source.path)
        layout = Layout(coords={"x": x, "t": t},
                        variables={"u": Variable(("sample", "t", "x"), f["tensor"].dtype.name)},
                        attrs=parameters)
        return ImportPlan(f"pdebench-{equation or '1d'}", layout, n, lambda a, b: {"u": f["tensor"][a:b]},
                          periodic=True, close=f.close)
