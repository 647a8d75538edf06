"""PDEBench 2-D Darcy files (``2D_DarcyFlow_beta1.0_Train.hdf5``): ``nu(N, X, Y)`` the coefficient,
``tensor(N, 1, X, Y)`` the solution, ``x-coordinate`` / ``y-coordinate`` the cell centres.

They become the ``darcy`` layout ``a(sample, x, y)``, ``u(sample, x, y)``; the file name's ``beta`` (the
constant right-hand side) becomes the attribute ``forcing``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pde_data.family import Layout, Variable
from pde_data.importers.pdebench_names import name_parameters
from pde_data.importers.plan import ImportFormat, ImportPlan, register_format
from pde_data.importers.source import SourceInventory


@register_format("pdebench-darcy")
class PdeBenchDarcy(ImportFormat):
    """PDEBench 2-D Darcy ``nu`` / ``tensor``."""

    summary = "PDEBench 2-D Darcy HDF5 (nu, tensor)"

    @staticmethod
    def matches(source: SourceInventory) -> bool:
        if source.container != "hdf5" or not source.has("nu", "tensor"):
            return False
        nu, tensor = source.entries["nu"], source.entries["tensor"]
        return len(nu) == 3 and tensor == (nu[0], 1, *nu[1:])

    @staticmethod
    def plan(source: SourceInventory, settings: dict[str, Any]) -> ImportPlan:
        import h5py

        f = h5py.File(source.path, "r")
        n, nx, ny = f["nu"].shape
        coords = {}
        for dim, size in (("x", nx), ("y", ny)):
            name = f"{dim}-coordinate"
            coords[dim] = (np.asarray(f[name][()], dtype=np.float64).reshape(-1) if name in f
                           else (np.arange(size) + 0.5) / size)
        _, parameters = name_parameters(source.path)
        attrs = {"forcing": parameters.pop("beta")} if "beta" in parameters else {}
        dims = ("sample", "x", "y")
        layout = Layout(coords=coords, variables={"a": Variable(dims, f["nu"].dtype.name, {"long_name": "coefficient"}),
                                                  "u": Variable(dims, f["tensor"].dtype.name, {"long_name": "solution"})},
                        attrs={**parameters, **attrs})
        return ImportPlan("darcy", layout, n, lambda a, b: {"a": f["nu"][a:b], "u": f["tensor"][a:b, 0]},
                          periodic=False, close=f.close)
