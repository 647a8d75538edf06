"""What PDEBench file names say: ``1D_Burgers_Sols_Nu0.001.hdf5`` is Burgers with ``Nu = 0.001``.

PDEBench files record their equation and parameters in the file name only; the importers keep them as
the problem name (``pdebench-burgers``) and root attributes named as in the file name (``Nu``), which
follow PDEBench's conventions (its Burgers diffusion is ``Nu / pi``), not pdeop's.
"""

from __future__ import annotations

import re
from pathlib import Path

_PARAMETER = re.compile(r"^([A-Za-z]+)([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)$")
_SKIP = {"sols", "sol", "train", "test", "valid", "na"}


def name_parameters(path: Path) -> tuple[str | None, dict[str, float]]:
    """The equation word (lower case) and the ``NameValue`` parameters of a PDEBench file name."""
    parts = path.stem.split("_")
    equation = None
    parameters: dict[str, float] = {}
    for part in parts:
        match = _PARAMETER.match(part)
        if match:
            parameters[match.group(1)] = float(match.group(2))
        elif equation is None and part.replace("-", "").isalpha() and part.lower() not in _SKIP:
            equation = part.lower()
    return equation, parameters
