"""`pdeop generate --device`: the PyTorch integrators through the pipeline, recorded in the file."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("torch_single_thread")

from pde_data.pipeline import generate_dataset, resolve_config  # noqa: E402
from solvers.errors import ConfigError  # noqa: E402

SETTINGS = {
    "navier-stokes": ["internal_resolution=16", "resolution=8", "dt=4e-3", "T=1", "scheme=etdrk4"],
    "kuramoto-sivashinsky": ["internal_resolution=64", "resolution=32", "T=2", "warmup_steps=10", "L=[20, 24]"],
    "burgers": ["internal_resolution=128", "resolution=64", "T=0.1", "dt=1e-3"],
}
VARIABLE = {"navier-stokes": "w", "kuramoto-sivashinsky": "u", "burgers": "u"}


@pytest.mark.parametrize("problem", sorted(SETTINGS))
def test_torch_cpu_file_matches_the_numpy_file(tmp_path, problem: str) -> None:
    """The torch path on the CPU stores the NumPy path's snapshots to float32 rounding: the float64 states
    agree to ~1e-15 relative, so their float32 roundings differ by at most one unit in the last place
    (2^-23 relative to each value, plus the smallest normal for values near zero)."""
    config = resolve_config(problem, overrides=SETTINGS[problem], samples=3, seed=1)
    generate_dataset(config, tmp_path / "numpy.h5", progress=False)
    generate_dataset(config, tmp_path / "torch.h5", progress=False, device="torch-cpu")
    with h5py.File(tmp_path / "numpy.h5") as a, h5py.File(tmp_path / "torch.h5") as b:
        expected, actual = a[VARIABLE[problem]][()], b[VARIABLE[problem]][()]
        assert b.attrs["device"] == "torch-cpu" and a.attrs["device"] == "cpu"
    ulp = np.abs(expected).astype(np.float64) * 2.0**-23 + np.finfo(np.float32).tiny
    assert np.all(np.abs(actual.astype(np.float64) - expected) <= ulp)
    assert np.abs(expected).max() > 0.1


def test_resume_on_another_kind_of_device_is_refused(tmp_path) -> None:
    """A file begun with the torch path is resumed only by the torch path (bits differ between devices)."""
    config = resolve_config("burgers", overrides=SETTINGS["burgers"], samples=2, seed=1)
    path = tmp_path / "b.h5"
    generate_dataset(config, path, progress=False, device="torch-cpu")
    with h5py.File(path, "r+") as f:
        f.attrs["complete"] = np.int8(0)
    with pytest.raises(ConfigError, match=r"written with --device torch-cpu; resume it with the same kind"):
        generate_dataset(config, path, progress=False)
    assert generate_dataset(config, path, progress=False, device="torch-cpu")["computed"] == 0


def test_families_without_torch_integrators_refuse_a_torch_device(tmp_path) -> None:
    """Darcy solves sparse systems on the CPU: --device torch-cpu is a ConfigError naming the remedy, no file."""
    config = resolve_config("darcy", overrides=["resolution=17"], samples=2)
    with pytest.raises(ConfigError, match="darcy has no PyTorch integrators .* drop --device torch-cpu"):
        generate_dataset(config, tmp_path / "d.h5", progress=False, device="torch-cpu")
    assert not (tmp_path / "d.h5").exists()


def test_absent_gpu_is_refused_before_the_file_is_made(tmp_path) -> None:
    """--device cuda without a GPU (or with a CPU-only torch) is a ConfigError and leaves no file."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    config = resolve_config("burgers", overrides=SETTINGS["burgers"], samples=2)
    with pytest.raises(ConfigError, match="--device cuda"):
        generate_dataset(config, tmp_path / "b.h5", progress=False, device="cuda")
    assert not (tmp_path / "b.h5").exists()
