"""Run a benchmark script from benchmarks/ (e.g. pdeop bench skr --quick); lists them without a name."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import runpy
import sys
from pathlib import Path

from solvers.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach ``bench``'s arguments to ``parser``."""
    parser.add_argument("name", nargs="?", help="benchmark name (file benchmarks/NAME.py)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark, e.g. --quick")


def benchmarks_dir() -> Path:
    """The source checkout's ``benchmarks/`` folder (benchmarks ship with the repository, not the wheel)."""
    import operators

    for candidate in (Path(operators.__file__).resolve().parent.parent / "benchmarks", Path.cwd() / "benchmarks"):
        if (candidate / "harness.py").is_file():
            return candidate
    raise ConfigError("benchmarks/ not found: benchmarks ship with the source checkout; run pdeop bench from a "
                      "clone of the repository (or an editable install)")


def available(folder: Path) -> list[str]:
    """Names of the runnable benchmarks in ``folder``."""
    return sorted(p.stem for p in folder.glob("*.py") if p.stem != "harness" and not p.stem.startswith("_"))


def run(args: argparse.Namespace) -> int:
    """Run ``benchmarks/NAME.py`` in this process with the remaining arguments."""
    folder = benchmarks_dir()
    names = available(folder)
    if not args.name:
        print("available benchmarks: " + ", ".join(names))
        return 0
    name = args.name.replace("-", "_")
    if name not in names:
        raise ConfigError(f"unknown benchmark {args.name!r}; available: {', '.join(names)}")
    script = folder / f"{name}.py"
    sys.path.insert(0, str(folder))
    saved_argv = sys.argv
    sys.argv = [str(script), *args.args]
    try:
        harness = importlib.import_module("harness")
        missing = harness.missing_packages(script)
        if missing:
            raise ConfigError(f"benchmark {name} needs the Python package {missing[0]!r}, which is not installed; "
                              f"install it with: {harness.install_hint(missing[0])}")
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ModuleNotFoundError as exc:  # an import the static check could not see (built at run time)
        top = (exc.name or "").split(".")[0]
        if not top or importlib.util.find_spec(top) is not None:
            raise
        raise ConfigError(f"benchmark {name} needs the Python package {top!r}, which is not installed; "
                          f"install it with: {harness.install_hint(top)}") from None
    finally:
        sys.argv = saved_argv
        sys.path.remove(str(folder))
    return 0
