"""Dataset files: netCDF4-style HDF5 that both ``h5py`` and ``xarray`` (engine ``h5netcdf``) read.

A file is created once with every variable at its full size (contiguous, allocated up front), so
writing a chunk of samples only fills raw data and never changes HDF5 metadata; after each chunk the
file is flushed and the samples are marked in ``sample_complete(sample)``. A kill therefore loses at
most the chunk in flight, and a rerun resumes from the marks. The root attribute ``complete`` turns
to 1 only after the last sample. Who may write a file, and how files are replaced, follows
:mod:`pde_data.output_files`.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5netcdf
import h5py
import numpy as np

from pde_data.family import Layout
from pde_data.output_files import check_folder_writable, shown, temp_path
from solvers.errors import ConfigError

#: per-sample completion marks (uint8 0/1); lets readers of a partial file see what is valid
COMPLETE_MARKS = "sample_complete"


def _dcpl_allocated() -> h5py.h5p.PropDCID:
    """Dataset creation properties: storage allocated at creation, never pre-filled."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return dcpl


#: what h5py raises on a damaged or foreign file besides OSError (bad attribute data, broken
#: object headers, undecodable strings): reading such a file is a user problem, not a bug
DAMAGED_FILE_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, UnicodeDecodeError,
                       OverflowError)


def read_attrs(path: str | Path) -> dict[str, Any] | None:
    """Root attributes of an existing file, or ``None`` if it is not a readable HDF5 file (or is damaged)."""
    try:
        with h5py.File(path, "r") as f:
            return {k: attr_to_python(v) for k, v in f.attrs.items()}
    except DAMAGED_FILE_ERRORS:
        return None


def open_checked(path: str | Path, locking: bool = True, require_pdeop: bool = True) -> h5py.File:
    """Open a dataset file read-only after reading all of its metadata; the caller closes it.

    Every root attribute, every variable's attributes, shape, dtype and dimension scales are read
    once, so that a damaged file (bit flips in metadata, truncation) or a foreign one fails here
    with one clear message rather than deep inside a reader. Raw data carry no checksums: flipped
    bits inside stored arrays are not detected.

    Parameters
    ----------
    path
        The file.
    locking
        Use HDF5's file locking (pass False to read a file that a pdeop writer holds open).
    require_pdeop
        Also require a pdeop dataset: a ``config`` attribute holding JSON and ``sample_complete``
        marks.

    Raises
    ------
    ConfigError
        Missing or not a regular file; not HDF5 (or its first bytes are damaged); truncated;
        damaged metadata (naming HDF5's reason); with ``require_pdeop``, not a pdeop dataset or a
        ``config`` attribute that is not valid JSON. The message says what is wrong, not what to do.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{shown(path)} does not exist")
    if not path.is_file():
        raise ConfigError(f"{shown(path)} is not a regular file")
    try:
        f = h5py.File(path, "r", locking=locking)
    except DAMAGED_FILE_ERRORS as exc:
        reason = _reason(exc)
        if "truncated file" in reason:
            raise ConfigError(f"{shown(path)} is truncated ({reason.split('(', 1)[-1].rstrip(')')})") from None
        raise ConfigError(f"{shown(path)} is not an HDF5 file, or its first bytes are damaged ({reason})") from None
    try:
        attrs = {k: attr_to_python(v) for k, v in f.attrs.items()}
        for name, dset in f.items():
            if not isinstance(dset, h5py.Dataset):
                continue
            _ = (dset.shape, dset.dtype, dict(dset.attrs), [list(dset.dims[i].keys()) for i in range(dset.ndim)])
        if require_pdeop:
            if "config" not in attrs or COMPLETE_MARKS not in f:
                raise ConfigError(f"{shown(path)} is not a pdeop dataset (it has no 'config' attribute or "
                                  f"'{COMPLETE_MARKS}' marks)")
            json.loads(str(attrs["config"]))
    except ConfigError:
        f.close()
        raise
    except DAMAGED_FILE_ERRORS as exc:
        f.close()
        raise ConfigError(f"{shown(path)} is damaged: {_reason(exc)}") from None
    return f


def _reason(exc: BaseException) -> str:
    """The first line of an h5py error, without its noise."""
    text = getattr(exc, "strerror", None) or str(exc).strip("'\" ")
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def create(path: Path, layout: Layout, n_samples: int, attrs: Mapping[str, Any]) -> None:
    """Create the dataset file at ``path`` with all variables allocated and no sample written.

    The file is built under a temporary name unique to this process
    (:func:`~pde_data.output_files.temp_path`) and renamed into place, so an interrupted
    creation never leaves a broken file at ``path``; on failure only that temporary file is removed.

    The whole file's blocks are reserved before it is renamed into place, so a disk too small
    for it fails here (and not halfway through the samples).

    Raises
    ------
    ConfigError
        If the file system refuses the file (no space left, file too large, read-only...).
    """
    tmp = temp_path(path, keep_suffix=False)
    sizes = layout.sizes(n_samples)
    try:
        with h5netcdf.File(tmp, "w") as f:
            f.dimensions = sizes
            f.create_variable("sample", ("sample",), "int64", data=np.arange(n_samples))
            for name, values in layout.coords.items():
                values = np.asarray(values)
                f.create_variable(name, (name,), values.dtype, data=values)
            for name, (dims, values) in layout.static.items():
                values = np.asarray(values)
                f.create_variable(name, tuple(dims), values.dtype, data=values)
            for name, var in layout.variables.items():
                if var.dims[0] != "sample":
                    raise ValueError(f"per-sample variable {name!r} must have 'sample' as first dim")
                v = f.create_variable(name, var.dims, np.dtype(var.dtype), dcpl=_dcpl_allocated())
                v.attrs.update(dict(var.attrs))
            marks = f.create_variable(COMPLETE_MARKS, ("sample",), "uint8", data=np.zeros(n_samples, np.uint8))
            marks.attrs["long_name"] = "1 where the sample has been computed and stored"
            f.attrs.update({k: _attr_value(v) for k, v in {**layout.attrs, **attrs}.items()})
            f.attrs["complete"] = np.int8(0)
        _reserve_blocks(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        reason = getattr(exc, "strerror", None) or (str(exc).strip().splitlines() or ["I/O error"])[0]
        raise ConfigError(f"cannot create {shown(path)}: {reason}; free space or choose another --out") from None
    finally:
        tmp.unlink(missing_ok=True)


def _reserve_blocks(path: Path) -> None:
    """Reserve the disk blocks of the whole (sparse) file now, so that a full disk shows here, at creation.

    HDF5 sets the file's size at creation but writes the samples' blocks only as they come; without
    the reservation a disk that fills up meanwhile would fail in the middle of a write. File systems
    that cannot reserve (copy-on-write ones) are left as they are.
    """
    with open(path, "r+b") as stream:
        try:
            os.posix_fallocate(stream.fileno(), 0, os.fstat(stream.fileno()).st_size)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                return
            raise


class DatasetWriter:
    """Fills the per-sample variables of a file made by :func:`create`.

    Use as a context manager; :meth:`write` stores a chunk and flushes it, :meth:`finish` marks the
    file complete.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = h5py.File(self.path, "r+")
        self._marks = self._file[COMPLETE_MARKS]

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._file.id.valid:
            self._file.close()

    @property
    def complete(self) -> bool:
        """Whether the file is marked complete."""
        return bool(self._file.attrs.get("complete", 0))

    def written(self) -> np.ndarray:
        """Boolean mask of the samples already stored."""
        return self._marks[:].astype(bool)

    def write(self, indices: Sequence[int], arrays: Mapping[str, np.ndarray]) -> None:
        """Store the rows of ``arrays`` for samples ``indices`` and mark them complete.

        Data are flushed to disk before the marks are set, so a mark always means valid data.
        """
        indices = np.asarray(indices, dtype=np.int64)
        order = np.argsort(indices, kind="stable")
        for name, values in arrays.items():
            dset = self._file[name]
            values = np.asarray(values)
            if values.shape[0] != len(indices) or values.shape[1:] != dset.shape[1:]:
                raise ValueError(
                    f"variable {name!r}: got shape {values.shape}, expected "
                    f"({len(indices)}, {', '.join(map(str, dset.shape[1:]))})"
                )
            values = values.astype(dset.dtype, copy=False)
            for row in order:  # increasing file offsets
                dset[indices[row]] = values[row]
        self._file.flush()
        marks = self._marks[:]
        marks[indices] = 1
        self._marks[:] = marks
        self._file.flush()

    def record_run(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` (how this run computes: workers, scheduler kind, device) to the root
        attribute ``provenance``, a JSON list with one entry per run that computed samples."""
        runs = json.loads(attr_to_python(self._file.attrs.get("provenance", "[]")))
        runs.append(dict(record))
        self._file.attrs["provenance"] = json.dumps(runs, sort_keys=True)
        self._file.flush()

    def finish(self, attrs: Mapping[str, Any] | None = None) -> None:
        """Set ``complete = 1`` (and any final attributes) once every sample is stored."""
        if not self.written().all():
            raise RuntimeError("finish() called before every sample was written")
        for key, value in (attrs or {}).items():
            self._file.attrs[key] = _attr_value(value)
        self._file.attrs["complete"] = np.int8(1)
        self._file.flush()


def check_writable(path: Path) -> None:
    """Raise ConfigError unless a file can be created at ``path`` (parents are created if needed).

    Catches a folder, a path under a regular file, a read-only or unwritable folder and names the
    file system refuses (too long, invalid characters) before any work starts.
    """
    if path.exists() and path.is_dir():
        raise ConfigError(f"--out {shown(path)} is a directory; give a file name such as {shown(path / 'data.h5')}")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the folder {shown(parent)} for --out: {exc.strerror or exc}") from None
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"cannot write to {shown(path)}: permission denied; choose another --out")
    try:
        check_folder_writable(parent, "--out")
    except ConfigError as exc:
        raise ConfigError(f"{exc}; choose another --out") from None


def _attr_value(value: Any) -> Any:
    """Attribute values netCDF understands: numbers, strings, 1-D arrays (dicts become JSON)."""
    if isinstance(value, bool):
        return np.int8(value)
    if isinstance(value, (dict, list, tuple)) and not _numeric_sequence(value):
        return json.dumps(value, sort_keys=True, allow_nan=False)
    return value


def _numeric_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ) and len(value) > 0


def attr_to_python(value: Any) -> Any:
    """Plain Python value of an HDF5 attribute (bytes → str, NumPy scalars/arrays → numbers/lists)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.item() if value.size == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
