"""The lazy re-exports of the package ``__init__`` modules (solvers.lazy_exports)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["solvers", "pde_data", "operators", "operators.physics", "operators.training"]


def test_importing_the_light_packages_loads_no_heavy_library():
    """``import solvers, pde_data, operators`` (what ``pdeop --help`` pays) imports neither torch nor
    SciPy nor xarray: the lazy exports defer every submodule. Run in a fresh interpreter, since this
    test process has long imported them all."""
    code = ("import sys, solvers, pde_data, operators\n"
            "print(sorted(m for m in ('torch', 'scipy', 'xarray', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_export_is_the_object_its_module_defines(package):
    """Each name in ``__all__`` resolves, through the package, to the very object of the submodule the
    export table names (identity, not a copy), and ``dir(package)`` lists it."""
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        lazy = getattr(module, "_EXPORTS", None) or getattr(module, "_LAZY")
        if name in lazy:
            assert value is getattr(importlib.import_module(lazy[name]), name)
        assert name in dir(module)


@pytest.mark.parametrize("package", PACKAGES)
def test_unknown_names_raise_attribute_error_naming_the_package(package):
    """A name outside the table is an ordinary AttributeError (so ``hasattr`` is False) whose message
    names the package, as for a plain module."""
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'no_such_name'"):
        module.no_such_name
    assert not hasattr(module, "no_such_name")


def test_spectral_integrators_and_random_fields_are_re_exported():
    """The spectral integrators are reachable from ``solvers`` and the random fields from ``pde_data``."""
    import pde_data
    import solvers
    from pde_data.random_fields import neumann_grf, periodic_grf
    from solvers.etdrk4 import ETDRK4
    from solvers.navier_stokes import VorticityCN

    assert solvers.ETDRK4 is ETDRK4 and solvers.VorticityCN is VorticityCN
    assert pde_data.periodic_grf is periodic_grf and pde_data.neumann_grf is neumann_grf
