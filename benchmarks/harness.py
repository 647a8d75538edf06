"""Shared plumbing of the benchmark scripts: timing, machine description, tables and JSON.

Every ``benchmarks/<name>.py`` runs its competitors side by side in one process and writes
``benchmarks/results/<name>.json`` as ``{"benchmark", "machine", "rows", "summary"}`` (DESIGN.md §9).
Import it from a script with ``from harness import ...`` (scripts run from this folder or via
``pdeop bench NAME``, which puts this folder on ``sys.path``).

The contract every script follows (``pdeop bench`` and ``tests/test_benchmarks.py`` rely on it, and
the test runs every ``*.py`` of this folder, so a new script is held to it automatically):

1. **Arguments first.** Build the command line with :func:`parser` and call its ``parse_args``
   before any work; module-level code only defines things. :func:`parser` adds ``--check``: it
   parses the arguments, imports every module the script names (``import`` statements anywhere in
   the file, found by :func:`script_imports`), prints one line and exits 0 — no timing, no files.
   So ``pdeop bench NAME --quick --check`` proves the script's imports and arguments in seconds.
2. **Say what may be absent.** A competitor that may be missing is imported inside
   ``try: ... except ImportError:`` (the script then skips its rows), or its top-level package is
   listed in a module-level ``OPTIONAL_IMPORTS = ("exponax", "jax")``. Every other import is
   required: a package that is not a pdeop runtime requirement goes into ``setup.py``'s ``bench``
   extra, and into its ``test`` extra so that CI's check can import it; the README's benchmark
   table names it.
3. **Missing packages are named.** ``pdeop bench NAME`` checks the required imports before it runs
   the script (:func:`missing_packages`) and refuses, exit 2, naming the package and the install
   command; ``--check`` does the same.
4. **Strict JSON.** :func:`write_results` writes through a process-unique temporary file and a
   rename, with non-finite numbers as null (listed under ``non_finite``).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


#: import names whose pip package is named differently
PIP_NAMES = {"neuralop": "neuraloperator", "yaml": "pyyaml", "sklearn": "scikit-learn", "PIL": "pillow",
             "jaxlib": "jax"}
#: top-level packages of pdeop itself and of this folder (never "missing packages")
_OWN = {"solvers", "pde_data", "operators", "harness", "benchmarks", "tests"}


class BenchmarkParser(argparse.ArgumentParser):
    """ArgumentParser whose ``parse_args`` honours ``--check`` (see the module docstring, rule 1)."""

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: Any = None) -> argparse.Namespace:
        parsed = super().parse_args(args, namespace)
        if getattr(parsed, "check", False):
            script = Path(sys._getframe(1).f_globals.get("__file__") or sys.argv[0])
            problems, absent = check_imports(script)
            if problems:
                self.exit(2, f"error: {problems[0]}\n")
            note = f"; optional and absent: {', '.join(absent)}" if absent else ""
            print(f"{script.stem}: arguments and imports OK ({len(script_imports(script))} imports{note})")
            self.exit(0)
        return parsed


def parser(description: str) -> argparse.ArgumentParser:
    """Argument parser with the flags every benchmark has (``--quick``, ``--out``, ``--threads``, ``--check``)."""
    p = BenchmarkParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes; finishes in under two minutes")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/NAME.json)")
    p.add_argument("--threads", type=int, default=None, help="torch/BLAS threads (default: all cores)")
    p.add_argument("--check", action="store_true",
                   help="only parse the arguments and import what the script uses, then exit (no timing)")
    return p


@dataclass(frozen=True)
class ImportUse:
    """One imported module of a script: ``module`` (dotted), the ``names`` taken from it, whether optional."""

    module: str
    names: tuple[str, ...]
    optional: bool
    line: int

    @property
    def package(self) -> str:
        """The top-level import name."""
        return self.module.split(".", 1)[0]


def script_imports(path: str | os.PathLike) -> list[ImportUse]:
    """Every absolute ``import`` of a script, wherever it stands, with whether it is optional (rule 2)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
    declared = _declared_optional(tree)
    found: list[ImportUse] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = guarded
            if isinstance(child, ast.Try) and any(_catches_import_error(h) for h in child.handlers):
                for grandchild in child.body:
                    _record(grandchild, True)
                    visit(grandchild, True)
                for part in (child.handlers, child.orelse, child.finalbody):
                    for grandchild in part:
                        _record(grandchild, guarded)
                        visit(grandchild, guarded)
                continue
            _record(child, inside)
            visit(child, inside)

    def _record(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(ImportUse(alias.name, (), guarded or alias.name.split(".")[0] in declared, node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module != "__future__":
            names = tuple(alias.name for alias in node.names if alias.name != "*")
            found.append(ImportUse(node.module, names, guarded or node.module.split(".")[0] in declared, node.lineno))

    visit(tree, False)
    return found


def _declared_optional(tree: ast.Module) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "OPTIONAL_IMPORTS"
                                                for t in node.targets):
            try:
                return {str(name) for name in ast.literal_eval(node.value)}
            except ValueError:
                return set()
    return set()


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(k, ast.Name) and k.id in ("ImportError", "ModuleNotFoundError") for k in kinds)


def install_hint(package: str) -> str:
    """The install command of an import name's pip package."""
    name = PIP_NAMES.get(package, package)
    return f"pip install {name} (or all benchmark extras: pip install 'pdeop[bench]')"


def missing_packages(path: str | os.PathLike) -> list[str]:
    """Top-level import names a script requires (rule 2) that are not installed; nothing is imported."""
    missing = []
    with _script_folder_on_path(path):
        for use in script_imports(path):
            if use.optional or use.package in _OWN or use.package in missing:
                continue
            if importlib.util.find_spec(use.package) is None:
                missing.append(use.package)
    return missing


def check_imports(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Import every required module of a script for real (and the names taken from it).

    Returns
    -------
    problems, absent
        One message per failing required import (naming the package and the install command),
        and the optional packages that are not installed.
    """
    name = Path(path).stem
    problems: list[str] = []
    absent: list[str] = []
    with _script_folder_on_path(path):
        for use in script_imports(path):
            if use.optional:
                if importlib.util.find_spec(use.package) is None and use.package not in absent:
                    absent.append(use.package)
                continue
            try:
                module = importlib.import_module(use.module)
                for attr in use.names:
                    if not hasattr(module, attr):
                        importlib.import_module(f"{use.module}.{attr}")
            except ModuleNotFoundError as exc:
                top = (exc.name or use.module).split(".")[0]
                where = f"{Path(path).name}:{use.line}"
                if top in _OWN:
                    problems.append(f"benchmark {name}: {where} imports {exc.name!r}, which does not exist")
                else:
                    problems.append(f"benchmark {name} needs the Python package {top!r} ({where}), which is not "
                                    f"installed; install it with: {install_hint(top)}")
            except ImportError as exc:
                problems.append(f"benchmark {name}: {Path(path).name}:{use.line} cannot import "
                                f"{use.module} ({str(exc).splitlines()[0]})")
    return problems, absent


class _script_folder_on_path:  # noqa: N801  (a small context manager)
    def __init__(self, path: str | os.PathLike) -> None:
        self.folder = str(Path(path).resolve().parent)

    def __enter__(self) -> None:
        self.added = self.folder not in sys.path
        if self.added:
            sys.path.insert(0, self.folder)

    def __exit__(self, *exc: Any) -> None:
        if self.added and self.folder in sys.path:
            sys.path.remove(self.folder)


def machine() -> dict[str, Any]:
    """Describe the machine the numbers come from."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:
        pass
    return info


def time_call(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1, min_seconds: float = 0.0,
              sync: Callable[[], Any] | None = None) -> dict[str, float]:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeat`` timed ones.

    Each timed sample runs ``fn`` as many times as needed to last ``min_seconds`` (at least once)
    and records the time per call. Returns the median, minimum and spread of those samples; the
    median is what the tables report because the machine is shared and noisy.
    """
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    samples = []
    for _ in range(repeat):
        calls = 0
        start = time.perf_counter()
        while True:
            fn()
            calls += 1
            if sync:
                sync()
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        samples.append(elapsed / calls)
    return {
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
        "repeat": repeat,
    }


def interleaved(contenders: Mapping[str, Callable[[], Any]], rounds: int = 5, warmup: int = 1,
                min_seconds: float = 0.0, sync: Callable[[], Any] | None = None) -> dict[str, dict[str, float]]:
    """Time several contenders round-robin so that load changes hit all of them alike.

    Returns ``{name: {"median_s", "min_s", "max_s", "repeat"}}``.
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    for _ in range(rounds):
        for name, fn in contenders.items():
            samples[name].append(time_call(fn, repeat=1, warmup=0, min_seconds=min_seconds, sync=sync)["median_s"])
    return {
        name: {"median_s": statistics.median(s), "min_s": min(s), "max_s": max(s), "repeat": rounds}
        for name, s in samples.items()
    }


def format_table(rows: Sequence[Mapping[str, Any]], columns: Iterable[str] | None = None) -> str:
    """Render rows as a Markdown table (floats with 4 significant digits)."""
    if not rows:
        return "(no rows)"
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any],
                  out: Path | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``{"benchmark", "machine", "rows", "summary"}`` as strict JSON (rule 4) and return its path."""
    from operators import strict_json
    from operators.atomic_files import write_text

    path = Path(out) if out else RESULTS / f"{name}.json"
    payload = {"benchmark": name, "machine": machine(), "rows": list(rows), "summary": dict(summary)}
    if extra:
        payload.update(extra)
    plain = json_plain(payload)
    write_text(path, strict_json.dumps(plain, indent=2) + "\n")
    return path


def json_plain(value: Any) -> Any:
    """``value`` with NumPy / torch scalars and arrays as Python numbers and lists, paths as strings."""
    if isinstance(value, Mapping):
        return {str(k): json_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_plain(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return json_plain(_plain(value))


def set_threads(threads: int | None) -> None:
    """Fix torch's intra-op thread count when asked (``--threads``)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
