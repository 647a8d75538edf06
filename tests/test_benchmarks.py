"""Every benchmark script parses its --quick arguments and imports what it uses (benchmarks/harness.py's contract).

The scripts are enumerated from the folder, so a benchmark added later is checked without editing this
file. Nothing is timed: ``--check`` stops after the arguments are parsed and the imports are done.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from operators.cli import main
from operators.commands import bench

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
NAMES = bench.available(BENCHMARKS)

_RUN_ALL = """
import contextlib, io, json, sys
from operators.cli import main
for name in sys.argv[1:]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["bench", name, "--quick", "--check"])
        except SystemExit as exc:
            code = exc.code
        except Exception as exc:  # reported, so that one broken script names itself
            code, err = "exception", io.StringIO(repr(exc))
    print(json.dumps({"name": name, "code": code, "out": out.getvalue(), "err": err.getvalue()}))
"""


@pytest.fixture(scope="module")
def checked() -> dict[str, dict]:
    """``pdeop bench NAME --quick --check`` of every script, in one fresh interpreter (scripts edit sys.path)."""
    result = subprocess.run([sys.executable, "-c", _RUN_ALL, *NAMES], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {row["name"]: row for row in rows}


def test_the_folder_holds_benchmarks():
    """The enumeration finds the scripts (an empty list would make the checks below vacuous)."""
    assert len(NAMES) >= 7 and "skr" in NAMES and "harness" not in NAMES


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_benchmark_parses_quick_arguments_and_imports_what_it_uses(checked, name):
    """`pdeop bench NAME --quick --check` exits 0 after importing every required module of the script
    (a missing package would be exit 2 naming it; a script not built on harness.parser would not know
    --check and exit 2)."""
    row = checked[name]
    assert row["code"] == 0, row
    assert f"{name}: arguments and imports OK" in row["out"] + row["err"]


def _fake_benchmarks(tmp_path: Path, source: str) -> Path:
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "harness.py").write_text((BENCHMARKS / "harness.py").read_text())
    (folder / "fake.py").write_text(textwrap.dedent(source))
    return folder


_NEEDS = '''
    """A benchmark needing a package nobody has."""
    from harness import parser


    def main():
        args = parser("fake").parse_args()
        import pdeop_no_such_package.sub  # noqa: F401


    if __name__ == "__main__":
        main()
'''


def test_a_missing_package_is_named_with_its_install_command(tmp_path, monkeypatch, capsys):
    """A required import of an absent package (inside main, after the arguments) is found before the script
    runs: exit 2, one line naming the package and the install command; --check says the same."""
    folder = _fake_benchmarks(tmp_path, _NEEDS)
    monkeypatch.setattr(bench, "benchmarks_dir", lambda: folder)
    assert main(["bench", "fake", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'pdeop_no_such_package'" in err
    assert "pip install pdeop_no_such_package" in err and "pdeop[bench]" in err
    assert main(["bench", "fake", "--quick", "--check"]) == 2
    assert "'pdeop_no_such_package'" in capsys.readouterr().err


_OPTIONAL = '''
    """A benchmark with two optional competitors and one required stdlib import."""
    import json  # noqa: F401

    from harness import parser

    OPTIONAL_IMPORTS = ("pdeop_declared_optional",)

    try:
        import pdeop_guarded_optional  # noqa: F401
    except ImportError:
        pdeop_guarded_optional = None


    def contender():
        import pdeop_declared_optional.module  # noqa: F401


    if __name__ == "__main__":
        parser("fake").parse_args()
        print("ran")
'''


def test_optional_competitors_do_not_block_the_benchmark(tmp_path, monkeypatch, capsys):
    """Imports guarded by `except ImportError` or listed in OPTIONAL_IMPORTS are optional: the script runs,
    and --check reports them as absent; the other imports are required."""
    folder = _fake_benchmarks(tmp_path, _OPTIONAL)
    monkeypatch.syspath_prepend(str(folder))
    import harness

    uses = {use.module: use.optional for use in harness.script_imports(folder / "fake.py")}
    assert uses == {"json": False, "harness": False, "pdeop_guarded_optional": True,
                    "pdeop_declared_optional.module": True}
    monkeypatch.setattr(bench, "benchmarks_dir", lambda: folder)
    assert main(["bench", "fake"]) == 0
    assert capsys.readouterr().out.strip() == "ran"
    assert main(["bench", "fake", "--check"]) == 0
    out = capsys.readouterr().out
    assert "arguments and imports OK" in out and "pdeop_guarded_optional" in out and "pdeop_declared_optional" in out


def test_benchmark_results_are_strict_json(tmp_path, monkeypatch):
    """A NaN or infinite number in a benchmark row is written as null and listed under non_finite, so the
    results file is standard JSON; NumPy scalars become plain numbers."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import numpy as np

    import harness

    path = harness.write_results("fake", [{"ratio": float("nan"), "n": np.int64(3)}], {"speedup": np.float32(2.5)},
                                 out=tmp_path / "fake.json")
    text = path.read_text()
    assert "NaN" not in text.replace('"NaN"', "")
    data = json.loads(text)
    assert data["rows"] == [{"ratio": None, "n": 3}] and data["summary"] == {"speedup": 2.5}
    assert data["non_finite"]["values"] == {"rows[0].ratio": "NaN"}
    assert [p.name for p in tmp_path.iterdir()] == ["fake.json"]
