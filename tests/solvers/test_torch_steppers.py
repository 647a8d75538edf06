"""The PyTorch ports of the spectral integrators agree with the NumPy path (on the CPU) and keep its guards."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("torch_single_thread")
pytestmark = pytest.mark.usefixtures("torch_single_thread")

from solvers import torch_steppers  # noqa: E402
from solvers.burgers import burgers_stepper  # noqa: E402
from solvers.devices import check_device, on_device  # noqa: E402
from solvers.errors import ConfigError, StabilityError  # noqa: E402
from solvers.kuramoto_sivashinsky import kuramoto_sivashinsky_stepper  # noqa: E402
from solvers.navier_stokes import navier_stokes_stepper  # noqa: E402
from solvers.torch_steppers import DEVICE_MEMORY_FRACTION, TORCH_MEMORY_FACTOR, split_batches  # noqa: E402
from tests.solvers.vorticity_fields import kolmogorov_forcing, smooth_field  # noqa: E402

#: float64 agreement required of the ports (the issue's bound). The two paths differ only in their
#: FFT codes (pocketfft here, torch's pocketfft/MKL there): ~eps log2(n) ~ 1e-15 per transform,
#: carried through a few hundred steps of resolved, non-chaotic flows (growth O(1)); seen ~4e-16.
FLOAT64_BOUND = 1e-10


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


def _both(stepper, initial: np.ndarray, *args, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    kwargs.setdefault("out_dtype", np.float64)
    numpy_result = stepper.rollout(initial, *args, **kwargs)
    torch_result = on_device(stepper, "torch-cpu").rollout(initial, *args, **kwargs)
    return numpy_result, torch_result


@pytest.mark.parametrize("scheme, dt", [("classic", 2e-3), ("etdrk4", 0.02)])
def test_navier_stokes_port_matches_numpy(scheme: str, dt: float) -> None:
    """Forced 32^2 flow (std(w0) = 1, so advection matters), 80 steps of each scheme: torch == NumPy to 1e-10."""
    w0 = smooth_field(np.random.default_rng(0), 32, 3)
    stepper = navier_stokes_stepper(32, 1e-3, dt, kolmogorov_forcing(32), scheme)
    numpy_result, torch_result = _both(stepper, w0, 20, 4, stride=2)
    assert torch_result.shape == numpy_result.shape == (3, 5, 16, 16)
    assert np.abs(numpy_result[:, -1] - w0[:, ::2, ::2]).max() > 1e-2  # the flow moved: the check is not vacuous
    assert _relative(numpy_result, torch_result) < FLOAT64_BOUND


def test_kuramoto_sivashinsky_port_matches_numpy_with_a_length_per_sample() -> None:
    """KS with per-sample L (per-sample phi-function rows), warm-up and 100 recorded steps: torch == NumPy to 1e-10."""
    n = 64
    x = np.arange(n) / n
    u0 = np.stack([np.sin(2 * np.pi * x) + 0.5 * np.cos(4 * np.pi * x), np.cos(2 * np.pi * x)])
    stepper = kuramoto_sivashinsky_stepper(n, np.array([20.0, 24.0]), 0.05)
    numpy_result, torch_result = _both(stepper, u0, 20, 5, warmup_steps=10)
    assert _relative(numpy_result, torch_result) < FLOAT64_BOUND


def test_burgers_port_matches_numpy() -> None:
    """Burgers nu = 0.02 from a smooth wave steepening over 100 steps: torch == NumPy to 1e-10."""
    n = 128
    u0 = np.sin(2 * np.pi * np.arange(n) / n)[None] * np.array([[1.0], [0.5]])
    numpy_result, torch_result = _both(burgers_stepper(n, 0.02, 1e-3), u0, 25, 4)
    assert _relative(numpy_result, torch_result) < FLOAT64_BOUND


def test_float32_ports_follow_the_float64_solution() -> None:
    """float32 on the torch path tracks the float64 NumPy solution to float32 rounding.

    Each of the 80 steps adds ~eps32 log2(n) ~ 3e-7 relative (FFTs), accumulating like a random walk
    (~3e-6) on a resolved flow: 1e-4 leaves a margin of 30 and is still 1000x below O(1) errors.
    """
    w0 = smooth_field(np.random.default_rng(1), 32, 2)
    forcing = kolmogorov_forcing(32)
    reference = navier_stokes_stepper(32, 1e-3, 0.02, forcing, "etdrk4").rollout(w0, 20, 4, out_dtype=np.float64)
    single = navier_stokes_stepper(32, 1e-3, 0.02, forcing, "etdrk4", np.float32)
    result = on_device(single, "torch-cpu").rollout(w0, 20, 4, out_dtype=np.float64)
    assert 0 < _relative(reference, result) < 1e-4


def test_device_batches_give_the_same_trajectories(monkeypatch) -> None:
    """With device memory for two samples, five samples run in three device batches: results as one NumPy
    batch (to 1e-10) and progress reaches 1."""
    w0 = smooth_field(np.random.default_rng(2), 16, 5)
    stepper = navier_stokes_stepper(16, 1e-2, 5e-3, kolmogorov_forcing(16), "etdrk4")
    need = TORCH_MEMORY_FACTOR * stepper.bytes_per_sample
    monkeypatch.setattr(torch_steppers, "free_memory", lambda device: int(2.5 * need / DEVICE_MEMORY_FRACTION))
    seen: list[float] = []
    result = on_device(stepper, "torch-cpu").rollout(w0, 10, 2, out_dtype=np.float64, progress=seen.append)
    # batches of 2, 1 and 2 samples, three records each
    assert seen == pytest.approx([(2 * r / 3) / 5 for r in (1, 2, 3)] + [(2 + r / 3) / 5 for r in (1, 2, 3)]
                                 + [(3 + 2 * r / 3) / 5 for r in (1, 2, 3)])
    assert _relative(stepper.rollout(w0, 10, 2, out_dtype=np.float64), result) < FLOAT64_BOUND


def test_split_batches_fits_the_free_memory() -> None:
    """Batches are nearly equal, cover the batch in order and each fits the planned fraction of free memory."""
    per_sample = 1000
    free = int(7 * TORCH_MEMORY_FACTOR * per_sample / DEVICE_MEMORY_FRACTION) + 1  # room for 7 samples
    parts = split_batches(20, per_sample, free)
    assert [(p.start, p.stop) for p in parts] == [(0, 7), (7, 13), (13, 20)]
    assert split_batches(20, per_sample, None) == [slice(0, 20)]
    with pytest.raises(MemoryError, match="device memory"):
        split_batches(3, per_sample, free // 10)


@pytest.mark.parametrize("batch_of_one", [False, True])
def test_guard_stops_the_torch_path_naming_the_sample(monkeypatch, batch_of_one: bool) -> None:
    """Only the middle sample is too fast for the step (CFL number 263 > 1 at t = 0, the others 0.8 and 0.9):
    the torch path raises the NumPy path's error word for word, naming that sample's global index, also
    when it runs in a device batch of its own (row offsets)."""
    w0 = smooth_field(np.random.default_rng(3), 16, 3) * np.array([1.0, 300.0, 1.0])[:, None, None]
    stepper = navier_stokes_stepper(16, 1e-4, 0.1, None, "classic")
    if batch_of_one:
        need = TORCH_MEMORY_FACTOR * stepper.bytes_per_sample
        monkeypatch.setattr(torch_steppers, "free_memory", lambda device: int(1.5 * need / DEVICE_MEMORY_FRACTION))
    with pytest.raises(StabilityError) as numpy_error:
        stepper.rollout(w0, 5, 3, labels=[12, 10, 11])
    with pytest.raises(StabilityError, match=r"^sample 10 became unstable by t = 0: the CFL number") as torch_error:
        on_device(stepper, "torch-cpu").rollout(w0, 5, 3, labels=[12, 10, 11])
    assert str(torch_error.value) == str(numpy_error.value)


def test_check_device_names_what_to_use() -> None:
    """cpu is the NumPy path, torch-cpu the ports on the CPU; an absent GPU or a bad name is a ConfigError."""
    assert check_device("cpu") == "cpu"
    assert check_device(" torch-cpu ") == "torch-cpu"
    with pytest.raises(ConfigError, match="--device must be"):
        check_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device cuda: .*use --device cpu"):
            check_device("cuda")


def test_the_numpy_path_does_not_import_torch() -> None:
    """Building and running a NumPy integrator through solvers.devices leaves torch unimported."""
    code = ("import sys, numpy as np; from solvers.devices import on_device, check_device; "
            "from solvers.kuramoto_sivashinsky import kuramoto_sivashinsky_stepper as ks; "
            "s = on_device(ks(32, 20.0, 0.05), check_device('cpu')); s.rollout(np.zeros((1, 32)), 2, 1); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_navier_stokes_on_cuda_matches_numpy() -> None:
    """On a GPU (cuFFT) both schemes agree with the NumPy path to 1e-10 in float64."""
    w0 = smooth_field(np.random.default_rng(4), 64, 4)
    for scheme, dt in (("classic", 2e-3), ("etdrk4", 0.02)):
        stepper = navier_stokes_stepper(64, 1e-3, dt, kolmogorov_forcing(64), scheme)
        expected = stepper.rollout(w0, 20, 4, out_dtype=np.float64)
        result = on_device(stepper, "cuda").rollout(w0, 20, 4, out_dtype=np.float64)
        assert _relative(expected, result) < FLOAT64_BOUND
