"""Convert a file in a published layout into a pdeop dataset file (``pdeop import``).

The converted file has the schema of generated ones (DESIGN.md §3: named dims, coordinates, the root
attributes ``problem``, ``config``, ``complete``...) plus provenance: ``source`` (the absolute path),
``source_sha256`` (checksum of its bytes) and ``source_format``. Its ``periodic``,
``physical_parameters`` and ``equation`` attributes come from the family of the same problem where
there is one (:meth:`pde_data.family.Family.description`), else from the layout and ``--set``.

Samples are copied a block at a time (at most :data:`BLOCK_BYTES` of output per block), so files
larger than memory convert (MATLAB v5 files, which ``scipy.io`` reads whole, excepted). The output
follows :mod:`pde_data.output_files`: one writer at a time (a lock beside it), the file filled under
a process-unique temporary name and renamed over ``out`` once complete, so an interrupted import
leaves ``out`` as it was (absent, or the old file with ``--overwrite``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pde_data import output_files, storage
from pde_data.config import parse_override
from pde_data.family import FAMILIES
from pde_data.importers.plan import ImportPlan, choose_format
from pde_data.importers.source import inventory, sha256
from solvers.errors import ConfigError
from solvers.version import __version__

#: output bytes per block of samples copied at once
BLOCK_BYTES = 64 << 20
#: ``--set`` keys that describe the file rather than being stored as physical attributes
DESCRIPTION_KEYS = ("problem", "periodic", "equation")


def import_dataset(source: str | Path, out: str | Path, fmt: str | None = None, overrides: Sequence[str] = (),
                   overwrite: bool = False, block_bytes: int = BLOCK_BYTES,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Convert ``source`` into the pdeop dataset file ``out``.

    Parameters
    ----------
    source
        The file to convert (HDF5, MATLAB ``.mat`` or NumPy ``.npy``).
    out
        The pdeop file to write; an existing one is refused unless ``overwrite``.
    fmt
        Format name (see :func:`pde_data.importers.plan.formats`); None detects it.
    overrides
        ``key=value`` settings: ``problem``, ``periodic``, ``equation``, options of the format
        (``dt``, ``length``...) and physical parameters stored as root attributes (``viscosity=1e-3``).
    block_bytes
        Output bytes copied per block.

    Returns
    -------
    dict
        ``path``, ``format``, ``problem``, ``samples``, ``source_sha256``, ``seconds``.

    Raises
    ------
    ConfigError
        Missing or unreadable source, unknown or unmatched layout (the message lists the arrays
        found), bad settings, an output that exists or cannot be written.
    """
    say = log or (lambda message: None)
    started = time.perf_counter()
    source, out = Path(source), output_files.resolve_output(out)
    found = inventory(source)
    chosen = choose_format(found, fmt)
    settings = _settings(overrides)
    _check_output(source, out, overwrite)
    plan = chosen.plan(found, settings)
    try:
        description = _description(plan, settings)
        checksum, origin = sha256(source), str(source.resolve())
        config = {"import": {"format": chosen.name, "source": origin, "source_sha256": checksum},
                  "settings": dict(sorted(_settings(overrides).items()))}
        attrs = {"problem": description.pop("problem"), "preset": f"import:{chosen.name}",
                 "config": json.dumps(config, sort_keys=True), "pdeop_version": __version__,
                 "Conventions": "CF-1.8", "source": origin, "source_sha256": checksum,
                 "source_format": chosen.name, **plan.extra, **settings, **description}
        say(f"importing {source} ({chosen.name}, {plan.n_samples} samples) into {out}")
        _write(plan, out, attrs, block_bytes, say)
    finally:
        plan.close()
    return {"path": str(out), "format": chosen.name, "problem": attrs["problem"], "samples": plan.n_samples,
            "source_sha256": checksum, "seconds": time.perf_counter() - started}


def _settings(overrides: Sequence[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for text in overrides:
        path, value = parse_override(text)
        if len(path) != 1:
            raise ConfigError(f"--set {text}: import settings are plain names (e.g. viscosity=1e-3), not dotted keys")
        if isinstance(value, str):
            value = _number(value)
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"--set {path[0]}: expected a number, a word or true/false (got {value!r})")
        settings[path[0]] = value
    return settings


def _number(text: str) -> str | float:
    """``text`` as a float when it reads as one (YAML leaves ``1e-3`` a string), else unchanged."""
    try:
        value = float(text)
    except ValueError:
        return text
    return value if np.isfinite(value) else text


def _description(plan: ImportPlan, settings: dict[str, Any]) -> dict[str, Any]:
    """``problem``, ``periodic``, ``physical_parameters`` and ``equation`` of the converted file."""
    import pde_data.families  # noqa: F401  (registers the built-in families)

    problem = str(settings.pop("problem", plan.problem))
    family = FAMILIES.get(problem)
    if family is not None:
        description = family.description()
    else:
        names = [*plan.layout.attrs, *(k for k in settings if k not in DESCRIPTION_KEYS)]
        description = {"periodic": plan.periodic, "physical_parameters": names, "equation": ""}
    if "periodic" in settings:
        periodic = settings.pop("periodic")
        if not isinstance(periodic, bool):
            raise ConfigError(f"--set periodic: expected true or false (got {periodic!r})")
        description["periodic"] = periodic
    if "equation" in settings:
        description["equation"] = str(settings.pop("equation"))
    return {"problem": problem, **description}


def _check_output(source: Path, out: Path, overwrite: bool) -> None:
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise ConfigError(f"--out {out} is the file being imported; choose another --out")
    storage.check_writable(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; use --overwrite to replace it or choose another --out")


def _write(plan: ImportPlan, out: Path, attrs: dict[str, Any], block_bytes: int, say: Callable[[str], None]) -> None:
    """Under ``out``'s writer lock, fill a process-unique temporary file block by block, mark it complete
    and rename it over ``out`` (:mod:`pde_data.output_files`); on any failure only that file is removed."""
    layout = plan.layout
    per_sample = sum(int(np.prod(layout.shape(name, 1))) * np.dtype(var.dtype).itemsize
                     for name, var in layout.variables.items())
    block = max(1, int(block_bytes // max(per_sample, 1)))
    nonfinite = 0
    with output_files.WriterLock(out):
        for orphan in output_files.remove_orphans(out):
            say(f"removed {output_files.shown(orphan)}, left by an interrupted run")
        staged = output_files.temp_path(out, "tmp", keep_suffix=False)
        try:
            storage.create(staged, layout, plan.n_samples, attrs)
            with storage.DatasetWriter(staged) as writer:
                for start in range(0, plan.n_samples, block):
                    stop = min(start + block, plan.n_samples)
                    arrays = plan.read(start, stop)
                    nonfinite += sum(int((~np.isfinite(v.reshape(len(v), -1))).any(axis=1).sum())
                                     for v in arrays.values() if v.dtype.kind in "fc")
                    writer.write(range(start, stop), arrays)
                writer.finish()
            output_files.replace(staged, out)
        finally:
            staged.unlink(missing_ok=True)
    if nonfinite:
        say(f"warning: {nonfinite} sample variable(s) of the source hold NaN or infinite values; training "
            f"refuses them (choose other samples)")
