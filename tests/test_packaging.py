"""The distribution ships every YAML preset, so presets work from a non-editable install."""

from __future__ import annotations

import ast
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]


def _package_data() -> dict[str, list[str]]:
    """The ``package_data`` literal of ``setup.py`` (read with ``ast``; setup.py is not imported)."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "package_data":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py passes no package_data")


def test_every_config_file_is_package_data() -> None:
    """Each ``configs/**/*.yaml`` matches one ``pde_data.configs`` pattern part for part.

    A pattern one folder too shallow (``data/*.yaml`` for ``data/PROBLEM/PRESET.yaml``) once left
    every data preset out of the wheel; this catches that without building one.
    """
    patterns = [PurePosixPath(p) for p in _package_data()["pde_data.configs"]]
    files = sorted((ROOT / "configs").rglob("*.yaml"))
    assert len(files) > 40
    missing = [
        str(rel) for rel in (PurePosixPath(f.relative_to(ROOT / "configs").as_posix()) for f in files)
        if not any(len(rel.parts) == len(p.parts) and rel.match(str(p)) for p in patterns)
    ]
    assert missing == []
