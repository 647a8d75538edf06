"""Hypothesis settings and hostile values shared by the fault and fuzz tests.

Examples are derandomised (the same examples on every run, so CI cannot flake on a rare draw) and
few per test: each one runs a command, and the whole fuzz suite must stay within seconds.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def fuzz(max_examples: int):
    """Hypothesis settings for a command-running property (derandomised, no deadline)."""
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


#: JSON values a damaged or crafted file may hold where a setting is expected
HOSTILE_JSON = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 10**6, 10**12, 2**63, 1e308, -1e308, 1e-320, 0.5, 3.7]),
    st.text(max_size=12), st.sampled_from(["nan", "inf", "-inf", "1e999", "", "fno", "float64", "../x"]),
    st.lists(st.integers(min_value=-3, max_value=10**6), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.integers(min_value=1, max_value=60).map(_nested),
)

#: command-line values for numeric flags
HOSTILE_ARGS = st.sampled_from(["0", "1", "2", "-1", "nan", "inf", "-inf", "1e999", "1e-300", "abc", "", "3.5",
                                "99999999999999999999", " 1"])
