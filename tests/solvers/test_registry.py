"""Solver registry: stable explicit codes, one class per method, duplicates refused."""

from __future__ import annotations

import numpy as np
import pytest

from solvers import ConfigError, SequenceSolver
from solvers.registry import METHOD_CLASSES, LinearMethod, method_codes, method_names, register_method
from solvers.result import SolveResult
from tests.solvers.model_problems import laplacian_2d, rhs

#: the codes dataset files written before the registry existed hold; they must keep their meaning
PUBLISHED_CODES = {0: "skr", 1: "gcrodr", 2: "gmres", 3: "cg", 4: "amg", 5: "direct", 6: "neural"}


def test_published_codes_keep_their_meaning() -> None:
    """The code -> name table contains every published code with its original name."""
    table = method_codes()
    assert {code: table[code] for code in PUBLISHED_CODES} == PUBLISHED_CODES
    assert method_names()[:len(PUBLISHED_CODES)] == tuple(PUBLISHED_CODES.values())


@pytest.fixture
def scratch_method():
    """Registers a throw-away method for one test and removes it afterwards."""
    names = set(METHOD_CLASSES)
    yield
    for name in set(METHOD_CLASSES) - names:
        del METHOD_CLASSES[name]


def test_a_new_method_is_one_class_and_leaves_other_codes_alone(scratch_method) -> None:
    """A method defined and registered in one place is usable by name from SequenceSolver; the
    published codes are unchanged and the table gains exactly the new entry."""

    @register_method("jacobi-richardson", code=42)
    class Richardson(LinearMethod):
        def solve(self, A, b, x0, M):
            d = A.diagonal()
            x = np.zeros_like(b) if x0 is None else x0.copy()
            for it in range(1, 5001):
                x += (b - A @ x) / d
                res = np.linalg.norm(b - A @ x) / np.linalg.norm(b)
                if res <= self.settings.rtol:
                    break
            return SolveResult(x=x, converged=res <= self.settings.rtol, iterations=it, matvecs=2 * it,
                               precond_applications=0, cycles=1, residual=res, seconds=0.0, method=self.name)

    assert method_codes() == {**PUBLISHED_CODES, 42: "jacobi-richardson"}
    A = laplacian_2d(6)
    result = SequenceSolver("jacobi-richardson", rtol=1e-6, preconditioner="none").solve(A, rhs(36))
    assert result.method == "jacobi-richardson" and result.retries == 0
    assert np.linalg.norm(rhs(36) - A @ result.x) <= 1e-6 * np.linalg.norm(rhs(36))


def test_taken_codes_and_names_are_refused(scratch_method) -> None:
    """Reusing a published code, or a name, is a programming error raised at registration."""
    with pytest.raises(ValueError, match="code 2"):
        register_method("other-gmres", code=2)(type("Other", (LinearMethod,), {}))
    with pytest.raises(ValueError, match="registered twice"):
        register_method("gmres", code=77)(type("Again", (LinearMethod,), {}))
    with pytest.raises(ValueError, match=r"\[0, 127\]"):
        register_method("too-big", code=300)(type("Big", (LinearMethod,), {}))


def test_unknown_method_is_a_config_error_listing_the_choices() -> None:
    with pytest.raises(ConfigError, match="solver must be one of auto, skr, gcrodr, gmres, cg, amg, direct"):
        SequenceSolver("bicgstab")
