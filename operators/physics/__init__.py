"""Physics-informed models: PDE specifications, PINN, causal PINN and LPINN.

Public API (imported lazily, so ``import operators.physics`` stays light)::

    build_pde({"name": "convection", "c": 50})   # a PDE specification (residual, initial condition)
    run(config, run_dir)                         # train a config with a ``pde:`` section (pdeop train)
    evaluate(run_dir)                            # relative L2 against the exact / reference solution
    plot(run_dir)                                # solution, error, loss and causal-weight figures
    reference(spec, t, x)                        # exact or reference solution on a grid
    physics_loss(problem, prediction, grid, dt, params)   # PDE-residual loss for neural operators

The networks are registered models: ``pinn`` (:class:`operators.models.pinn.PINN`) and ``lpinn``
(:class:`operators.models.lpinn.LPINN`), saved and loaded with ``operators.save`` / ``operators.load``.
"""

from __future__ import annotations

from solvers.lazy_exports import lazy_exports

_EXPORTS = {
    "build_pde": "operators.physics.pde_specs",
    "PDES": "operators.physics.pde_specs",
    "run": "operators.physics.training",
    "evaluate": "operators.physics.evaluation",
    "plot": "operators.physics.plots",
    "reference": "operators.physics.exact",
    "physics_loss": "operators.physics.operator_residual",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
