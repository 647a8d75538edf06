"""Small dataset files in the DESIGN.md §3 layout with exactly known contents, for loader and trainer tests.

They are written through :mod:`pde_data.storage` (the writer ``pdeop generate`` uses), so the layout
is the real one. The physics is chosen so that the exact answer is known and learnable:

* ``heat``: the periodic heat equation u_t = nu u_xx from a random low-mode initial field; each
  stored step multiplies Fourier mode k by exp(-nu (2 pi k)^2 dt), a linear map that a spectral
  model represents exactly.
* ``screened_poisson``: static map a -> u with (1 - Delta / (2 pi)^2) u = a on the periodic grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pde_data.family import Layout, Variable
from pde_data.storage import DatasetWriter, create


def write_dataset(path: Path, problem: str, coords: dict[str, np.ndarray], variables: dict[str, tuple],
                  attrs: dict | None = None, complete: bool = True, n_written: int | None = None) -> Path:
    """Write ``variables`` (name -> (dims, array)) with the pipeline's storage code.

    ``n_written`` stores only the first samples and leaves the file incomplete.
    """
    n = next(v for dims, v in variables.values() if dims[0] == "sample").shape[0]
    layout = Layout(
        coords=coords,
        variables={k: Variable(tuple(d), str(v.dtype)) for k, (d, v) in variables.items() if d[0] == "sample"},
        static={k: (tuple(d), v) for k, (d, v) in variables.items() if d[0] != "sample"},
    )
    base = {"problem": problem, "preset": "test", "config": "{}", "seed": 0, "pdeop_version": "0.1.0"}
    create(Path(path), layout, n, {**base, **(attrs or {})})
    count = n if n_written is None else n_written
    with DatasetWriter(path) as writer:
        writer.write(range(count), {k: v[:count] for k, (d, v) in variables.items() if d[0] == "sample"})
        if complete and count == n:
            writer.finish()
    return Path(path)


def random_modes(rng: np.random.Generator, n_samples: int, n: int, dim: int, k_max: int = 3) -> np.ndarray:
    """Real random fields with Fourier modes |k_i| <= k_max on an n^dim periodic grid, unit-ish scale."""
    shape = (n_samples,) + (n,) * dim
    spectrum = np.zeros(shape, dtype=np.complex128)
    coeffs = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    mask = np.zeros((n,) * dim, dtype=bool)
    keep = np.r_[0:k_max + 1, n - k_max:n]
    mask[np.ix_(*[keep] * dim)] = True
    spectrum[:, mask] = coeffs[:, mask]
    field = np.fft.ifftn(spectrum, axes=tuple(range(1, dim + 1))).real
    return field / field.std(axis=tuple(range(1, dim + 1)), keepdims=True)


def heat(path: Path, n_samples: int = 24, n: int = 32, steps: int = 6, dim: int = 1, nu: float = 0.01,
         dt: float = 0.5, seed: int = 0, **kwargs) -> Path:
    """Periodic heat-equation trajectories ``u(sample, t, x[, y])`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    u0 = random_modes(rng, n_samples, n, dim)
    k = np.fft.fftfreq(n, d=1.0 / n)
    k2 = sum(np.meshgrid(*[k ** 2] * dim, indexing="ij"))
    axes = tuple(range(1, dim + 1))
    u0_hat = np.fft.fftn(u0, axes=axes)
    t = np.arange(steps + 1) * dt
    traj = np.stack([np.fft.ifftn(u0_hat * np.exp(-nu * (2 * np.pi) ** 2 * k2 * s), axes=axes).real for s in t], 1)
    space = ["x", "y", "z"][:dim]
    coords = {"t": t, **{d: np.arange(n) / n for d in space}}
    return write_dataset(path, "heat", coords, {"u": (("sample", "t", *space), traj.astype(np.float32))},
                         attrs={"viscosity": nu}, **kwargs)


def screened_poisson(path: Path, n_samples: int = 24, n: int = 32, seed: int = 0, **kwargs) -> Path:
    """Static pairs ``a(sample, x, y) -> u(sample, x, y)`` with (1 - Delta/(2 pi)^2) u = a, periodic."""
    rng = np.random.default_rng(seed)
    a = random_modes(rng, n_samples, n, 2)
    k = np.fft.fftfreq(n, d=1.0 / n)
    kx, ky = np.meshgrid(k, k, indexing="ij")
    u = np.fft.ifft2(np.fft.fft2(a) / (1.0 + kx ** 2 + ky ** 2)).real
    x = np.arange(n) / n
    return write_dataset(path, "screened-poisson", {"x": x, "y": x},
                         {"a": (("sample", "x", "y"), a.astype(np.float32)),
                          "u": (("sample", "x", "y"), u.astype(np.float32))}, **kwargs)


@pytest.fixture(autouse=True)
def one_thread():
    """Run a test module on one torch thread (import this fixture into the module to activate it).

    The test machines are shared; with two OpenMP threads competing for busy cores the tiny models
    here run up to ten times slower than on one. Numbers do not change, only time.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
