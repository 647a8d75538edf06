"""The number checks of pde_data.config used by the families' ``__post_init__``."""

from __future__ import annotations

import math

import pytest

from pde_data.config import check_finite, check_nonzero_finite, check_positive_finite
from solvers.errors import ConfigError

CASES = [
    (check_finite, [0.0, -3.5, 1e300], [math.inf, -math.inf, math.nan], "must be a finite number"),
    (check_positive_finite, [1e-300, 2.0], [0.0, -1.0, math.inf, math.nan], "must be a positive number"),
    (check_nonzero_finite, [-2.0, 1e-300], [0.0, math.inf, math.nan], "must be a finite non-zero number"),
]


@pytest.mark.parametrize(("check", "good", "bad", "expected"), CASES)
def test_number_checks_accept_and_refuse_exactly_their_ranges(check, good, bad, expected):
    """Each helper accepts the values of its range (edge cases included: tiny, zero, huge) and refuses
    the others with a ConfigError naming the setting, what was expected and the value given; with
    several settings the first bad one in argument order is named."""
    for value in good:
        check(x=value)
    for value in bad:
        with pytest.raises(ConfigError, match=rf"^y {expected} \(got {value}\)$"):
            check(x=good[0], y=value, z=value)
