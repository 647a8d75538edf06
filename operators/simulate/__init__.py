"""Operators inside simulations: steppers with one interface for trained operators and pdeop solvers.

* :class:`~operators.simulate.operator_stepper.OperatorStepper` — a trained time-dependent run;
* :class:`~operators.simulate.solver_stepper.SolverStepper` — the family's pdeop integrator
  (Navier-Stokes, Kuramoto-Sivashinsky, Burgers);
* :class:`~operators.simulate.simulation.Simulation` — keeps the history window and advances a
  batch with either stepper or both (hybrid stepping under a PDE-residual error indicator,
  :class:`~operators.simulate.indicator.ResidualIndicator`);
* :func:`~operators.simulate.coupling.couple_run` — both steppers and initial states from a run folder.
"""

from operators.simulate.coupling import Coupling, couple_run
from operators.simulate.indicator import ResidualIndicator
from operators.simulate.operator_stepper import OperatorStepper
from operators.simulate.simulation import MODES, Simulation
from operators.simulate.solver_stepper import SolverStepper, solver_from_dataset

__all__ = ["Coupling", "couple_run", "ResidualIndicator", "OperatorStepper", "Simulation", "MODES",
           "SolverStepper", "solver_from_dataset"]
