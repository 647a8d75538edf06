"""The Navier–Stokes, Kuramoto–Sivashinsky and Burgers families: presets, initial fields, bits, errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pde_data.config import from_mapping
from pde_data.families.burgers import Burgers, BurgersConfig
from pde_data.families.kuramoto_sivashinsky import KuramotoSivashinsky, KuramotoSivashinskyConfig
from pde_data.families.navier_stokes import NavierStokes, NavierStokesConfig
from pde_data.pipeline import generate_dataset, resolve_config
from pde_data.random_fields import periodic_grf_variance
from solvers.errors import ConfigError, StabilityError

SMALL = {
    "navier-stokes": (NavierStokes, {"resolution": 16, "internal_resolution": 32, "dt": 1e-3, "T": 0.02,
                                     "record_every": 0.01}),
    "kuramoto-sivashinsky": (KuramotoSivashinsky, {"resolution": 32, "internal_resolution": 128, "dt": 0.05,
                                                   "record_every": 0.1, "T": 0.3, "warmup_steps": 4}),
    "burgers": (Burgers, {"resolution": 64, "internal_resolution": 128, "dt": 1e-3, "T": 0.02,
                          "record_every": 0.01}),
}


def _small(problem: str, **extra: object):
    family, settings = SMALL[problem]
    return family(from_mapping(family.config_class, {**settings, **extra}))


def test_presets_are_the_documented_data_sets() -> None:
    """The shipped presets hold DESIGN.md §4's settings (grids, steps, times, viscosities, lengths)."""
    ns = {p: resolve_config("navier-stokes", p).settings for p in ("fno", "fno-1e-4", "fno-1e-5")}
    for preset, (nu, T) in {"fno": (1e-3, 50), "fno-1e-4": (1e-4, 30), "fno-1e-5": (1e-5, 20)}.items():
        c = ns[preset]
        assert (c.viscosity, c.T, c.record_every, c.dt) == (nu, T, 1.0, 1e-4)
        assert (c.internal_resolution, c.resolution, c.forcing_amplitude) == (256, 64, 0.1)
        assert abs(np.sqrt(periodic_grf_variance((256, 256), c.ic_alpha, c.ic_tau, c.sigma)) - 0.262) < 1e-3
    lpsda = resolve_config("kuramoto-sivashinsky", "lpsda").settings
    assert lpsda.L == (57.6, 70.4) and lpsda.internal_resolution == 256 and lpsda.records + 1 == 140
    assert lpsda.record_every == 0.2 and lpsda.sines == 10 and lpsda.sine_wavenumbers == (1, 2)
    ape = resolve_config("kuramoto-sivashinsky", "apebench").settings
    assert (ape.L, ape.internal_resolution, ape.dt, ape.warmup_steps, ape.cutoff) == ((60.0,), 160, 0.1, 500, 5)
    for preset, nu, std in (("fno", 0.1, 0.594), ("fno-1e-3", 1e-3, 0.274)):
        c = resolve_config("burgers", preset).settings
        assert c.viscosity == nu and abs(c.initial_std() - std) < 1e-3


def test_navier_stokes_initial_vorticity_has_the_classic_scale() -> None:
    """w0 of the fno preset on 256^2 has std ~ 0.262 (the released data), checked on 12 samples.

    The pooled variance's standard error follows from the spectrum (sqrt(2 sum s_k^2 / N)); the
    test allows 4 of them (about 5% of the variance), and also checks zero mean to rounding.
    """
    family = NavierStokes(resolve_config("navier-stokes", "fno").settings)
    c = family.config
    w0 = np.stack([family.initial_vorticity(i, seed=0) for i in range(12)])
    variance = periodic_grf_variance((256, 256), c.ic_alpha, c.ic_tau, c.sigma)
    k = np.fft.fftfreq(256, 1 / 256)
    s = c.sigma**2 * (4 * np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + c.ic_tau**2) ** -c.ic_alpha
    s[0, 0] = 0.0
    assert abs(np.mean(w0**2) - variance) < 4 * np.sqrt(2 * np.sum(s**2) / len(w0))
    assert abs(np.sqrt(np.mean(w0**2)) - 0.262) < 0.02
    assert np.max(np.abs(w0.mean(axis=(1, 2)))) < 1e-14


@pytest.mark.parametrize("preset, std", [("fno", 0.594), ("fno-1e-3", 0.274)])
def test_burgers_initial_condition_has_the_classic_scale(preset: str, std: float) -> None:
    """u0 of both Burgers presets has the quoted pointwise std (within 4 standard errors over 200 samples).

    The projection onto the 2/3-dealiased modes removes a negligible part of the variance (the
    spectra decay like k^-4 and k^-5), so the full-spectrum formula is the reference.
    """
    family = Burgers(resolve_config("burgers", preset).settings)
    c = family.config
    u0 = np.stack([family.initial_condition(i, seed=1) for i in range(200)])
    k = np.fft.fftfreq(c.internal_resolution, 1 / c.internal_resolution)
    s = c.ic_sigma**2 * (4 * np.pi**2 * k**2 + c.ic_tau**2) ** -c.ic_alpha
    s[0] = 0.0
    assert abs(np.mean(u0**2) - s.sum()) < 4 * np.sqrt(2 * np.sum(s**2) / len(u0))
    assert abs(np.sqrt(s.sum()) - std) < 1e-3


def test_kuramoto_sivashinsky_initial_conditions() -> None:
    """lpsda draws L in its range and sums sines of modes {1, 2}; apebench's field has modes 1..5 and max |u0| = 1."""
    lpsda = KuramotoSivashinsky(resolve_config("kuramoto-sivashinsky", "lpsda").settings)
    lengths = np.array([lpsda.length(i, seed=0) for i in range(50)])
    assert np.all((57.6 <= lengths) & (lengths <= 70.4)) and np.ptp(lengths) > 6.0
    spectrum = np.abs(np.fft.rfft(lpsda.initial_condition(3, seed=0)))
    assert np.all(spectrum[[0] + list(range(3, 129))] < 1e-12) and spectrum[1:3].max() > 1.0
    ape = KuramotoSivashinsky(resolve_config("kuramoto-sivashinsky", "apebench").settings)
    u0 = ape.initial_condition(0, seed=0)
    spectrum = np.abs(np.fft.rfft(u0))
    assert np.all(spectrum[[0] + list(range(6, 81))] < 1e-12) and np.all(spectrum[1:6] > 1e-3)
    assert abs(np.max(np.abs(u0)) - 1.0) < 1e-15


@pytest.mark.parametrize("problem", sorted(SMALL))
def test_sample_is_bit_identical_in_any_batch(problem: str) -> None:
    """Sample 3 gets the same bits computed alone or inside the batch [5, 3, 9] (any chunking gives one file)."""
    family = _small(problem)
    alone = family.generate([3], seed=11)
    batch = family.generate([5, 3, 9], seed=11)
    for name in alone:
        assert np.array_equal(alone[name][0], batch[name][1]), name
    assert not np.array_equal(batch[next(iter(batch))][0], batch[next(iter(batch))][1])


@pytest.mark.parametrize("problem", sorted(SMALL))
def test_first_snapshot_is_the_initial_state(problem: str) -> None:
    """t[0] stores the initial field at the stored points (for KS with no warm-up), rounded to float32."""
    family = _small(problem, **({"warmup_steps": 0} if problem == "kuramoto-sivashinsky" else {}))
    c = family.config
    out = family.generate([2, 4], seed=5)
    if problem == "navier-stokes":
        initial = np.stack([family.initial_vorticity(i, 5) for i in (2, 4)])[:, :: c.stride, :: c.stride]
        stored = out["w"][:, 0]
    else:
        initial = np.stack([family.initial_condition(i, 5) for i in (2, 4)])[:, :: c.stride]
        stored = out["u"][:, 0]
    assert np.array_equal(stored, initial.astype(np.float32))


@pytest.mark.parametrize("config_class, settings, fragment", [
    (NavierStokesConfig, {"resolution": 48}, "resolution must divide internal_resolution"),
    (NavierStokesConfig, {"internal_resolution": 63, "resolution": 63}, "internal_resolution must be an even"),
    (NavierStokesConfig, {"dt": 0.0}, "dt must be > 0"),
    (NavierStokesConfig, {"viscosity": -1e-3}, "viscosity must be > 0"),
    (NavierStokesConfig, {"record_every": 0.25, "dt": 0.1, "internal_resolution": 64},
     "record_every must be a whole multiple of dt"),
    (NavierStokesConfig, {"T": 2.5}, "T must be a whole multiple of record_every"),
    (NavierStokesConfig, {"internal_resolution": 64, "dt": 0.05},
     "dt = 0.05 is too large for internal_resolution = 64"),
    (KuramotoSivashinskyConfig, {"L": [70.0, 60.0]}, "low <= high"),
    (KuramotoSivashinskyConfig, {"L": [0.0]}, "L must be > 0"),
    (KuramotoSivashinskyConfig, {"warmup_steps": -1}, "warmup_steps must be an integer >= 0"),
    (KuramotoSivashinskyConfig, {"dt": 0.4, "record_every": 0.4, "T": 4.0}, "dt = 0.4 is too large"),
    (KuramotoSivashinskyConfig, {"initial_condition": "fourier", "cutoff": 100},
     "cutoff must be an integer in [1, internal_resolution // 3 = 85]"),
    (BurgersConfig, {"dt": 1e-2, "record_every": 0.05}, "dt = 0.01 is too large for internal_resolution = 1024"),
    (BurgersConfig, {"resolution": 0}, "resolution must be an integer >= 1"),
])
def test_bad_settings_name_the_setting(config_class: type, settings: dict, fragment: str) -> None:
    """Invalid settings raise ConfigError naming the setting and what was expected, before any work:
    values in the dataclass, the time step in the a-priori physical checks the pipeline runs after the
    size check (``check_physics``)."""
    with pytest.raises(ConfigError) as info:
        from_mapping(config_class, settings).check_physics()
    assert fragment in str(info.value)


def test_unstable_run_names_the_global_sample_index() -> None:
    """A flow that passes the a-priori check but spins up past the CFL bound fails naming sample 5 and a t > 0.

    Forcing amplitude 100 accelerates the flow by ~11 t in speed; with dt = 0.01 on 16^2 the CFL
    number passes 1 by t = 0.5, the first snapshot after the initial one. Row 0 holds sample 5.
    """
    family = NavierStokes(from_mapping(NavierStokesConfig, {
        "resolution": 16, "internal_resolution": 16, "dt": 0.01, "T": 2.0, "record_every": 0.5,
        "forcing_amplitude": 100.0}))
    with pytest.raises(StabilityError, match=r"^sample 5 became unstable by t = 0\.5: .*smaller dt \(now 0\.01\)"):
        family.generate([5, 2], seed=0)


@pytest.mark.parametrize("problem, preset", [("navier-stokes", "fno"), ("kuramoto-sivashinsky", "lpsda"),
                                             ("burgers", "fno")])
def test_pipeline_file_holds_the_family_output(problem: str, preset: str, tmp_path) -> None:
    """Through the generation pipeline each family's file opens in xarray with the arrays generate() returns.

    Checks coordinates (t[0] = 0, x_i = i / resolution or i L / resolution) and the per-sample L of lpsda.
    """
    family_cls, settings = SMALL[problem]
    overrides = [f"{k}={v}" for k, v in settings.items()]
    config = resolve_config(problem, preset, overrides=overrides, samples=3, seed=4)
    path = tmp_path / f"{problem}.h5"
    generate_dataset(config, path, progress=False)
    expected = family_cls(config.settings).generate([0, 1, 2], seed=4)
    with xr.open_dataset(path, engine="h5netcdf") as data:
        for name, values in expected.items():
            assert np.array_equal(data[name].values, values), name
        assert data["t"].values[0] == 0.0
        assert np.allclose(np.diff(data["t"].values), config.settings.record_every)
        x = data["x"].values
        if problem == "kuramoto-sivashinsky":
            assert "L" in data and np.allclose(x, np.arange(len(x)) / len(x))
        else:
            assert np.allclose(x, np.arange(len(x)) / len(x))
