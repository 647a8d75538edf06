"""Stepping API and hybrid stepping (operators.simulate): solver reproduction, equality of code paths,
the error indicator's convergence order, hand-over to the solver."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from operators.simulate import OperatorStepper, ResidualIndicator, Simulation, SolverStepper
from operators.training.surrogate import Surrogate
from pde_data.family import get_family
from pde_data.config import from_mapping
from solvers.errors import ConfigError, StabilityError


def _family(problem: str, **settings):
    family_class = get_family(problem)
    return family_class(from_mapping(family_class.config_class, settings))


BURGERS = dict(resolution=32, internal_resolution=32, viscosity=0.05, dt=1e-3, T=0.04, record_every=0.02)
NS = dict(resolution=16, internal_resolution=16, viscosity=1e-2, dt=1e-2, T=0.2, record_every=0.1)
KS = dict(resolution=32, internal_resolution=32, L=[12.0, 16.0], dt=0.05, T=0.4, record_every=0.2, warmup_steps=0)


@pytest.mark.parametrize("problem, settings", [("burgers", BURGERS), ("navier-stokes", NS),
                                               ("kuramoto-sivashinsky", KS)])
def test_solver_stepper_reproduces_the_family(problem, settings):
    family = _family(problem, **settings)
    stored = family.generate([0, 1], seed=3)
    u = stored["u" if "u" in stored else "w"]  # [2, T, *grid] float32
    lengths = stored.get("L")
    solver = SolverStepper(problem, family.config, family.config.record_every, lengths)
    states = Simulation(torch.from_numpy(u[:, :1]).double(), solver=solver, mode="solver").advance(u.shape[1] - 1)
    # the stored states are float32: the start differs from the family's float64 state by ~6e-8
    # relative; a few short steps of these smooth, dissipative problems amplify that by O(1), so 1e-5
    # leaves a margin of > 10 over the rounding
    scale = float(np.abs(u).max())
    assert float((states - torch.from_numpy(u[:, 1:]).double()).abs().max()) <= 1e-5 * scale


class _Persistence(nn.Module):
    """A 'model' that repeats the last state (history 1, step 1)."""

    def __init__(self, factor: float = 1.0) -> None:
        super().__init__()
        self.factor = nn.Parameter(torch.tensor(factor, dtype=torch.float64), requires_grad=False)

    def forward(self, x):
        return self.factor * x[:, -1:]


class _Wrapped(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


def _stepper(model: nn.Module, interval: float, grid: tuple[int, ...], history: int = 1) -> OperatorStepper:
    return OperatorStepper(Surrogate(_Wrapped(model), history=history, step=1), interval, grid)


def _burgers_start(n: int = 32, batch: int = 3) -> torch.Tensor:
    x = torch.arange(n, dtype=torch.float64) / n
    amplitude = torch.linspace(0.5, 1.0, batch, dtype=torch.float64)[:, None]
    return (amplitude * torch.sin(2 * np.pi * x) + 0.2 * torch.cos(4 * np.pi * x))[:, None]


def test_indicator_is_one_for_persistence_and_second_order_for_the_solver():
    family = _family("burgers", **BURGERS)
    u0 = _burgers_start()[:, 0]
    etas = []
    for interval in (0.016, 0.008, 0.004):
        solver = SolverStepper("burgers", family.config, interval)
        indicator = ResidualIndicator(solver)
        u1 = solver.advance(u0[:, None])[:, 0]
        etas.append(float(indicator(u0, u1).max()))
        # persistence: eta = ||F|| / (0 + ||F||) exactly, up to rounding
        assert torch.allclose(indicator(u0, u0), torch.ones(3, dtype=torch.float64), atol=1e-12)
    # the trapezoidal residual of the exact solution is O(dt^2): halving dt divides eta by ~4
    # (observed order within 0.3 of 2 at these smooth, resolved steps)
    orders = np.log2(np.array(etas[:-1]) / np.array(etas[1:]))
    assert np.all(np.abs(orders - 2.0) < 0.3), (etas, orders)
    assert etas[-1] < 1e-2


def test_surrogate_mode_matches_the_surrogates_rollout():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 1, 5, padding=2, padding_mode="circular", dtype=torch.float64))
    surrogate = Surrogate(_Wrapped(model), history=2, step=1)
    start = torch.randn(2, 2, 16, dtype=torch.float64)
    expected = surrogate.rollout(start, None, 5)
    got = Simulation(start, operator=OperatorStepper(surrogate, 0.1, (16,)), mode="surrogate").advance(5)
    assert torch.equal(got, expected)


def test_hybrid_hands_bad_steps_to_the_solver_and_keeps_good_ones():
    family = _family("burgers", **BURGERS)
    solver = SolverStepper("burgers", family.config, 0.004)
    start = _burgers_start()
    reference = Simulation(start, solver=solver, mode="solver").advance(4)
    # persistence has eta = 1 at every step: tolerance 0.5 rejects all of them -> exactly the solver
    hybrid = Simulation(start, operator=_stepper(_Persistence(), 0.004, (32,)), solver=solver, mode="hybrid",
                        tolerance=0.5)
    assert torch.equal(hybrid.advance(4), reference)
    assert hybrid.counts == {"solver": 12, "operator": 0, "rejected": 12}
    # a tolerance above 1 accepts persistence everywhere
    loose = Simulation(start, operator=_stepper(_Persistence(), 0.004, (32,)), solver=solver, mode="hybrid",
                       tolerance=1.5)
    assert torch.equal(loose.advance(4), start.expand(-1, 4, -1))
    assert loose.counts["operator"] == 12 and loose.counts["solver"] == 0


def test_unstable_surrogate_is_detected():
    family = _family("burgers", **BURGERS)
    solver = SolverStepper("burgers", family.config, 0.004)
    start = _burgers_start()
    exploding = _stepper(_Persistence(100.0), 0.004, (32,))
    rescued = Simulation(start, operator=exploding, solver=solver, mode="surrogate")
    assert torch.equal(rescued.advance(3), Simulation(start, solver=solver, mode="solver").advance(3))
    assert rescued.counts["solver"] == 9
    nan_model = _stepper(_Persistence(float("nan")), 0.004, (32,))
    with pytest.raises(StabilityError, match="no longer finite"):
        Simulation(start, operator=nan_model, mode="surrogate").advance(2)


def test_missing_history_is_made_by_the_solver():
    family = _family("burgers", **BURGERS)
    solver = SolverStepper("burgers", family.config, 0.004)
    start = _burgers_start()
    operator = _stepper(nn.Sequential(), 0.004, (32,), history=3)  # identity on the 3-state window
    operator.step = 1
    simulation = Simulation(start, operator=operator, solver=solver, mode="surrogate")
    with pytest.raises(ConfigError, match="reads 3 past states"):
        Simulation(start, operator=operator, mode="surrogate").advance(3)
    states = simulation.advance(2)
    assert torch.equal(states, Simulation(start, solver=solver, mode="solver").advance(2))
    assert simulation.counts["solver"] == 6


@pytest.mark.parametrize("kwargs, message", [
    (dict(mode="hybrid", tolerance=0.0), "tolerance must be > 0"),
    (dict(mode="hybrid", tolerance=-1.0), "tolerance must be > 0"),
    (dict(mode="sometimes"), "mode must be one of"),
])
def test_bad_settings_are_config_errors(kwargs, message):
    family = _family("burgers", **BURGERS)
    solver = SolverStepper("burgers", family.config, 0.004)
    with pytest.raises(ConfigError, match=message):
        Simulation(_burgers_start(), operator=_stepper(_Persistence(), 0.004, (32,)), solver=solver, **kwargs)


def test_grid_the_model_cannot_take_is_refused():
    from operators.models.fno import FNO, FNOConfig

    model = FNO(from_mapping(FNOConfig, {"n_modes": [8], "in_channels": 1, "out_channels": 1, "width": 4,
                                        "n_layers": 1}))
    operator = OperatorStepper(Surrogate(_Wrapped(model), history=1, step=1), 0.004, (32,))
    family = _family("burgers", **BURGERS)
    solver = SolverStepper("burgers", family.config, 0.004)
    with pytest.raises(ConfigError, match="any size >= 8"):
        Simulation(torch.zeros(1, 1, 6, dtype=torch.float64), operator=operator, solver=solver, mode="hybrid",
                   tolerance=0.1)
    with pytest.raises(ConfigError, match="multiple of"):
        SolverStepper("burgers", family.config, 0.0015)


class _RepeatLast(_Persistence):
    """A 'model' with step 3: the last state three times (persistence over three steps, in float64)."""

    def forward(self, x):
        return self.factor * x[:, -1:].repeat(1, 3, *([1] * (x.ndim - 2)))


def test_steps_past_the_requested_count_are_neither_kept_nor_counted():
    """An operator making 3 states per call, asked for 4 states, makes 6; only 4 are returned, kept,
    counted and (hybrid) checked or redone by the solver."""
    family = _family("burgers", **BURGERS)
    solver = SolverStepper("burgers", family.config, 0.004)
    start = _burgers_start()  # 3 samples
    operator = OperatorStepper(Surrogate(_Wrapped(_RepeatLast()), history=1, step=3), 0.004, (32,))
    surrogate = Simulation(start, operator=operator, mode="surrogate")
    assert torch.equal(surrogate.advance(4), start.expand(-1, 4, -1))
    assert surrogate.states.shape[1] == 5 and surrogate.counts == {"solver": 0, "operator": 12, "rejected": 0}
    # persistence has eta = 1: tolerance 0.5 rejects every step, so the solver makes exactly the 4 states
    hybrid = Simulation(start, operator=operator, solver=solver, mode="hybrid", tolerance=0.5)
    assert torch.equal(hybrid.advance(4), Simulation(start, solver=solver, mode="solver").advance(4))
    assert hybrid.counts == {"solver": 12, "operator": 0, "rejected": 6}  # 2 calls x 3 samples
    assert [eta.shape for eta in hybrid.eta] == [(3,), (3,)]
    hybrid.advance(2)  # continues from the 5 kept states
    assert hybrid.states.shape[1] == 7 and hybrid.counts["solver"] == 18


def test_the_families_describe_their_time_stepper():
    """The stepping families are the recorded-grid ones (what their steppers compute is checked against
    their own data by test_solver_stepper_reproduces_the_family); an elliptic family has none."""
    from pde_data.grid_settings import time_stepping_problems

    assert time_stepping_problems() == ("burgers", "kuramoto-sivashinsky", "navier-stokes")
    with pytest.raises(ConfigError, match="no pdeop time stepper for problem 'darcy'"):
        SolverStepper("darcy", None, 1.0)
