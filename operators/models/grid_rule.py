"""Which grids a model accepts: what simulation, export and evaluation at other resolutions rely on.

A model that runs on more than its training grid says so by a method ``grid_rule(train_shape)``
returning a :class:`GridRule`; every other model is tied to its training grid (:func:`grid_rule`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class GridRule:
    """Grid sizes a model accepts, one entry per spatial axis.

    Attributes
    ----------
    minimum
        Smallest size per axis (e.g. an FNO's Fourier modes must fit the grid).
    multiple
        Sizes must be multiples of these (e.g. ``2**(levels - 1)`` for a multigrid hierarchy).
    fixed
        The only grid a grid-bound model accepts (its training grid), or None.
    """

    minimum: tuple[int, ...]
    multiple: tuple[int, ...]
    fixed: tuple[int, ...] | None = None

    @property
    def resolution_free(self) -> bool:
        """Whether more than one grid is accepted."""
        return self.fixed is None

    def problem(self, sizes: Sequence[int]) -> str | None:
        """Why the grid ``sizes`` is not accepted, or None when it is."""
        sizes = tuple(int(n) for n in sizes)
        if len(sizes) != len(self.minimum):
            return f"the model has {len(self.minimum)} spatial axes, the grid {sizes} has {len(sizes)}"
        if self.fixed is not None:
            return None if sizes == self.fixed else f"the model runs only on its training grid {self.describe()}"
        for n, low, step in zip(sizes, self.minimum, self.multiple):
            if n < low or n % step:
                return f"the model needs sizes {self.describe()} (got {'x'.join(map(str, sizes))})"
        return None

    def describe(self) -> str:
        """``32x32``, ``any size >= 12``, ``multiples of 8 (>= 8)``, per axis when they differ."""
        if self.fixed is not None:
            return "x".join(map(str, self.fixed))
        parts = {(low, step) for low, step in zip(self.minimum, self.multiple)}
        if len(parts) == 1:
            low, step = parts.pop()
            return f"any size >= {low}" if step == 1 else f"multiples of {step} (>= {low})"
        return ", ".join(f"axis {i}: >= {low}" + (f", multiple of {step}" if step > 1 else "")
                         for i, (low, step) in enumerate(zip(self.minimum, self.multiple)))


def grid_rule(model: Any, train_shape: Sequence[int]) -> GridRule:
    """The model's :class:`GridRule` (its own ``grid_rule`` method), else its training grid only."""
    train_shape = tuple(int(n) for n in train_shape)
    own = getattr(model, "grid_rule", None)
    if callable(own):
        return own(train_shape)
    return GridRule(train_shape, (1,) * len(train_shape), fixed=train_shape)
