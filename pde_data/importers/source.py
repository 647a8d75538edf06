"""What a file to import holds, found without reading its arrays: container kind and array shapes.

Three containers are read: HDF5 (PDEBench, PDEArena, and MATLAB v7.3 ``.mat`` files, which are HDF5
with a 512-byte MATLAB header and the axes in reverse order), MATLAB v5 ``.mat`` (``scipy.io``) and
NumPy ``.npy``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Literal

import numpy as np

from solvers.errors import ConfigError

#: how a MATLAB v7.3 file starts (its HDF5 user block)
MATLAB_HEADER = b"MATLAB 7.3 MAT-file"


@dataclasses.dataclass(frozen=True)
class SourceInventory:
    """The arrays of a source file and their shapes, as its container stores them.

    Attributes
    ----------
    path
        The source file.
    container
        ``hdf5``, ``mat5`` or ``npy``.
    entries
        Array name (HDF5 path such as ``train/u``; ``""`` for a ``.npy`` file) -> shape in the
        container's own order (h5py order for HDF5, i.e. reversed from MATLAB's for v7.3 files).
    matlab
        Whether the file is a MATLAB ``.mat`` file (v5, or v7.3 recognised by its header).
    attrs
        Root attributes (HDF5) as plain values.
    """

    path: Path
    container: Literal["hdf5", "mat5", "npy"]
    entries: dict[str, tuple[int, ...]]
    matlab: bool = False
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def has(self, *names: str) -> bool:
        """Whether every one of ``names`` is an array of the file."""
        return all(name in self.entries for name in names)

    def describe(self) -> str:
        """``name (shape), ...`` of the arrays found (at most 12, then a count)."""
        items = [f"{name or 'array'} {tuple(shape)}" for name, shape in sorted(self.entries.items())]
        more = f", and {len(items) - 12} more" if len(items) > 12 else ""
        return (", ".join(items[:12]) + more) or "no arrays"


def inventory(path: str | Path) -> SourceInventory:
    """Open ``path`` just enough to list its arrays and their shapes.

    Raises
    ------
    ConfigError
        If the file does not exist or is none of HDF5, MATLAB v5 and NumPy ``.npy``.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"the file to import, {path}, does not exist")
    with open(path, "rb") as handle:
        head = handle.read(128)
    if h5py.is_hdf5(path):
        entries: dict[str, tuple[int, ...]] = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: entries.__setitem__(name, tuple(obj.shape))
                         if isinstance(obj, h5py.Dataset) else None)
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
        return SourceInventory(path, "hdf5", entries, head.startswith(MATLAB_HEADER), attrs)
    if head.startswith(b"\x93NUMPY"):
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        return SourceInventory(path, "npy", {"": tuple(array.shape)})
    if head.startswith(b"MATLAB 5.0 MAT-file"):
        from scipy.io import whosmat

        entries = {name: tuple(shape) for name, shape, _ in whosmat(str(path))}
        return SourceInventory(path, "mat5", entries, matlab=True)
    raise ConfigError(f"{path} is neither HDF5 (also MATLAB v7.3), MATLAB v5 .mat nor NumPy .npy; "
                      f"nothing to import")


def sha256(path: str | Path, block: int = 1 << 20) -> str:
    """Hex SHA-256 of the file's bytes, read in ``block``-byte pieces (files larger than memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for piece in iter(lambda: handle.read(block), b""):
            digest.update(piece)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return value.item() if value.size == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
