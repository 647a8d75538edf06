"""Property-based fuzzing of `pdeop generate`: command-line arguments, ``--set`` values and YAML config files.

Whatever the input, `generate` (run in-process through ``operators.cli.main``) must end with exit 0
(and a complete file), exit 2 (one line, and --out exactly as before: absent, or the same bytes) or,
for a numerically unstable sample, exit 1 (one line; a new file stays marked incomplete) — never a
traceback, and never a temporary, lock or partial file left beside --out. Sizes stay tiny: the toy
family, tiny bases for the real families, and a file size limit (RLIMIT_FSIZE) that turns any large
valid run into the pre-write refusal. Hypothesis runs derandomized so CI sees the same examples.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import resource
import tempfile
from pathlib import Path

import h5py
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from operators.cli import main

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
#: files larger than this are refused before writing (keeps valid fuzzed runs tiny)
FILE_LIMIT = 4 << 20

#: values that break settings in every way we know: types, non-finite and huge numbers, nesting, text
HOSTILE = st.one_of(
    st.sampled_from(["inf", "-inf", "nan", ".nan", "1e400", "1.0e+400", "-1.0e+400", str(10**400), "9" * 5000,
                     "0", "-1", "-0.0", "0x10", "1_000", "true", "null", "~", "[]", "{}", "[1, 2]", "{a: 1}",
                     "2020-01-01", "!!binary aGk=", "&a [*a]", "'", "\"", "a: b: c", "[" * 50, "é", "\x00", "",
                     " ", "1e-9", "3.5", "12"]),
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
TOY_KEYS = st.sampled_from(["resolution", "steps", "rate", "unstable_sample", "colour", "", "rate.x", "a.b.c"])
TOY_VALUES = st.one_of(HOSTILE, st.integers(min_value=-3, max_value=40).map(str),
                       st.floats(min_value=-5, max_value=5).map(repr))
#: a tiny valid base per real family, so that a fuzzed setting that happens to be valid still runs fast
TINY = {
    "burgers": ["resolution=32", "internal_resolution=64", "dt=1e-3", "T=0.01", "record_every=0.01"],
    "navier-stokes": ["resolution=16", "internal_resolution=16", "dt=1e-2", "T=0.02", "record_every=0.01"],
    "kuramoto-sivashinsky": ["resolution=32", "internal_resolution=256", "dt=0.05", "T=0.1", "record_every=0.05",
                             "warmup_steps=0"],
    "darcy": ["resolution=9"],
    "heat": ["resolution=9", "steps=2"],
    "helmholtz": ["resolution=9", "wavenumber=3"],
    "convection-diffusion": ["resolution=9", "diffusivity=0.1"],
    "poisson": ["resolution=9"],
}


@contextlib.contextmanager
def _small_files():
    """Cap the size of files this process may write at FILE_LIMIT (restored afterwards)."""
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)


def _run(argv: list[str]) -> tuple[int, str]:
    """``main(argv)`` with stdout/stderr captured; argparse's SystemExit becomes the exit code."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), _small_files():
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue()


def _check_outcome(code: int, err: str, out: Path, before: bytes | None) -> None:
    """The contract of the module docstring."""
    assert "Traceback" not in err, err
    assert code in (0, 1, 2), (code, err)
    event(f"exit {code}")  # shown by --hypothesis-show-statistics: how many examples ran, failed, were refused
    litter = [p.name for p in out.parent.iterdir() if out.name in p.name and p.name != out.name]
    assert litter == [] or (code == 1 and litter == [f"{out.name}.partial"]), litter
    if code == 0:
        with h5py.File(out, "r") as f:
            assert f.attrs["complete"] == 1
        return
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err  # one line, the last thing said
    if before is not None:
        assert out.read_bytes() == before, err
    elif code == 2:
        assert not out.exists(), err
    elif out.exists():
        with h5py.File(out, "r") as f:
            assert f.attrs["complete"] == 0


def _existing(kind: str, out: Path, toy: Path) -> bytes | None:
    """Put a file at --out before the run: nothing, a toy dataset, or the user's unrelated bytes."""
    if kind == "dataset":
        assert _run(["generate", "toy", "--samples", "2", "--set", "rate=9", "--out", str(out), "--quiet"])[0] == 0
    elif kind == "foreign":
        out.write_bytes(b"the user's notes")
    return out.read_bytes() if out.exists() else None


@FUZZ
@given(
    problem=st.sampled_from(["toy", "toy", "toy", "nosuch", ""]),
    options=st.lists(st.one_of(
        st.tuples(st.just("--samples"), st.one_of(st.integers(-3, 6).map(str), HOSTILE)),
        st.tuples(st.just("--seed"), st.one_of(st.integers(-2, 2**70).map(str), HOSTILE)),
        st.tuples(st.just("--chunk-size"), st.one_of(st.integers(-1, 5).map(str), HOSTILE)),
        st.tuples(st.just("--resolution"), st.one_of(st.integers(-2, 64).map(str), HOSTILE)),
        st.tuples(st.just("--preset"), st.sampled_from(["default", "nosuch", "", "../default"])),
        st.tuples(st.just("--set"), st.tuples(TOY_KEYS, TOY_VALUES).map("=".join)),
        st.tuples(st.just("--set"), HOSTILE),
        st.tuples(st.sampled_from(["--overwrite", "--quiet", "--bogus", "-h"])),
    ), max_size=6),
    existing=st.sampled_from(["none", "dataset", "foreign"]),
)
def test_fuzzed_command_lines(toy, problem, options, existing):
    """Random options, values and flags of `generate` (toy family), over no file, a dataset or a user's file."""
    folder = Path(tempfile.mkdtemp(dir=toy))
    out = folder / "out.h5"
    before = _existing(existing, out, toy)
    argv = ["generate", problem, *[part for option in options for part in option], "--out", str(out)]
    code, err = _run(argv)
    if "-h" in argv and code == 0:
        return
    _check_outcome(code, err, out, before)


@pytest.mark.parametrize("problem", sorted(TINY))
def test_tiny_bases_run(tmp_path, problem):
    """Each family's tiny base is valid on its own (so the fuzzed settings are what gets refused)."""
    out = tmp_path / f"{problem}.h5"
    code, err = _run(["generate", problem, "--samples", "2", *[p for s in TINY[problem] for p in ("--set", s)],
                      "--out", str(out), "--quiet"])
    assert code == 0, err


@FUZZ
@given(problem=st.sampled_from(sorted(TINY)), data=st.data())
def test_fuzzed_settings_of_every_time_dependent_and_elliptic_family(tmp_path, problem, data):
    """One or two settings of a real family, each given a hostile value, over a tiny valid base."""
    from pde_data.family import get_family
    import dataclasses

    fields = [f.name for f in dataclasses.fields(get_family(problem).config_class)]
    chosen = data.draw(st.lists(st.tuples(st.sampled_from(fields), HOSTILE), min_size=1, max_size=2))
    out = Path(tempfile.mkdtemp(dir=tmp_path)) / "out.h5"
    overrides = [part for item in TINY[problem] for part in ("--set", item)]
    overrides += [part for key, value in chosen for part in ("--set", f"{key}={value}")]
    code, err = _run(["generate", problem, "--samples", "2", *overrides, "--out", str(out), "--quiet"])
    _check_outcome(code, err, out, None)


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                     st.dates().map(datetime.date.isoformat))
_TREES = st.recursive(_SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=3),
    st.dictionaries(st.one_of(TOY_KEYS, st.text(max_size=6), st.integers(-2, 2)), children, max_size=3)),
    max_leaves=12)


def _yaml_texts() -> st.SearchStrategy[str]:
    """Settings files: dumped mappings (valid keys, hostile values), deep nests, alias bombs, raw text."""
    settings_maps = st.dictionaries(TOY_KEYS, st.one_of(_TREES, TOY_VALUES), max_size=4).map(
        lambda d: yaml.safe_dump(d, allow_unicode=True))
    nests = st.integers(1, 200).map(lambda depth: "resolution: " + "[" * depth + "1" + "]" * depth)
    bombs = st.integers(2, 9).map(lambda levels: "\n".join(
        ["a0: &a0 [x, x, x, x, x, x, x, x, x]"] +
        [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]))
    return st.one_of(settings_maps, _TREES.map(lambda t: yaml.safe_dump(t, allow_unicode=True)), nests, bombs,
                     st.text(max_size=60), st.sampled_from(["resolution: !!python/object/apply:os.system [x]",
                                                            "steps: 1e400", "rate: 1.0e+400", "rate: .inf",
                                                            "? [a, b]\n: 1", "samples: -1", "seed: 2e70"]))


@FUZZ
@given(text=_yaml_texts(), existing=st.sampled_from(["none", "dataset"]))
def test_fuzzed_yaml_config_files(toy, text, existing):
    """`generate toy --config FILE` with a random settings file: a valid one runs, any other is one line."""
    folder = Path(tempfile.mkdtemp(dir=toy))
    config = folder / "settings.yaml"
    config.write_text(text, encoding="utf-8", errors="surrogatepass")
    out = folder / "out.h5"
    before = _existing(existing, out, toy)
    code, err = _run(["generate", "toy", "--config", str(config), "--out", str(out), "--quiet"])
    _check_outcome(code, err, out, before)
