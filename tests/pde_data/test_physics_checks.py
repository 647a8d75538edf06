"""Physically meaningless settings are refused before any work, with a remedy that works (issue 11, item 5).

Each time-dependent family checks its grid against the finest scale its physics makes (the Burgers
shock width, the Navier–Stokes enstrophy-dissipation wavenumber, the Kuramoto–Sivashinsky fine
structure) in ``check_physics``, which the pipeline runs after the size check. The remedy names the
smallest ``internal_resolution`` and the physical setting that would do; both are checked here to
pass, and the grid one step coarser to fail, so a message can never send the user to another refusal.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pde_data.config import from_mapping
from pde_data.families.burgers import BurgersConfig
from pde_data.families.kuramoto_sivashinsky import KuramotoSivashinskyConfig
from pde_data.families.navier_stokes import NavierStokesConfig
from pde_data.family import get_family
from pde_data.grid_settings import safe_bound
from pde_data.pipeline import resolve_config
from solvers.errors import ConfigError

PRESET_FOLDER = Path(__file__).parents[2] / "configs" / "data"
PRESETS = sorted((path.parent.name, path.stem) for path in PRESET_FOLDER.glob("*/*.yaml"))

#: unresolved settings of each family (the Burgers case is the issue's: nu = 1e-6 on 256 points), the
#: remedy's alternative setting, and a time step small enough for the CFL check on the grid the remedy names
UNRESOLVED = {
    "burgers": (BurgersConfig, {"resolution": 256, "internal_resolution": 256, "viscosity": 1e-6},
                "viscosity", {"dt": 1e-7, "T": 1e-7, "record_every": 1e-7}),
    "navier-stokes": (NavierStokesConfig, {"resolution": 64, "internal_resolution": 64, "viscosity": 1e-5},
                      "viscosity", {}),
    "navier-stokes-etdrk4": (NavierStokesConfig, {"resolution": 32, "internal_resolution": 64, "viscosity": 2e-5,
                                                  "scheme": "etdrk4", "dt": 1e-3, "T": 10.0, "record_every": 1.0},
                             "viscosity", {}),
    "kuramoto-sivashinsky": (KuramotoSivashinskyConfig, {"resolution": 32, "internal_resolution": 128, "L": [200.0]},
                             "L", {"dt": 0.01, "record_every": 0.01}),
}


@pytest.mark.parametrize("problem, preset", PRESETS)
def test_every_shipped_preset_passes_its_physics_checks(problem: str, preset: str) -> None:
    """Every preset in configs/data (fno-fast included) is resolved and within its CFL limit."""
    config = resolve_config(problem, preset)
    get_family(problem)(config.settings).check_settings()


def _refusal(config_class: type, settings: dict) -> str:
    with pytest.raises(ConfigError, match="cannot resolve") as info:
        from_mapping(config_class, settings).check_physics()
    return str(info.value)


@pytest.mark.parametrize("case", sorted(UNRESOLVED))
def test_unresolved_grid_is_refused_naming_the_smallest_grid_that_passes(case: str) -> None:
    """The refusal names internal_resolution >= N: N passes, N - resolution (the next coarser allowed grid)
    does not."""
    config_class, settings, _, fine_step = UNRESOLVED[case]
    message = _refusal(config_class, settings)
    needed = int(re.search(r"use internal_resolution >= (\d+)", message).group(1))
    assert needed % settings["resolution"] == 0 and needed > settings["internal_resolution"]
    from_mapping(config_class, {**settings, **fine_step, "internal_resolution": needed}).check_physics()
    coarser = needed - settings["resolution"]
    _refusal(config_class, {**settings, **fine_step, "internal_resolution": coarser})


@pytest.mark.parametrize("case", sorted(UNRESOLVED))
def test_the_physical_remedy_passes_on_the_same_grid(case: str) -> None:
    """The other remedy (viscosity >= V for Burgers and Navier–Stokes, L <= X for KS) passes as printed."""
    config_class, settings, name, _ = UNRESOLVED[case]
    message = _refusal(config_class, settings)
    value = float(re.search(rf"or {name} (?:>=|<=) ([0-9.e+-]+)$", message).group(1))
    from_mapping(config_class, {**settings, name: [value] if name == "L" else value}).check_physics()


def test_hopeless_settings_name_only_the_physical_remedy() -> None:
    """A viscosity so small that no grid could resolve it (5e-324, the smallest float) is refused without
    naming a grid and without overflow; the forcing 1e300 likewise (it used to loop for ever)."""
    for settings in ({"viscosity": 5e-324}, {"forcing_amplitude": 1e300}):
        message = _refusal(NavierStokesConfig, settings)
        assert "more than any grid can hold; use viscosity >= " in message, message
    assert "use viscosity >=" in _refusal(BurgersConfig, {"viscosity": 5e-324})


@pytest.mark.parametrize("value, up, expected", [
    (0.0097843, True, "0.00979"), (0.0097843, False, "0.00978"), (2.3e-7, False, "2.3e-07"),
    (9.9999e-5, True, "0.0001"), (123456.7, False, "123000"), (1.0, True, "1"),
])
def test_remedies_are_rounded_to_the_safe_side(value: float, up: bool, expected: str) -> None:
    """Three significant digits rounded up for a lower bound and down for an upper bound (never past it)."""
    text = safe_bound(value, up)
    assert text == expected
    assert (float(text) >= value) if up else (float(text) <= value)


@pytest.mark.parametrize("settings, fragment", [
    ({"ic_sigma": 1e300}, "ic_sigma^2"),
    ({"ic_tau": 1e200}, "ic_tau^2"),
    ({"ic_tau": 1e-300, "ic_alpha": 2.5}, "ic_tau^(ic_alpha - 1)"),
])
def test_settings_that_overflow_together_are_refused(settings: dict, fragment: str) -> None:
    """Finite settings whose random-field amplitude leaves the float range are a ConfigError naming it."""
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        from_mapping(NavierStokesConfig, settings)


def test_convection_diffusion_central_differences_need_a_cell_peclet_number_below_one() -> None:
    """diffusivity 1e-3 at speed 1 on 65 points (cell Peclet number 7.8) is refused naming resolution >= 501,
    which passes (h = 1/500 = 2 eps / v) while 500 does not; upwind differences and the printed
    diffusivity pass on the coarse grid."""
    from pde_data.families.convection_diffusion import ConvectionDiffusion, ConvectionDiffusionConfig

    def family(**settings):
        return ConvectionDiffusion(from_mapping(ConvectionDiffusionConfig, {"resolution": 65, "diffusivity": 1e-3,
                                                                            **settings}))
    with pytest.raises(ConfigError, match="cell Peclet number") as info:
        family().check_settings()
    message = str(info.value)
    assert "use resolution >= 501," in message
    family(resolution=501).check_settings()
    with pytest.raises(ConfigError, match="cell Peclet number"):
        family(resolution=500).check_settings()
    family(scheme="upwind").check_settings()
    family(diffusivity=float(re.search(r"diffusivity >= ([0-9.e+-]+)$", message).group(1))).check_settings()
