"""Argument types shared by the commands: numbers that must be finite and in range, or argparse refuses them.

argparse reports a refused value as one line with exit code 2 (``error: argument --threads: ...``),
before any work starts.
"""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    """An integer >= 1 (``--threads``, ``--samples``, ``--horizon``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {text})")
    return value


def minutes(text: str) -> float:
    """A finite number of minutes >= 0 (``--max-minutes``; ``nan``, ``inf`` and negatives are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of minutes >= 0 (got {text!r})") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of minutes >= 0 (got {text})")
    return value
