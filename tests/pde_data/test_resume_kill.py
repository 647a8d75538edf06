"""A real crash: `pdeop generate` killed with SIGKILL mid-run resumes to the uninterrupted result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

from pde_data.storage import COMPLETE_MARKS

# a small Navier-Stokes run: 32^2 internal grid, stored at 16^2, 2 units of time
ARGS = ["generate", "navier-stokes", "--samples", "6", "--chunk-size", "1", "--set", "internal_resolution=32",
        "--set", "resolution=16", "--set", "dt=2e-3", "--set", "T=2", "--quiet"]


def _pdeop(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HDF5_USE_FILE_LOCKING": "FALSE"}
    return subprocess.Popen([sys.executable, "-m", "operators.cli", *args], env=env, **kwargs)


def _marks(path) -> np.ndarray:
    try:
        with h5py.File(path, "r", locking=False) as f:
            return f[COMPLETE_MARKS][:]
    except (OSError, KeyError):
        return np.zeros(0)


def test_sigkill_then_rerun_equals_uninterrupted(tmp_path):
    """SIGKILL after at least one stored chunk loses at most the chunk in flight; rerunning finishes the
    file and every array equals a run that was never interrupted."""
    ref, run = tmp_path / "ref.h5", tmp_path / "run.h5"
    assert _pdeop(*ARGS, "--out", str(ref)).wait(timeout=300) == 0

    proc = _pdeop(*ARGS, "--out", str(run))
    deadline = time.monotonic() + 300
    while _marks(run).sum() < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    if killed:
        with h5py.File(run, "r", locking=False) as f:
            assert f.attrs["complete"] == 0
    assert _pdeop(*ARGS, "--out", str(run)).wait(timeout=300) == 0
    with h5py.File(ref, "r") as a, h5py.File(run, "r") as b:
        assert b.attrs["complete"] == 1
        assert np.array_equal(a["w"][:], b["w"][:])
        assert b[COMPLETE_MARKS][:].all()
