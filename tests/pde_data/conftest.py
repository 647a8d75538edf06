"""Fixtures of the data-generation tests: the toy family, a tiny Navier–Stokes run as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from pde_data.storage import COMPLETE_MARKS
from tests.pde_data.toy_family import install

#: a tiny Navier-Stokes run (32^2 internal grid stored at 16^2, 11 snapshots, 6 samples one per chunk):
#: about a second of CPU, long enough to be interrupted between chunks
NS_ARGS = ["generate", "navier-stokes", "--samples", "6", "--chunk-size", "1", "--set", "internal_resolution=32",
           "--set", "resolution=16", "--set", "dt=2e-3", "--set", "T=2", "--quiet"]


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """Register the analytic ``toy`` family (presets under ``tmp_path``) and return ``tmp_path``."""
    install(monkeypatch, tmp_path)
    return tmp_path


def pdeop(*args: str, preexec_fn=None, **kwargs) -> subprocess.Popen:
    """Start ``python -m operators.cli ARGS`` (one thread; HDF5 locking off so tests can peek at the file)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PDEOP_THREADS": "1", "HDF5_USE_FILE_LOCKING": "FALSE"}
    return subprocess.Popen([sys.executable, "-m", "operators.cli", *args], env=env, preexec_fn=preexec_fn,
                            **kwargs)


def marks(path: Path) -> np.ndarray:
    """The completion marks of a dataset file being written (empty if it cannot be read yet)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return f[COMPLETE_MARKS][:]
    except (OSError, KeyError):
        return np.zeros(0)


def arrays(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of a file, by name."""
    with h5py.File(path, "r", locking=False) as f:
        return {name: f[name][()] for name in f}


@pytest.fixture(scope="session")
def ns_reference(tmp_path_factory) -> Path:
    """The uninterrupted :data:`NS_ARGS` file (made once per test session)."""
    path = tmp_path_factory.mktemp("ns-reference") / "ref.h5"
    assert pdeop(*NS_ARGS, "--out", str(path)).wait(timeout=600) == 0
    return path
