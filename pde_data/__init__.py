"""PDE problem families, random-field samplers, the generation pipeline, storage and loading.

Public names are imported lazily, so ``import pde_data`` stays light (no xarray, no torch).
"""

from __future__ import annotations

from solvers.lazy_exports import lazy_exports

_LAZY = {
    "open_dataset": "pde_data.loading",
    "make_datasets": "pde_data.loading",
    "make_dataset": "pde_data.loading",
    "fingerprint": "pde_data.loading",
    "DataConfig": "pde_data.loading",
    "DataBundle": "pde_data.loading",
    "Normalizers": "pde_data.loading",
    "StaticPairs": "pde_data.samples",
    "TrajectoryWindows": "pde_data.samples",
    "UnitGaussianNormalizer": "pde_data.normalization",
    "periodic_grf": "pde_data.random_fields",
    "periodic_grf_variance": "pde_data.random_fields",
    "neumann_grf": "pde_data.random_fields",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
