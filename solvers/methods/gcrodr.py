"""GCRO-DR(m, k) carrying its recycled space from one system to the next, in the order the caller gives."""

from __future__ import annotations

from solvers.methods.gmres import GMRES
from solvers.registry import register_method


@register_method("gcrodr", code=1)
class RecyclingGCRODR(GMRES):
    """:class:`~solvers.gcrodr.GCRODR` with the configured recycle dimension ``k``."""


    def recycle_dimension(self) -> int:
        return self.settings.k
