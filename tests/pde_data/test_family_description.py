"""Families describe themselves: periodicity, physical parameters and equation are declared once by the
family, written into every file, and read from the file by the loader and the physics term."""

from __future__ import annotations

import math

import numpy as np
import pytest

from operators.physics.operator_residual import EQUATIONS
from operators.training.config import run_config_from_mapping
from operators.training.physics_term import PhysicsTerm
from pde_data.family import FAMILIES, get_family, register_family, stored_description
from pde_data.loading import make_datasets
from pde_data.pipeline import generate_dataset, resolve_config
from pde_data.storage import read_attrs
from tests.operators import tiny_data
from tests.pde_data.toy_family import ToyFamily, install


class DecayFamily(ToyFamily):
    """u = A exp(-rate t) sin(2 pi x) solves u_t + c u_x = nu u_xx with c = 0, nu = rate / (2 pi)^2.

    Everything a new family needs to be loaded and trained with the residual is in this class.
    """

    periodic = True
    physical_parameters = ("c", "viscosity")
    equation = "convection"

    def layout(self):
        layout = super().layout()
        rate = self.config.rate
        return type(layout)(coords=layout.coords, variables=layout.variables,
                            attrs={"c": 0.0, "viscosity": rate / (2 * math.pi) ** 2})


@pytest.fixture
def decay(monkeypatch, tmp_path):
    install(monkeypatch, tmp_path)
    if "toy-decay" not in FAMILIES:
        register_family("toy-decay")(DecayFamily)
    (tmp_path / "configs" / "data" / "toy-decay").mkdir(parents=True, exist_ok=True)
    (tmp_path / "configs" / "data" / "toy-decay" / "default.yaml").write_text("resolution: 16\nrate: 0.5\n")
    return tmp_path


def test_a_new_family_is_loaded_and_trained_from_its_own_declaration(decay):
    """The family's three class attributes reach the file; the loader reads the periodicity from it and
    the physics term the equation and the declared parameters (viscosity = 0.5 / (2 pi)^2 exactly as
    stored in float64), with no list of family names anywhere."""
    out = decay / "decay.h5"
    generate_dataset(resolve_config("toy-decay", samples=6, seed=1), out, progress=False)
    attrs = read_attrs(out)
    assert attrs["periodic"] == 1 and attrs["equation"] == "convection"
    assert stored_description(attrs) == {"periodic": True, "physical_parameters": ["c", "viscosity"],
                                         "equation": "convection"}
    config = run_config_from_mapping({
        "seed": 0,
        "data": {"path": str(out), "protocol": "window", "variable": "u", "t_in": 1, "t_out": 2,
                 "n_train": 4, "n_val": 0, "n_test": 2},
        "model": {"model": "fno", "n_modes": [4], "width": 4, "n_layers": 1},
        "training": {"epochs": 1, "batch_size": 2, "physics": {"weight": 1.0}},
    })
    bundle = make_datasets(config.data)
    assert bundle.info["periodic"] is True
    term = PhysicsTerm(config.training.physics, config.data, bundle.info, bundle.train)
    assert term.problem == "convection"
    assert term.params == {"c": 0.0, "viscosity": 0.5 / (2 * math.pi) ** 2}


def test_an_undeclared_attribute_is_not_taken_for_a_parameter(tmp_path):
    """A file that declares its parameters is read for those only: an attribute ``c`` it does not declare
    is not used, so the residual asks for it (one-line ConfigError naming the parameter)."""
    from solvers.errors import ConfigError

    t, x = np.arange(4.0), np.arange(8) / 8
    u = np.zeros((3, 4, 8), np.float32)
    path = tiny_data.write_dataset(tmp_path / "f.h5", "my-advection", {"t": t, "x": x},
                                   {"u": (("sample", "t", "x"), u)},
                                   attrs={"c": 2.0, "periodic": True, "physical_parameters": ["speed"],
                                          "equation": "convection"})
    config = run_config_from_mapping({
        "seed": 0, "data": {"path": str(path), "t_in": 1, "t_out": 1, "n_train": 2, "n_test": 1},
        "model": {"model": "fno", "n_modes": [2], "width": 4, "n_layers": 1},
        "training": {"epochs": 1, "physics": {}}})
    bundle = make_datasets(config.data)
    term = PhysicsTerm(config.training.physics, config.data, bundle.info, bundle.train)
    assert term.params == {}
    with pytest.raises(ConfigError, match="needs the parameter 'c'"):
        term(bundle.train.trajectories[:1, :1], bundle.train.trajectories[:1, 1:2], [0])


@pytest.mark.parametrize(("problem", "expected"), [
    ("navier-stokes", {"periodic": True, "physical_parameters": None, "equation": "navier-stokes"}),
    ("darcy", {"periodic": False, "physical_parameters": None, "equation": None}),
    ("convection", {"periodic": False, "physical_parameters": None, "equation": "convection"}),
])
def test_files_without_the_attributes_fall_back_to_the_family(problem, expected):
    """Files written before the families described themselves (only ``problem``) still load: the registered
    family gives periodicity and equation; an unknown problem is not periodic and names its own equation;
    no parameter list is declared (the physics term then looks parameters up by name, as before)."""
    assert stored_description({"problem": problem}) == expected


def test_every_family_declares_parameters_it_stores_and_an_equation_with_a_residual():
    """Each built-in family's declared parameters are root attributes or variables of its default preset's
    layout, and a declared equation has a residual."""
    import pde_data.families  # noqa: F401

    for name in ("burgers", "kuramoto-sivashinsky", "navier-stokes", "darcy", "heat", "convection-diffusion"):
        family = get_family(name)
        layout = family(resolve_config(name).settings).layout()
        stored = {*layout.attrs, *layout.static, *layout.variables}
        missing = set(family.physical_parameters) - stored
        assert not missing, (name, missing)
        assert family.equation is None or family.equation in EQUATIONS
    assert sum(get_family(n).periodic for n in ("burgers", "kuramoto-sivashinsky", "navier-stokes")) == 3


def test_generate_help_lists_every_preset_with_its_sample_count(capsys):
    """`pdeop generate --help` names each problem and preset found in configs/data with the `samples` of its
    YAML file (5,000 for navier-stokes fno) and says that --samples defaults to it."""
    import re

    import yaml

    from operators.cli import main
    from pde_data.config import configs_root

    with pytest.raises(SystemExit) as stop:
        main(["generate", "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "default: the preset's count" in " ".join(text.split())
    listed = {}
    problem = None
    listing = text.split("problems and presets (samples", 1)[1]
    for line in listing.splitlines()[1:]:
        match = re.match(r"^  (\S*)\s+\*?(\S+)\s+([\d,]+) samples$", line)
        assert match, line
        problem = match.group(1) or problem
        listed[(problem, match.group(2))] = int(match.group(3).replace(",", ""))
    expected = {(p.parent.name, p.stem): int(yaml.safe_load(p.read_text()).get("samples", 8))
                for p in (configs_root() / "data").glob("*/*.yaml")}
    assert listed == expected and listed[("navier-stokes", "fno")] == 5000
    assert "*fno" in listing.split("navier-stokes", 1)[1].splitlines()[0]
