"""The original FNO Burgers file (``burgers_data_R10.mat``): MATLAB ``a(N, X)`` the initial condition,
``u(N, X)`` the solution at t = 1 and ``visc`` the viscosity, on the periodic grid ``x_i = i / X``.

They become the ``burgers`` layout ``u(sample, t, x)`` with ``t = [0, 1]`` (``--set T=`` for another final
time) and the attribute ``viscosity``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pde_data.family import Layout, Variable
from pde_data.importers.matlab import MatlabArrays, matlab_shape
from pde_data.importers.plan import ImportFormat, ImportPlan, periodic_points, register_format, setting
from pde_data.importers.source import SourceInventory


@register_format("fno-burgers")
class FnoBurgers(ImportFormat):
    """FNO Burgers ``.mat`` (``a``, ``u``, ``visc``)."""

    summary = "FNO Burgers .mat (a, u, visc; MATLAB v5 or v7.3)"

    @staticmethod
    def matches(source: SourceInventory) -> bool:
        if source.container not in ("hdf5", "mat5") or not source.has("a", "u"):
            return False
        a = matlab_shape(source, "a")
        return len(a) == 2 and a == matlab_shape(source, "u")

    @staticmethod
    def plan(source: SourceInventory, settings: dict[str, Any]) -> ImportPlan:
        n, nx = matlab_shape(source, "a")
        arrays = MatlabArrays(source)
        dtype = arrays.block("u", 0, 1).dtype.name
        final = setting(settings, "T", 1.0)
        attrs = {}
        if source.has("visc"):
            attrs["viscosity"] = float(np.asarray(arrays.whole("visc")).reshape(-1)[0])

        def read(start: int, stop: int) -> dict[str, np.ndarray]:
            return {"u": np.stack([arrays.block("a", start, stop), arrays.block("u", start, stop)], axis=1)}

        layout = Layout(coords={"x": periodic_points(nx), "t": np.array([0.0, final])},
                        variables={"u": Variable(("sample", "t", "x"), dtype, {"long_name": "velocity"})},
                        attrs=attrs)
        return ImportPlan("burgers", layout, n, read, periodic=True, close=arrays.close)
