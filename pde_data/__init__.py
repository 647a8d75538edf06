"""PDE problem families, random-field samplers, the generation pipeline, storage and loading.

Public names are imported lazily, so ``import pde_data`` stays light (no xarray, no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

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
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pde_data' has no attribute {name!r}")
