"""pytest plugin: run neuraloperator's own tests with pdeop's SpectralConv as its default ``conv_module``.

Load it with ``-p tests.operators.neuralop_drop_in`` from the repository root; it makes our layer the
default of ``neuralop.models.FNO`` and ``neuralop.layers.fno_block.FNOBlocks`` (and so of UNO and the
other models built on them) for the whole session. The full drop-in check (README, "neuraloperator"):

    .venv/bin/python -m pytest -p tests.operators.neuralop_drop_in -p no:cacheprovider \
        --pyargs neuralop.models.tests.test_fno neuralop.models.tests.test_uno

``tests/operators/test_neuralop_model_tests.py`` runs a subset of the same tests in the suite.
"""

from __future__ import annotations

import contextlib

import pytest

_STACK = contextlib.ExitStack()


def pytest_configure(config: pytest.Config) -> None:  # noqa: D103
    from operators.layers.neuralop_interop import pdeop_conv_as_neuralop_default

    _STACK.enter_context(pdeop_conv_as_neuralop_default())


def pytest_unconfigure(config: pytest.Config) -> None:  # noqa: D103
    _STACK.close()


def pytest_report_header(config: pytest.Config) -> str:  # noqa: D103
    return "neuralop's default conv_module: operators.layers.spectral_conv.SpectralConv (pdeop)"
