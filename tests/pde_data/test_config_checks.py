"""pde_data.config: the number checks of the families' ``__post_init__``, the finiteness rule of every
float setting, and the limits that make hostile YAML a one-line ConfigError."""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Optional

import pytest

from pde_data.config import (MAX_YAML_BYTES, apply_overrides, check_finite, check_nonzero_finite,
                             check_positive_finite, from_mapping, load_yaml, meaningful_infinity)
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


@dataclasses.dataclass(frozen=True)
class _Settings:
    rate: float = 1.0
    limit: float = meaningful_infinity(math.inf)
    count: int = 1
    sizes: tuple[float, ...] = ()
    scale: Optional[float] = None


@pytest.mark.parametrize(("data", "message"), [
    ({"rate": "inf"}, "rate must be a finite number (got 'inf')"),
    ({"rate": "-inf"}, "rate must be a finite number (got '-inf')"),
    ({"rate": "1e400"}, "rate must be a finite number (got '1e400')"),
    ({"rate": 10**400}, "rate must be a finite number (got an integer of about 401 digits)"),
    ({"rate": "nan"}, "rate must be a number (got 'nan')"),
    ({"limit": "nan"}, "limit must be a number (got 'nan')"),
    ({"sizes": [1.0, "inf"]}, "sizes[1] must be a finite number (got 'inf')"),
    ({"scale": "inf"}, "scale must be a finite number (got 'inf')"),
    ({"count": 2**63}, "count must be an integer of magnitude below 2**63 (got 9223372036854775808)"),
    ({"count": -(10**400)}, "count must be an integer of magnitude below 2**63 (got an integer of about 401 digits)"),
    ({"count": "1e400"}, "count must be an integer (got '1e400')"),
    ({"sizes": {"a": 1}}, "sizes must be a list (got {'a': 1})"),
    ({7: 1}, "unknown setting '7'; valid settings are: count, limit, rate, scale, sizes"),
])
def test_float_settings_are_finite_unless_infinity_is_declared_meaningful(data, message):
    """NaN is refused everywhere, inf (also as 1e400 or a 401-digit integer, inside tuples and Optionals)
    wherever the field does not declare INFINITY_MEANINGFUL; ints stay within int64. Each is a
    ConfigError naming the field, with a short rendering of the value."""
    with pytest.raises(ConfigError) as info:
        from_mapping(_Settings, data)
    assert str(info.value) == message


def test_a_field_declared_meaningful_accepts_infinity():
    """``meaningful_infinity`` lets one field take +-inf; the other fields keep refusing it."""
    assert from_mapping(_Settings, {"limit": "inf"}).limit == math.inf
    assert from_mapping(_Settings, {"limit": "-1e400"}).limit == -math.inf
    assert from_mapping(_Settings, {"count": 2**63 - 1}).count == 2**63 - 1


def _alias_bomb(levels: int) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines)


@pytest.mark.parametrize(("text", "fragment"), [
    ("a: " + "[" * 200 + "]" * 200, "nests deeper than 32 levels"),
    ("a: " + "{b: " * 200 + "1" + "}" * 200, "nests deeper than 32 levels"),
    (_alias_bomb(9), "holds more than 100000 values"),
    ("a: &a [*a]", "a contains itself through an alias"),
    ("a: 2001-01-01", "a holds a date"),
    ("a: !!binary aGVsbG8=", "a holds a bytes"),
    ("a: !!set {x, y}", "a holds a set"),
    ("1: 2", "key 1 must be a name"),
    ("on: 2", "key True must be a name"),
    pytest.param("a: " + "9" * 5000, "is not valid YAML: Exceeds the limit",
                 marks=pytest.mark.skipif(not hasattr(sys, "get_int_max_str_digits"), reason="Python < 3.11")),
    ("a: !!python/object/apply:os.system [echo]", "is not valid YAML: could not determine a constructor"),
    ("a: [1, 2", "is not valid YAML"),
    ("- 1\n- 2", "must hold a mapping of settings (got list)"),
])
def test_hostile_yaml_files_are_refused_with_one_line(tmp_path, text, fragment):
    """Deep nesting, alias bombs (9^9 values), self-containing aliases, non-plain values, non-name keys,
    huge integers and code tags end in a ConfigError naming the file, quickly and without recursion."""
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert fragment in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_hostile_override_values_are_refused_and_invalid_yaml_stays_a_string():
    """--set values go through the same parser: a nesting bomb is refused; text that is not YAML stays text."""
    assert apply_overrides({}, ["a=x: y: z", "b=1.0e+400"]) == {"a": "x: y: z", "b": math.inf}
    with pytest.raises(ConfigError, match="override a nests deeper"):
        apply_overrides({}, ["a=" + "[" * 100 + "]" * 100])
    with pytest.raises(ConfigError, match="override a: a holds a date"):
        apply_overrides({}, ["a=a: 2020-02-02"])


def test_large_and_binary_files_are_refused(tmp_path):
    """A file over MAX_YAML_BYTES or one that is not UTF-8 is refused before parsing."""
    big, binary = tmp_path / "big.yaml", tmp_path / "bin.yaml"
    big.write_text("a: 1\n" + "#" * MAX_YAML_BYTES)
    binary.write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(ConfigError, match="is larger than 1 MiB"):
        load_yaml(big)
    with pytest.raises(ConfigError, match="it is not UTF-8 text"):
        load_yaml(binary)
