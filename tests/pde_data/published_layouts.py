"""Small files in the published layouts ``pdeop import`` reads, built here (no downloads) from random arrays.

Each builder writes the file the way its origin does (MATLAB v7.3: HDF5 with the MATLAB user block and
every array stored with its axes reversed; MATLAB v5 through ``scipy.io.savemat``; PDEBench and PDEArena
through h5py; exponax through ``numpy.save``) and returns the arrays in the order their users index them.
Spatial sizes differ along x and y so that a swapped axis cannot pass.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

MATLAB_USER_BLOCK = 512


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _matlab_v73(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` (MATLAB axis order) as MATLAB v7.3 does: reversed axes, 512-byte header."""
    with h5py.File(path, "w", userblock_size=MATLAB_USER_BLOCK) as f:
        for name, values in arrays.items():
            f.create_dataset(name, data=np.ascontiguousarray(values.T))
    with open(path, "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan 1 00:00:00 2026 HDF5 schema 1.00 .")


def fno_navier_stokes(path: Path, n: int = 3, nx: int = 8, ny: int = 6, nt: int = 4, seed: int = 0) -> dict:
    """``a(N, X, Y)``, ``u(N, X, Y, T)``, ``t(1, T)`` float32 in a MATLAB v7.3 file."""
    rng = _rng(seed)
    arrays = {"a": rng.standard_normal((n, nx, ny)).astype(np.float32),
              "u": rng.standard_normal((n, nx, ny, nt)).astype(np.float32),
              "t": np.arange(1.0, nt + 1).reshape(1, nt)}
    _matlab_v73(path, arrays)
    return arrays


def fno_darcy(path: Path, n: int = 3, nx: int = 7, ny: int = 5, seed: int = 1) -> dict:
    """``coeff(N, X, Y)``, ``sol(N, X, Y)`` float64 in a MATLAB v5 file."""
    from scipy.io import savemat

    rng = _rng(seed)
    arrays = {"coeff": rng.choice([4.0, 12.0], (n, nx, ny)), "sol": rng.standard_normal((n, nx, ny))}
    savemat(path, arrays)
    return arrays


def fno_burgers(path: Path, n: int = 4, nx: int = 16, seed: int = 2) -> dict:
    """``a(N, X)``, ``u(N, X)``, ``visc`` in a MATLAB v7.3 file."""
    rng = _rng(seed)
    arrays = {"a": rng.standard_normal((n, nx)), "u": rng.standard_normal((n, nx)), "visc": np.array([[0.1]])}
    _matlab_v73(path, arrays)
    return arrays


def pdebench_1d(folder: Path, n: int = 3, nt: int = 5, nx: int = 12, seed: int = 3) -> tuple[Path, dict]:
    """``1D_Burgers_Sols_Nu0.001.hdf5``: ``tensor(N, T, X)``, ``x-coordinate(X)``, ``t-coordinate(T + 1)``."""
    rng = _rng(seed)
    arrays = {"tensor": rng.standard_normal((n, nt, nx)).astype(np.float32),
              "x-coordinate": ((np.arange(nx) + 0.5) / nx).astype(np.float32),
              "t-coordinate": np.linspace(0.0, 2.0, nt + 1).astype(np.float32)}
    path = folder / "1D_Burgers_Sols_Nu0.001.hdf5"
    with h5py.File(path, "w") as f:
        for name, values in arrays.items():
            f.create_dataset(name, data=values)
    return path, arrays


def pdebench_darcy(folder: Path, n: int = 3, nx: int = 6, ny: int = 4, seed: int = 4) -> tuple[Path, dict]:
    """``2D_DarcyFlow_beta0.5_Train.hdf5``: ``nu(N, X, Y)``, ``tensor(N, 1, X, Y)`` and the coordinates."""
    rng = _rng(seed)
    arrays = {"nu": rng.uniform(0.1, 1.0, (n, nx, ny)).astype(np.float32),
              "tensor": rng.standard_normal((n, 1, nx, ny)).astype(np.float32),
              "x-coordinate": (np.arange(nx) + 0.5) / nx, "y-coordinate": (np.arange(ny) + 0.5) / ny}
    path = folder / "2D_DarcyFlow_beta0.5_Train.hdf5"
    with h5py.File(path, "w") as f:
        for name, values in arrays.items():
            f.create_dataset(name, data=values)
    return path, arrays


def pdebench_ns(path: Path, n: int = 2, nt: int = 3, nx: int = 6, ny: int = 4, seed: int = 5) -> dict:
    """``velocity(N, T, X, Y, 2)``, ``force(N, X, Y, 2)``, ``particles(N, T, X, Y, 1)``, ``t(N, T)``."""
    rng = _rng(seed)
    arrays = {"velocity": rng.standard_normal((n, nt, nx, ny, 2)).astype(np.float32),
              "force": rng.standard_normal((n, nx, ny, 2)).astype(np.float32),
              "particles": rng.uniform(size=(n, nt, nx, ny, 1)).astype(np.float32),
              "t": np.tile(np.linspace(0, 1, nt), (n, 1)).astype(np.float32)}
    with h5py.File(path, "w") as f:
        for name, values in arrays.items():
            f.create_dataset(name, data=values)
    return arrays


def pdebench_seeds(folder: Path, n: int = 3, nt: int = 4, nx: int = 6, ny: int = 5, channels: int = 2,
                   seed: int = 6) -> tuple[Path, list[np.ndarray], dict]:
    """``2D_diff-react_NA_NA.h5``: groups ``0000``... with ``data(T, X, Y, C)`` and ``grid/x, y, t``."""
    rng = _rng(seed)
    grid = {"x": np.linspace(-1, 1, nx), "y": np.linspace(-1, 1, ny), "t": np.linspace(0, 5, nt)}
    data = [rng.standard_normal((nt, nx, ny, channels)).astype(np.float32) for _ in range(n)]
    path = folder / "2D_diff-react_NA_NA.h5"
    with h5py.File(path, "w") as f:
        for i, values in enumerate(data):
            group = f.create_group(f"{i:04d}")
            group.create_dataset("data", data=values)
            for name, coords in grid.items():
                group.create_dataset(f"grid/{name}", data=coords)
    return path, data, grid


def pdearena(path: Path, sizes: dict[str, int] | None = None, nt: int = 3, nx: int = 6, ny: int = 5,
             seed: int = 7) -> dict[str, dict[str, np.ndarray]]:
    """Groups ``train`` / ``valid`` / ``test`` with ``u, vx, vy(N, T, X, Y)``, ``buo_y(N)``, ``t, x, y``."""
    rng = _rng(seed)
    sizes = sizes or {"train": 2, "valid": 1, "test": 2}
    t, x, y = np.linspace(0, 21, nt), np.linspace(0, 32, nx), np.linspace(0, 32, ny)
    groups = {}
    with h5py.File(path, "w") as f:
        for split, n in sizes.items():
            arrays = {name: rng.standard_normal((n, nt, nx, ny)).astype(np.float32) for name in ("u", "vx", "vy")}
            arrays["buo_y"] = rng.uniform(0.2, 0.5, n)
            arrays.update({"t": np.tile(t, (n, 1)), "x": np.tile(x, (n, 1)), "y": np.tile(y, (n, 1))})
            group = f.create_group(split)
            for name, values in arrays.items():
                group.create_dataset(name, data=values)
            groups[split] = arrays
    return groups


def exponax(path: Path, n: int = 3, nt: int = 4, channels: int = 2, nx: int = 8, ny: int = 6, seed: int = 8) -> np.ndarray:
    """``[sample, time, channel, x, y]`` float32 saved with ``numpy.save``."""
    array = _rng(seed).standard_normal((n, nt, channels, nx, ny)).astype(np.float32)
    np.save(path, array)
    return array
