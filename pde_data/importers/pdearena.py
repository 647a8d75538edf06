"""PDEArena files (``NavierStokes2D_train_*.h5`` ...): groups ``train`` / ``valid`` / ``test`` (one or several
per file), each with fields ``u``, ``vx``, ``vy`` of shape ``(N, T, X, Y)``, per-sample scalars such as
``buo_y(N)``, and the coordinates ``t(N, T)``, ``x(N, X)``, ``y(N, Y)``.

They become one pdeop file: the samples of ``train``, then ``valid``, then ``test`` (so pdeop's splits,
first ``n_train`` and last ``n_test``, can follow PDEArena's; the sizes are kept in the attribute
``source_splits``), fields of dims ``(sample, t, x, y)``, scalars of dims ``(sample,)``, on the first
sample's coordinates (every sample must have the same).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from pde_data.family import Layout, Variable
from pde_data.importers.plan import ImportFormat, ImportPlan, register_format
from pde_data.importers.source import SourceInventory
from solvers.errors import ConfigError

SPLITS = ("train", "valid", "test")
COORDS = ("t", "x", "y")


def _splits(source: SourceInventory) -> list[str]:
    return [s for s in SPLITS if source.has(f"{s}/u", *(f"{s}/{c}" for c in COORDS))]


@register_format("pdearena")
class PdeArena(ImportFormat):
    """PDEArena HDF5 with ``train`` / ``valid`` / ``test`` groups."""

    summary = "PDEArena HDF5 (train/valid/test groups with u, vx, vy, buo_y, t, x, y)"

    @staticmethod
    def matches(source: SourceInventory) -> bool:
        splits = _splits(source)
        return source.container == "hdf5" and bool(splits) and len(source.entries[f"{splits[0]}/u"]) == 4

    @staticmethod
    def plan(source: SourceInventory, settings: dict[str, Any]) -> ImportPlan:
        import h5py

        splits = _splits(source)
        first = splits[0]
        n_first, nt, nx, ny = source.entries[f"{first}/u"]
        names = sorted(name.split("/", 1)[1] for name in source.entries
                       if name.startswith(f"{first}/") and name.count("/") == 1 and name.split("/")[1] not in COORDS)
        fields = [n for n in names if source.entries[f"{first}/{n}"] == (n_first, nt, nx, ny)]
        scalars = [n for n in names if source.entries[f"{first}/{n}"] == (n_first,)]
        sizes = {s: source.entries[f"{s}/u"][0] for s in splits}
        for s in splits:
            for n in fields + scalars:
                expected = (sizes[s], nt, nx, ny) if n in fields else (sizes[s],)
                if source.entries.get(f"{s}/{n}") != expected:
                    raise ConfigError(f"{source.path}: {s}/{n} has shape {source.entries.get(f'{s}/{n}')}, "
                                      f"expected {expected} like {first}")
        f = h5py.File(source.path, "r")
        coords = {}
        for c in COORDS:
            values = [np.asarray(f[f"{s}/{c}"][()], dtype=np.float64) for s in splits]
            values = [v.reshape(len(v), -1) if v.ndim > 1 else v[None] for v in values]
            if any(not np.all(v == values[0][:1]) for v in values):
                f.close()
                raise ConfigError(f"{source.path}: the samples have different {c} coordinates; pdeop files share one")
            coords[c] = values[0][0]
        starts = np.cumsum([0] + [sizes[s] for s in splits])

        def read(start: int, stop: int) -> dict[str, np.ndarray]:
            parts: dict[str, list[np.ndarray]] = {n: [] for n in fields + scalars}
            for s, begin, end in zip(splits, starts[:-1], starts[1:]):
                lo, hi = max(start, begin), min(stop, end)
                if lo >= hi:
                    continue
                for n in parts:
                    parts[n].append(f[f"{s}/{n}"][lo - begin:hi - begin])
            return {n: np.concatenate(p) for n, p in parts.items()}

        variables = {n: Variable(("sample", "t", "x", "y"), f[f"{first}/{n}"].dtype.name) for n in fields}
        variables.update({n: Variable(("sample",), f[f"{first}/{n}"].dtype.name) for n in scalars})
        layout = Layout(coords=coords, variables=variables)
        return ImportPlan("pdearena-navier-stokes" if "buo_y" in scalars else "pdearena", layout, int(starts[-1]),
                          read, periodic=False, close=f.close, extra={"source_splits": json.dumps(sizes)})
