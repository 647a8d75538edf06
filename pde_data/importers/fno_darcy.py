"""The original FNO Darcy files (``piececonst_r421_N1024_smooth1.mat`` ...): MATLAB v5 with ``coeff(N, X, Y)``
the coefficient and ``sol(N, X, Y)`` the solution on the vertex grid of ``X`` points per side, boundary
included (``x_i = i / (X - 1)``), for ``f = 1`` (``--set forcing=`` for another).

They become the ``darcy`` layout: ``a(sample, x, y)`` and ``u(sample, x, y)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pde_data.family import Layout, Variable
from pde_data.importers.matlab import MatlabArrays, matlab_shape
from pde_data.importers.plan import ImportFormat, ImportPlan, register_format, setting
from pde_data.importers.source import SourceInventory


@register_format("fno-darcy")
class FnoDarcy(ImportFormat):
    """FNO Darcy ``.mat`` (``coeff``, ``sol``)."""

    summary = "FNO Darcy .mat (coeff, sol; MATLAB v5 or v7.3)"

    @staticmethod
    def matches(source: SourceInventory) -> bool:
        if source.container not in ("hdf5", "mat5") or not source.has("coeff", "sol"):
            return False
        coeff = matlab_shape(source, "coeff")
        return len(coeff) == 3 and coeff == matlab_shape(source, "sol")

    @staticmethod
    def plan(source: SourceInventory, settings: dict[str, Any]) -> ImportPlan:
        n, nx, ny = matlab_shape(source, "coeff")
        arrays = MatlabArrays(source)
        dtype = arrays.block("sol", 0, 1).dtype.name
        forcing = setting(settings, "forcing", 1.0)

        def read(start: int, stop: int) -> dict[str, np.ndarray]:
            return {"a": arrays.block("coeff", start, stop), "u": arrays.block("sol", start, stop)}

        layout = Layout(coords={"x": np.linspace(0.0, 1.0, nx), "y": np.linspace(0.0, 1.0, ny)},
                        variables={"a": Variable(("sample", "x", "y"), dtype, {"long_name": "coefficient"}),
                                   "u": Variable(("sample", "x", "y"), dtype, {"long_name": "solution"})},
                        attrs={"forcing": forcing})
        return ImportPlan("darcy", layout, n, read, periodic=False, close=arrays.close)
