"""Argument types shared by the commands: numbers that must be finite and in range, or argparse refuses them.

argparse reports a refused value as one line with exit code 2 (``error: argument --threads: ...``),
before any work starts.
"""

from __future__ import annotations

import argparse
import math


#: the largest count a flag accepts (torch takes thread counts as C ints)
MAX_COUNT = 2**31 - 1


def positive_int(text: str) -> int:
    """An integer from 1 to :data:`MAX_COUNT` (``--samples``, ``--horizon``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {text!r})") from None
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {MAX_COUNT} (got {text[:30]})")
    return value


def threads(text: str) -> int:
    """A thread count from 1 to 4096 (``--threads``)."""
    value = positive_int(text)
    if value > 4096:
        raise argparse.ArgumentTypeError(f"must be a thread count from 1 to 4096 (got {value})")
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
