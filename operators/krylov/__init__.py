"""A trained operator inside the linear solves of the elliptic families (``pdeop generate ... --warm-start RUN``).

* :mod:`operators.krylov.correction` — the residual-to-error network of the two-level cycle, trained
  on pairs the family's own matrices make (``r = A e`` for random smooth errors ``e``).
* :mod:`operators.krylov.warm_start` — :func:`warm_start_from_run` checks a run against the problem
  being generated and returns the :class:`~pde_data.warm_start.WarmStart` handed to the family.
"""

from operators.krylov.correction import CorrectionModel, CorrectionSettings, train_correction
from operators.krylov.warm_start import NeuralWarmStart, warm_start_from_run

__all__ = ["CorrectionModel", "CorrectionSettings", "NeuralWarmStart", "train_correction", "warm_start_from_run"]
