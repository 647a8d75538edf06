"""Arrays of a MATLAB ``.mat`` file in MATLAB's axis order, read a block of the first axis at a time.

A v7.3 file is HDF5 and h5py sees every array with its axes reversed (MATLAB stores column-major), so a
MATLAB ``u(N, X, Y, T)`` is the HDF5 dataset of shape ``(T, Y, X, N)``; a block of samples is a slice
of its last axis, read and transposed (streaming). A v5 file is read whole by ``scipy.io.loadmat``.
"""

from __future__ import annotations

import numpy as np

from pde_data.importers.source import SourceInventory


def matlab_shape(source: SourceInventory, name: str) -> tuple[int, ...]:
    """Shape of array ``name`` in MATLAB's order."""
    shape = source.entries[name]
    return tuple(reversed(shape)) if source.container == "hdf5" else shape


class MatlabArrays:
    """Read access to the arrays of a ``.mat`` file (v5 or v7.3) in MATLAB's axis order."""

    def __init__(self, source: SourceInventory) -> None:
        self._h5 = None
        self._loaded: dict[str, np.ndarray] = {}
        if source.container == "hdf5":
            import h5py

            self._h5 = h5py.File(source.path, "r")
        else:
            from scipy.io import loadmat

            self._loaded = {k: v for k, v in loadmat(str(source.path)).items() if not k.startswith("__")}

    def block(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start .. stop - 1`` of the first (MATLAB) axis of ``name``, in MATLAB's axis order."""
        if self._h5 is not None:
            dset = self._h5[name]
            values = dset[(slice(None),) * (dset.ndim - 1) + (slice(start, stop),)]
            return np.ascontiguousarray(np.transpose(values))
        return self._loaded[name][start:stop]

    def whole(self, name: str) -> np.ndarray:
        """All of ``name`` in MATLAB's axis order."""
        if self._h5 is not None:
            return np.transpose(self._h5[name][()])
        return np.asarray(self._loaded[name])

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._h5 is not None and self._h5.id.valid:
            self._h5.close()
