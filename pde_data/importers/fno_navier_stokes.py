"""The original FNO Navier-Stokes files (``ns_V1e-3_N5000_T50.mat`` ...): MATLAB ``a(N, X, Y)`` the
initial vorticity, ``u(N, X, Y, T)`` the vorticity at ``t(1, T)`` (1, 2, ...), usually MATLAB v7.3.

They become the ``navier-stokes`` layout: ``w(sample, t, x, y)`` with ``t[0] = 0`` holding ``a``, on the
periodic grid ``x_i = i / X``, and the FNO forcing ``f = 0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))``
stored as ``f(x, y)``. The files do not record the viscosity: give it with ``--set viscosity=1e-3``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pde_data.family import Layout, Variable
from pde_data.importers.matlab import MatlabArrays, matlab_shape
from pde_data.importers.plan import ImportFormat, ImportPlan, periodic_points, register_format
from pde_data.importers.source import SourceInventory


def fno_forcing(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The forcing of the FNO Navier-Stokes data on the grid ``x`` by ``y``."""
    s = 2 * np.pi * (x[:, None] + y[None, :])
    return 0.1 * (np.sin(s) + np.cos(s))


@register_format("fno-navier-stokes")
class FnoNavierStokes(ImportFormat):
    """FNO Navier-Stokes ``.mat`` (``a``, ``u``, ``t``)."""

    summary = "FNO Navier-Stokes .mat (a, u, t; MATLAB v7.3 or v5)"

    @staticmethod
    def matches(source: SourceInventory) -> bool:
        if source.container not in ("hdf5", "mat5") or not source.has("a", "u"):
            return False
        a, u = matlab_shape(source, "a"), matlab_shape(source, "u")
        return len(a) == 3 and len(u) == 4 and u[:3] == a

    @staticmethod
    def plan(source: SourceInventory, settings: dict[str, Any]) -> ImportPlan:
        n, nx, ny, nt = matlab_shape(source, "u")
        arrays = MatlabArrays(source)
        times = (np.asarray(arrays.whole("t"), dtype=np.float64).reshape(-1) if source.has("t")
                 else np.arange(1.0, nt + 1))
        x, y = periodic_points(nx), periodic_points(ny)
        dtype = arrays.block("u", 0, 1).dtype.name

        def read(start: int, stop: int) -> dict[str, np.ndarray]:
            a = arrays.block("a", start, stop)
            u = arrays.block("u", start, stop)
            return {"w": np.concatenate([a[:, None], np.moveaxis(u, 3, 1)], axis=1)}

        layout = Layout(coords={"x": x, "y": y, "t": np.concatenate([[0.0], times])},
                        variables={"w": Variable(("sample", "t", "x", "y"), dtype, {"long_name": "vorticity"})},
                        static={"f": (("x", "y"), fno_forcing(x, y))})
        return ImportPlan("navier-stokes", layout, n, read, periodic=True, close=arrays.close)

