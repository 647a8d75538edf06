"""Fixtures shared by the operator tests."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture(scope="session")
def dead_pid() -> int:
    """The PID of a process that has exited (for files named after a writer that was killed)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
