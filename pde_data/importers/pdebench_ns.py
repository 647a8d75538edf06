"""PDEBench 2-D incompressible Navier-Stokes files (``ns_incom_inhom_2d_512-0.h5``): ``velocity(N, T, X, Y, 2)``,
``force(N, X, Y, 2)``, ``particles(N, T, X, Y, 1)`` and ``t(N, T)``.

They become ``vx``, ``vy``, ``particles`` of dims ``(sample, t, x, y)`` and the per-sample forcing ``fx``,
``fy`` of dims ``(sample, x, y)`` on the cell centres ``x_i = (i + 1/2) / X`` of the unit square; the
times are those of the first sample (the importer checks that every sample has them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pde_data.family import Layout, Variable
from pde_data.importers.plan import ImportFormat, ImportPlan, register_format
from pde_data.importers.source import SourceInventory
from solvers.errors import ConfigError


@register_format("pdebench-ns")
class PdeBenchNavierStokes(ImportFormat):
    """PDEBench 2-D incompressible Navier-Stokes ``velocity`` / ``force`` / ``particles``."""

    summary = "PDEBench 2-D incompressible NS HDF5 (velocity, force, particles, t)"

    @staticmethod
    def matches(source: SourceInventory) -> bool:
        if source.container != "hdf5" or not source.has("velocity", "force", "particles"):
            return False
        velocity = source.entries["velocity"]
        return len(velocity) == 5 and velocity[-1] == 2 and source.entries["force"] == (
            velocity[0], *velocity[2:])

    @staticmethod
    def plan(source: SourceInventory, settings: dict[str, Any]) -> ImportPlan:
        import h5py

        f = h5py.File(source.path, "r")
        n, nt, nx, ny, _ = f["velocity"].shape
        times = np.asarray(f["t"][()], dtype=np.float64) if "t" in f else np.arange(float(nt))
        times = times.reshape(-1, nt) if times.size != nt else times.reshape(1, nt)
        if not np.all(times == times[:1]):
            f.close()
            raise ConfigError(f"{source.path}: the samples have different times t; pdeop files share one time axis")
        dtype = f["velocity"].dtype.name
        field = ("sample", "t", "x", "y")

        def read(start: int, stop: int) -> dict[str, np.ndarray]:
            velocity, force = f["velocity"][start:stop], f["force"][start:stop]
            return {"vx": velocity[..., 0], "vy": velocity[..., 1], "particles": f["particles"][start:stop, ..., 0],
                    "fx": force[..., 0], "fy": force[..., 1]}

        layout = Layout(coords={"x": (np.arange(nx) + 0.5) / nx, "y": (np.arange(ny) + 0.5) / ny, "t": times[0]},
                        variables={"vx": Variable(field, dtype), "vy": Variable(field, dtype),
                                   "particles": Variable(field, f["particles"].dtype.name),
                                   "fx": Variable(("sample", "x", "y"), f["force"].dtype.name),
                                   "fy": Variable(("sample", "x", "y"), f["force"].dtype.name)})
        return ImportPlan("pdebench-incompressible-navier-stokes", layout, n, read, periodic=False, close=f.close)
