"""The time-scheme and precision settings of the spectral families (scheme: classic | etdrk4, precision)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pde_data.config import from_mapping
from pde_data.families.burgers import Burgers, BurgersConfig
from pde_data.families.kuramoto_sivashinsky import KuramotoSivashinsky, KuramotoSivashinskyConfig
from pde_data.families.navier_stokes import NavierStokes, NavierStokesConfig
from pde_data.pipeline import generate_dataset, resolve_config
from solvers.errors import ConfigError

#: a small forced NS case whose flow changes visibly within T (std(w0) ~ 0.26, forcing 0.1)
SMALL_NS = {"resolution": 16, "internal_resolution": 32, "T": 0.4, "record_every": 0.1}


def test_classic_presets_keep_the_classic_scheme_and_fast_preset_uses_etdrk4() -> None:
    """The presets that reproduce the released data keep Crank–Nicolson/Euler in float64 at dt = 1e-4;
    fno-fast is the fno data set (same physics, grids and times) integrated by ETDRK4 at a larger step."""
    fno = resolve_config("navier-stokes", "fno").settings
    for preset in ("fno", "fno-1e-4", "fno-1e-5"):
        c = resolve_config("navier-stokes", preset).settings
        assert (c.scheme, c.precision, c.dt) == ("classic", "float64", 1e-4)
    fast = resolve_config("navier-stokes", "fno-fast").settings
    assert fast.scheme == "etdrk4" and fast.dt > 10 * fno.dt
    same = ("resolution", "internal_resolution", "viscosity", "T", "record_every", "forcing_amplitude",
            "ic_alpha", "ic_tau", "ic_sigma")
    assert all(getattr(fast, name) == getattr(fno, name) for name in same)


def test_etdrk4_snapshots_are_at_the_record_times() -> None:
    """Snapshots of the ETDRK4 scheme at dt = 0.02 and 0.01 agree to its O(dt^4) error at every stored time.

    If a snapshot were taken one step early or late it would be off by ~dt max|w_t| ~ 1e-3 here; the
    fourth-order scheme's difference between the two steps is ~1e-8 (16^2 stored of 32^2, T = 0.4).
    """
    outputs = [NavierStokes(from_mapping(NavierStokesConfig, {**SMALL_NS, "scheme": "etdrk4", "dt": dt,
                                                              "precision": "float64"})).generate([0, 1], seed=3)["w"]
               for dt in (0.02, 0.01)]
    assert outputs[0].shape == (2, 5, 16, 16)
    assert np.max(np.abs(outputs[0] - outputs[1])) < 1e-6  # float32 storage rounds at ~1e-7 of |w| < 1
    assert np.max(np.abs(outputs[0][:, -1] - outputs[0][:, 0])) > 1e-2


def test_etdrk4_family_agrees_with_classic_family() -> None:
    """The two schemes store the same flow: classic at dt = 1e-3 is within its O(dt) error (~1e-4) of ETDRK4."""
    classic = NavierStokes(from_mapping(NavierStokesConfig, {**SMALL_NS, "dt": 1e-3})).generate([2], seed=1)["w"]
    fast = NavierStokes(from_mapping(NavierStokesConfig, {**SMALL_NS, "dt": 0.02, "scheme": "etdrk4"}))
    difference = np.max(np.abs(fast.generate([2], seed=1)["w"] - classic))
    assert 1e-7 < difference < 1e-3


def test_file_records_scheme_time_step_and_precision(tmp_path) -> None:
    """The dataset file's attributes say which scheme, time step and precision made it."""
    overrides = [f"{k}={v}" for k, v in SMALL_NS.items()] + ["scheme=etdrk4", "dt=0.02", "precision=float32"]
    config = resolve_config("navier-stokes", "fno", overrides=overrides, samples=2, seed=0)
    path = tmp_path / "ns.h5"
    generate_dataset(config, path, progress=False)
    with xr.open_dataset(path, engine="h5netcdf") as data:
        assert (data.attrs["scheme"], data.attrs["dt"], data.attrs["precision"]) == ("etdrk4", 0.02, "float32")
        assert np.all(np.isfinite(data["w"].values))


@pytest.mark.parametrize("family, config_class, settings", [
    (NavierStokes, NavierStokesConfig, {**SMALL_NS, "dt": 0.02, "scheme": "etdrk4"}),
    (KuramotoSivashinsky, KuramotoSivashinskyConfig, {"resolution": 32, "internal_resolution": 64, "dt": 0.05,
                                                      "record_every": 0.1, "T": 1.0, "warmup_steps": 4}),
    (Burgers, BurgersConfig, {"resolution": 64, "internal_resolution": 128, "dt": 1e-3, "T": 0.1,
                              "record_every": 0.05}),
])
def test_float32_precision_follows_float64(family, config_class, settings) -> None:
    """precision: float32 gives the float64 data to float32 accuracy (stored values are float32 in both).

    At most a few hundred steps with ~20 roundings of 6e-8 each per value, on fields of size O(1):
    1e-4 is a bound with margin; a scheme or coefficient mistake would show at O(1e-2).
    """
    single = family(from_mapping(config_class, {**settings, "precision": "float32"})).generate([0, 3], seed=2)
    double = family(from_mapping(config_class, settings)).generate([0, 3], seed=2)
    for name, values in double.items():
        assert np.max(np.abs(single[name] - values)) < 1e-4 * max(1.0, np.max(np.abs(values))), name


@pytest.mark.parametrize("settings, fragment", [
    ({"scheme": "rk3"}, "scheme"),
    ({"precision": "float16"}, "precision"),
])
def test_bad_scheme_or_precision_names_the_setting(settings, fragment) -> None:
    """An unknown scheme or precision is a ConfigError naming the setting."""
    with pytest.raises(ConfigError, match=fragment):
        from_mapping(NavierStokesConfig, settings)


def test_a_priori_cfl_check_uses_the_scheme_limit() -> None:
    """A step the classic scheme's limit (1) rejects passes ETDRK4's (2 sqrt(2)) when the CFL number is in between.

    The a-priori estimate scales with dt, so a dt 1.5x past the classic limit is inside ETDRK4's. The
    check runs with the other physical checks (``check_physics``, after the pipeline's size check).
    """
    probe = from_mapping(NavierStokesConfig, {"internal_resolution": 64, "resolution": 16, "dt": 1e-3, "T": 1.0,
                                              "record_every": 0.5})
    k_max = 2 * np.pi * 21
    dt = 1.5 / (probe.initial_speed() * k_max)
    dt = 0.5 / round(0.5 / dt)  # a whole divisor of record_every
    settings = {"internal_resolution": 64, "resolution": 16, "dt": dt, "T": 1.0, "record_every": 0.5}
    with pytest.raises(ConfigError, match="too large"):
        from_mapping(NavierStokesConfig, settings).check_physics()
    from_mapping(NavierStokesConfig, {**settings, "scheme": "etdrk4"}).check_physics()
