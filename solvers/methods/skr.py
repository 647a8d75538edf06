"""Sorted Krylov recycling (SKR): GCRO-DR over the sequence in similarity order.

The solver is the ``gcrodr`` method's; what makes it SKR is that the families solve their samples
in the order of :func:`solvers.sorting.similarity_order` (Wang et al., ICLR 2024).
"""

from __future__ import annotations

from solvers.methods.gcrodr import RecyclingGCRODR
from solvers.registry import register_method


@register_method("skr", code=0)
class SortedKrylovRecycling(RecyclingGCRODR):
    """GCRO-DR(m, k) whose callers sort the systems by similarity."""
