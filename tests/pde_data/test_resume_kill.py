"""Real crashes: `pdeop generate` killed with SIGKILL at random moments resumes to the uninterrupted result,
and an interrupted --overwrite never touches the old file before the new one is complete."""

from __future__ import annotations

import random
import signal
import time

import h5py
import numpy as np
import pytest

from pde_data.output_files import lock_path, partial_path
from pde_data.storage import COMPLETE_MARKS
from tests.pde_data.conftest import NS_ARGS, arrays, marks, pdeop

#: kill moments, in seconds after the writer took its lock (a fixed draw, so a failure reproduces)
_DRAW = random.Random(11)
KILL_DELAYS = [round(_DRAW.uniform(0.0, 1.5), 3) for _ in range(3)]


def _kill_after_lock(proc, out, delay: float) -> bool:
    """SIGKILL ``proc`` ``delay`` seconds after the lock file of ``out`` appears; False if it ended first."""
    deadline = time.monotonic() + 300
    while not lock_path(out).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return True


def _leftovers(folder, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if name in p.name and p.name != name)


def test_sigkill_then_rerun_equals_uninterrupted(tmp_path, ns_reference):
    """SIGKILL after at least one stored chunk loses at most the chunk in flight; rerunning finishes the
    file and every array equals a run that was never interrupted."""
    run = tmp_path / "run.h5"
    proc = pdeop(*NS_ARGS, "--out", str(run))
    deadline = time.monotonic() + 300
    while marks(run).sum() < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    if killed:
        with h5py.File(run, "r", locking=False) as f:
            assert f.attrs["complete"] == 0
    assert pdeop(*NS_ARGS, "--out", str(run)).wait(timeout=300) == 0
    with h5py.File(ns_reference, "r") as a, h5py.File(run, "r") as b:
        assert b.attrs["complete"] == 1
        assert np.array_equal(a["w"][:], b["w"][:])
        assert b[COMPLETE_MARKS][:].all()


@pytest.mark.slow
@pytest.mark.parametrize("delay", KILL_DELAYS)
def test_sigkill_at_a_random_moment_then_rerun_is_bit_identical(tmp_path, ns_reference, delay):
    """Killed at any moment (while creating the file, between chunks, while marking), the rerun of the same
    command gives every array of the uninterrupted file and leaves no temporary, partial or lock file."""
    run = tmp_path / "run.h5"
    _kill_after_lock(pdeop(*NS_ARGS, "--out", str(run)), run, delay)
    assert pdeop(*NS_ARGS, "--out", str(run)).wait(timeout=300) == 0
    expected, got = arrays(ns_reference), arrays(run)
    assert expected.keys() == got.keys()
    for name in expected:
        assert np.array_equal(expected[name], got[name]), name
    assert _leftovers(tmp_path, "run.h5") == []


@pytest.mark.slow
@pytest.mark.parametrize("delay", KILL_DELAYS[:2])
def test_sigkill_during_overwrite_keeps_the_old_file(tmp_path, ns_reference, delay):
    """--overwrite builds the new file beside the old one: killed at any moment, --out still holds the old
    file bit for bit (or, once replaced, the complete new one); the rerun resumes the partial file and
    ends with the uninterrupted result and nothing left beside it."""
    out = tmp_path / "data.h5"
    assert pdeop(*NS_ARGS, "--set", "viscosity=2e-3", "--samples", "2", "--out", str(out)).wait(timeout=300) == 0
    old = out.read_bytes()
    proc = pdeop(*NS_ARGS, "--overwrite", "--out", str(out))
    if _kill_after_lock(proc, out, delay) and out.read_bytes() != old:
        # killed after the replacement (between the rename and the exit): only the complete new file will do
        with h5py.File(out, "r", locking=False) as f:
            assert f.attrs["complete"] == 1
        assert not partial_path(out).exists()
    assert pdeop(*NS_ARGS, "--overwrite", "--out", str(out)).wait(timeout=300) == 0
    expected, got = arrays(ns_reference), arrays(out)
    for name in expected:
        assert np.array_equal(expected[name], got[name]), name
    assert not partial_path(out).exists() and _leftovers(tmp_path, "data.h5") == []
