"""Shared base of the problem families whose samples are sparse linear solves.

An :class:`EllipticFamily` draws each sample's input fields from ``sample_rng(seed, i, stream)``,
assembles the sparse system(s) of the sample, and hands them to one :class:`~solvers.sequence.SequenceSolver`
that lives as long as the family object — across the pipeline's chunks — so recycled Krylov
spaces, reused preconditioners and factorizations carry from one sample to the next. The solve
order comes from :meth:`EllipticFamily.solve_order`: a nearest-neighbour chain on low-mode features
of the parameter fields (:mod:`solvers.sorting`), or the index order with ``sort: false``.

Stored per sample, besides the input fields and the solution ``u``: ``iterations``, ``matvecs``,
``residual`` (the true relative residual of the stored float64 solution, checked by the solver
against ``rtol``), ``solve_seconds``, ``solver`` (integer code of the method that produced the
solution, with the code -> name table of :mod:`solvers.registry` in its CF ``flag_values`` /
``flag_meanings``; codes are fixed per method and never reused) and ``retries`` (stronger methods
needed).

Reproducibility and its one exception
-------------------------------------
Inputs depend only on ``(seed, i)`` and the config, so they are bit-identical whatever the solve
order, chunking or resumption. Solutions from a **direct** solve depend only on the sample's system
and are bit-identical too. Solutions from an **iterative** solve (``skr``, ``gcrodr``, ``gmres``,
``cg``, ``amg``) start from the state the previous solves left (recycled space, reused
preconditioner). That state is restarted at fixed points: the solve order is cut into sequences of
``samples_per_sequence`` samples, each solved from a fresh solver (:meth:`EllipticFamily.sequence_length`),
and the pipeline computes every sequence whole, in one chunk. So chunking, resumption and the number
of Dask workers never change a stored value. A different solve order — sorted vs. unsorted, another
``samples_per_sequence`` (both part of the config) — gives solutions that differ at the level of the
verified tolerance: both satisfy ``||b - A u|| <= rtol ||b||`` and agree with a sparse LU solution to
``cond(A) * rtol``. No final step can map every vector within the tolerance onto one canonical
vector, so pdeop does not pretend to. ``solve_seconds`` is a measurement and differs between any two
runs.
"""

from __future__ import annotations

import dataclasses
import math
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from pde_data.config import check, check_power
from pde_data.family import Family, Layout, Variable, merge_summaries, sample_rng
from pde_data.finite_differences import embed_interior, grid_spacing, interior
from pde_data.random_fields import neumann_grf
from pde_data.conditioning import SINGULAR_CONDITION, check_conditioning, condition_lower_bound
from pde_data.solve_statistics import SampleStats, statistics_row, statistics_variables
from pde_data.warm_start import WarmStart, accelerated_solve
from solvers.errors import ConfigError, SolverError
from solvers.preconditioners import PRECONDITIONERS
from solvers.result import SolveResult
from solvers.registry import method_class, solver_choices
from solvers.sequence import SequenceSolver
from solvers.sorting import low_mode_features, similarity_order
from solvers.traits import ProblemTraits, choose_method

__all__ = ["SINGULAR_CONDITION", "EllipticConfig", "EllipticFamily", "SampleStats", "System",
           "condition_lower_bound", "solver_bytes"]

@dataclasses.dataclass(frozen=True)
class EllipticConfig:
    """Settings shared by every linear-solve family (each family's config extends this one).

    Attributes
    ----------
    resolution
        Grid vertices per side, boundary included; ``h = 1 / (resolution - 1)``.
    solver
        One of ``auto``, ``skr``, ``gcrodr``, ``gmres``, ``cg``, ``amg``, ``direct``.
    rtol
        Required true relative residual of every stored solution.
    sort
        Solve samples in similarity order (``skr`` = ``gcrodr`` + sorting); ignored by ``direct``.
    preconditioner
        ``auto`` or one of ``none``, ``jacobi``, ``ilu``, ``amg``.
    restart, recycle
        GCRO-DR's ``m`` and ``k``.
    sort_modes
        Cosine modes per axis of each parameter field used as sorting features.
    samples_per_sequence
        Iterative solvers carry their recycled space and preconditioner through this many samples
        of the solve order, then start afresh: the unit of work that runs on its own (on another
        Dask worker, after a resumption) with unchanged results. Longer sequences recycle more;
        shorter ones give more parallel work. Ignored by ``direct``.
    alpha, tau
        Covariance ``tau^(2 alpha - 2) (-Laplace_N + tau^2 I)^(-alpha)`` of the family's Gaussian
        random fields (smoothness and inverse length scale).
    dtype
        Stored precision of fields. ``float64`` keeps the stored residual exactly that of the
        stored solution; ``float32`` halves the file.
    """

    resolution: int = 64
    solver: str = "auto"
    rtol: float = 1e-8
    sort: bool = True
    preconditioner: str = "auto"
    restart: int = 40
    recycle: int = 20
    sort_modes: int = 8
    samples_per_sequence: int = 64
    dtype: str = "float64"
    alpha: float = 2.0
    tau: float = 3.0

    def __post_init__(self) -> None:
        check(self.resolution >= 5, f"resolution must be an integer >= 5 (got {self.resolution})")
        choices = solver_choices()
        check(self.solver in choices, f"solver must be one of {', '.join(choices)} (got {self.solver!r})")
        check(0 < self.rtol <= 1e-3, f"rtol must be a number in (0, 1e-3] (got {self.rtol})")
        options = ("auto",) + PRECONDITIONERS
        check(self.preconditioner in options,
              f"preconditioner must be one of {', '.join(options)} (got {self.preconditioner!r})")
        check(self.restart >= 2, f"restart must be an integer >= 2 (got {self.restart})")
        check(0 <= self.recycle < self.restart,
              f"recycle must be an integer in [0, restart) = [0, {self.restart}) (got {self.recycle})")
        check(self.sort_modes >= 1, f"sort_modes must be an integer >= 1 (got {self.sort_modes})")
        check(self.samples_per_sequence >= 1,
              f"samples_per_sequence must be an integer >= 1 (got {self.samples_per_sequence})")
        check(self.dtype in ("float32", "float64"), f"dtype must be 'float32' or 'float64' (got {self.dtype!r})")
        check(self.alpha > 1.0, f"alpha must be a number > 1 for a continuous field (got {self.alpha})")
        check(self.tau > 0, f"tau must be a positive number (got {self.tau})")
        check_power("the random fields' amplitude tau^(alpha - 1)", self.tau, self.alpha - 1.0)
        check_power("the random fields' tau^2", self.tau, 2.0)


@dataclasses.dataclass(frozen=True)
class System:
    """One linear system of a family's sequence, as handed to the solver.

    Attributes
    ----------
    index
        Global sample index.
    step
        Time step within the sample (0 for single-solve families).
    A
        Sparse matrix (CSR, float64).
    b
        Right-hand side (float64).
    features
        The sample's sorting features (equal for all steps of one sample).
    """

    index: int
    step: int
    A: sp.csr_matrix
    b: np.ndarray
    features: np.ndarray


class EllipticFamily(Family):
    """Base of the families ``darcy``, ``poisson``, ``helmholtz``, ``convection-diffusion``, ``heat``, 3D.

    Subclasses define :attr:`inputs` (names of the stored input fields), :attr:`parameters` (the
    inputs that define similarity; default all), :meth:`sample_inputs`, :meth:`assemble` and
    :meth:`traits`; they may override :meth:`solution_fields`, :meth:`check_sample` and, for
    families with several solves per sample, :meth:`solve_sample` and :meth:`systems`.

    See the module docstring for what is and is not bit-identical between solve orders.
    """

    #: spatial dimension of the grid
    dim: ClassVar[int] = 2
    #: stored input fields, each on the full ``(K,) * dim`` grid, with their ``long_name``
    inputs: ClassVar[dict[str, str]] = {}
    #: inputs whose low modes make the sorting features (empty: all of :attr:`inputs`)
    parameters: ClassVar[tuple[str, ...]] = ()
    #: inputs that must be positive everywhere (diffusion coefficients)
    positive: ClassVar[tuple[str, ...]] = ()
    #: what a non-finite or non-positive input usually means, appended to the error message
    nonfinite_remedy: ClassVar[str] = "check the settings that shape the random fields"

    def __init__(self, config: EllipticConfig) -> None:
        super().__init__(config)
        self._solver: SequenceSolver | None = None
        self._finished: list[dict[str, Any]] = []  # summaries of the sequences' solvers already restarted
        #: a trained model's help with each sample's solve (:mod:`pde_data.warm_start`), or None
        self.warm_start: WarmStart | None = None

    # ------------------------------------------------------------------ to implement
    @abstractmethod
    def sample_inputs(self, index: int, seed: int) -> dict[str, np.ndarray]:
        """Input fields of sample ``index``, float64 on the full grid, from ``sample_rng(seed, index, stream)``."""

    @abstractmethod
    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """The sample's sparse system ``(A, b)`` (float64)."""

    @abstractmethod
    def traits(self) -> ProblemTraits:
        """Traits of the family's systems at the configured size (for ``solver: auto``)."""

    def interior_traits(self, symmetric: bool, definite: bool, **more: Any) -> ProblemTraits:
        """:class:`ProblemTraits` of a system whose unknowns are the interior nodes (``u = 0`` on the boundary).

        Parameters
        ----------
        symmetric, definite
            Whether the matrix is symmetric / definite.
        **more
            Further :class:`ProblemTraits` fields (e.g. ``same_matrix``, ``crossover``).

        Returns
        -------
        ProblemTraits
            ``(resolution - 2) ** dim`` unknowns, the unknowns of :meth:`solution_fields`'s default.
        """
        return ProblemTraits(dim=self.dim, n_unknowns=(self.config.resolution - 2) ** self.dim, symmetric=symmetric,
                             definite=definite, **more)

    def attrs(self) -> dict[str, Any]:
        """Extra root attributes of the dataset file."""
        return {}

    def check_sample(self, index: int, inputs: dict[str, np.ndarray]) -> None:
        """Raise :class:`SolverError` naming ``index`` if the sample's set-up is singular or invalid."""

    def cycle_smoother(self) -> str:
        """The relaxation of the neural two-level cycle (:mod:`pde_data.warm_start`) for this family.

        Symmetric Gauss–Seidel (``sor``) for SPD families; otherwise the ILU the family's solver uses
        (ILU(0) and Gauss–Seidel leave FGMRES stagnating on indefinite systems). Families with a
        better-suited operator override this.
        """
        return "sor" if self.traits().spd else "ilu"

    def shifted_matrix(self, inputs: dict[str, np.ndarray], shift: float) -> sp.csr_matrix:
        """A damped copy of the sample's matrix, easier to factor approximately, as a preconditioner.

        Families whose systems are indefinite wave problems override this (Helmholtz: the complex
        shifted Laplacian); the others have none.

        Raises
        ------
        ConfigError
            Always, here: the family has no shifted operator.
        """
        raise ConfigError(f"{self.name} has no shifted operator to precondition with; "
                          "use the smoother 'ilu' or 'sor' instead of 'shifted-ilu'")

    def solution_fields(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Turn the solution vector into stored fields (default: interior unknowns → ``u`` on the full grid)."""
        return {"u": embed_interior(x, self.config.resolution, self.dim)}

    def solution_vector(self, fields: dict[str, np.ndarray]) -> np.ndarray:
        """Inverse of :meth:`solution_fields`: the unknowns from stored fields (to re-check a residual)."""
        return interior(np.asarray(fields["u"], dtype=np.float64)).ravel()

    def solution_variables(self) -> dict[str, Variable]:
        """Stored solution variables (default: ``u`` on the grid)."""
        return {"u": Variable(("sample",) + self.grid_dims, self.config.dtype, {"long_name": "solution"})}

    # ------------------------------------------------------------------ random inputs
    def random_field(self, index: int, seed: int, stream: int) -> np.ndarray:
        """Gaussian random field of sample ``index`` on the full grid (Neumann cosine expansion, mean removed).

        Covariance ``tau^(2 alpha - 2) (-Laplace_N + tau^2 I)^(-alpha)`` with the config's ``alpha``
        and ``tau``, as in the FNO Darcy generator; ``stream`` separates a sample's independent fields.
        """
        rng = sample_rng(seed, index, stream)
        return neumann_grf(rng, self.config.resolution, alpha=self.config.alpha, tau=self.config.tau, dim=self.dim)

    def unit_field(self, index: int, seed: int, stream: int) -> np.ndarray:
        """:meth:`random_field` scaled to unit root-mean-square over the grid (a shape, not an amplitude)."""
        field = self.random_field(index, seed, stream)
        return field / np.sqrt(np.mean(field**2))

    def lognormal_field(self, index: int, seed: int, stream: int, log_scale: float) -> np.ndarray:
        """``exp(log_scale * g)`` of :meth:`random_field`; overflow gives inf, refused later naming the sample."""
        with np.errstate(over="ignore", under="ignore"):
            return np.exp(log_scale * self.random_field(index, seed, stream))

    # ------------------------------------------------------------------ layout
    @property
    def grid_dims(self) -> tuple[str, ...]:
        """Names of the grid dimensions, first axis first."""
        return ("x", "y", "z")[: self.dim]

    @property
    def h(self) -> float:
        """Mesh width."""
        return grid_spacing(self.config.resolution)

    def layout(self) -> Layout:
        """Input fields, solution fields, per-sample solver statistics; coordinates on the vertex grid."""
        line = np.linspace(0.0, 1.0, self.config.resolution)
        coords = {name: line for name in self.grid_dims}
        return Layout(coords=coords, variables=self.variables(), attrs=self.attrs())

    def variables(self) -> dict[str, Variable]:
        """Input fields, solution fields and the per-sample solver statistics."""
        dims = ("sample",) + self.grid_dims
        variables = {name: Variable(dims, self.config.dtype, {"long_name": text}) for name, text in self.inputs.items()}
        variables.update(self.solution_variables())
        variables.update(statistics_variables())
        return variables

    def dimension_sizes(self) -> dict[str, int]:
        """``resolution`` vertices along each grid dimension."""
        return {name: self.config.resolution for name in self.grid_dims}

    def static_bytes(self) -> int:
        """No static variables."""
        return 0

    def unknowns(self) -> int:
        """Unknowns of one linear system (default: the interior nodes)."""
        return (self.config.resolution - 2) ** self.dim

    def working_memory(self, n_samples: int) -> tuple[int, int]:
        """Per sample of a chunk: its stored row kept until the chunk is written. Fixed: one sample's
        input fields and their random draws, the sparse matrix and its assembly, the solver's
        working set (:func:`solver_bytes`) and, when sorting, every sample's features."""
        c = self.config
        grid = c.resolution**self.dim
        n = self.unknowns()
        nnz = (2 * self.dim + 1) * n
        matrix = 4 * nnz * 16 + 2 * 8 * n  # CSR (8-byte values and indices), assembly temporaries
        fields = 10 * 8 * grid * (len(self.inputs) + 1)
        features = 0
        if c.sort and self.config.solver != "direct":
            per_sample = len(self.parameters or self.inputs) * c.sort_modes**self.dim
            features = 3 * 8 * per_sample * n_samples
        return self.stored_sample_bytes(), fields + matrix + solver_bytes(self, n, nnz) + features

    # ------------------------------------------------------------------ sorting
    def features(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Sorting features of one sample: low cosine modes of each parameter field, by name."""
        names = self.parameters or tuple(self.inputs)
        return {name: low_mode_features(inputs[name][None], self.config.sort_modes)[0] for name in names}

    def _feature_matrix(self, indices: Sequence[int], seed: int) -> np.ndarray:
        """Features of ``indices`` as one ``(N, F)`` array, each field's block scaled to unit RMS."""
        blocks: dict[str, list[np.ndarray]] = {}
        for i in indices:
            inputs = self._checked_inputs(int(i), seed)
            for name, row in self.features(inputs).items():
                blocks.setdefault(name, []).append(row)
        scaled = []
        for rows in blocks.values():
            block = np.asarray(rows)
            rms = float(np.sqrt(np.mean(block**2)))
            scaled.append(block / rms if rms > 0 else block)
        return np.concatenate(scaled, axis=1)

    def method(self) -> str:
        """The solver method this config runs (``auto`` resolved by :func:`~solvers.sequence.choose_method`)."""
        return choose_method(self.traits()) if self.config.solver == "auto" else self.config.solver

    def solve_order(self, n_samples: int, seed: int) -> np.ndarray:
        """Similarity order of the samples (greedy nearest-neighbour chain), or ``0..N-1``.

        The index order is used with ``sort: false`` and for direct solves, whose results do not
        depend on the order (sorting would only cost the feature pass).
        """
        if not self.config.sort or n_samples < 3 or not method_class(self.method()).order_matters:
            return np.arange(n_samples)
        return similarity_order(self._feature_matrix(range(n_samples), seed))

    # ------------------------------------------------------------------ solving
    def _checked_inputs(self, index: int, seed: int) -> dict[str, np.ndarray]:
        inputs = self.sample_inputs(index, seed)
        for name, values in inputs.items():
            bad = ~np.isfinite(values)
            if bad.any():
                raise SolverError(f"sample {index}: input {name} holds {int(bad.sum())} non-finite values "
                                  f"(of {values.size}); {self.nonfinite_remedy}")
        for name in self.positive:
            low = float(inputs[name].min())
            if not low > 0:
                raise SolverError(f"sample {index}: input {name} must be positive everywhere (minimum {low:.3g}); "
                                  f"{self.nonfinite_remedy}")
        self.check_sample(index, inputs)
        return inputs

    @property
    def solver(self) -> SequenceSolver:
        """The family's persistent sequence solver (created at first use)."""
        if self._solver is None:
            c = self.config
            self._solver = SequenceSolver(c.solver, self.traits(), rtol=c.rtol, m=c.restart, k=c.recycle,
                                          preconditioner=c.preconditioner)
        return self._solver

    def solve(self, index: int, A: sp.csr_matrix, b: np.ndarray, x0: np.ndarray | None = None,
              step: int | None = None, inputs: dict[str, np.ndarray] | None = None) -> SolveResult:
        """Solve one system of sample ``index`` with the persistent solver; reject numerically singular ones.

        With :attr:`warm_start` set and the sample's ``inputs`` given, the trained model accelerates
        the solve (:func:`~pde_data.warm_start.accelerated_solve`; the same verified tolerance).
        """
        label = f"sample {index}" if step is None else f"sample {index}, step {step}"
        if self.warm_start is not None and inputs is not None:
            result = accelerated_solve(self, self.warm_start, index, inputs, A, b)
        else:
            result = self.solver.solve(A, b, x0=x0, label=label)
        check_conditioning(label, A, b, result.x)
        return result

    def solve_sample(self, index: int, inputs: dict[str, np.ndarray], stats: SampleStats) -> dict[str, np.ndarray]:
        """Solve sample ``index`` and return its stored solution fields (adds to ``stats``)."""
        A, b = self.assemble(inputs)
        result = self.solve(index, A, b, inputs=inputs)
        stats.add(result)
        return self.solution_fields(result.x)

    def sequence_length(self) -> int:
        """``samples_per_sequence`` for iterative solvers (their state carries over); 1 for ``direct``."""
        return 1 if self.method() == "direct" else self.config.samples_per_sequence

    def generate(self, indices: Sequence[int], seed: int) -> dict[str, np.ndarray]:
        """Inputs, verified solutions and solver statistics of ``indices``, solved in the given order.

        ``indices`` are whole sequences of the solve order (:meth:`sequence_length`): an iterative
        solver starts afresh at the first sample and after every ``samples_per_sequence`` samples.
        """
        rows: list[dict[str, Any]] = []
        length = self.sequence_length()
        for done, i in enumerate(indices):
            if length > 1 and done % length == 0:
                self._restart_solver()
            inputs = self._checked_inputs(int(i), seed)
            stats = SampleStats()
            fields = self.solve_sample(int(i), inputs, stats)
            rows.append({**inputs, **fields, **statistics_row(stats)})
            self.report_progress((done + 1) / len(indices))
        layout_vars = self.layout().variables
        return {name: np.asarray([row[name] for row in rows], dtype=var.dtype) for name, var in layout_vars.items()}

    def systems(self, indices: Sequence[int], seed: int) -> Iterator[System]:
        """The sequence of systems of ``indices`` in the given order, without solving or storing anything.

        For benchmarks: ``for s in family.systems(family.solve_order(n, seed), seed): solve(s.A, s.b)``.
        Time-stepping families yield one :class:`System` per step (see their override).
        """
        for i in indices:
            inputs = self._checked_inputs(int(i), seed)
            A, b = self.assemble(inputs)
            yield System(int(i), 0, A, b, np.concatenate(list(self.features(inputs).values())))

    def summary(self) -> dict[str, Any]:
        """The solver's totals for the run so far (method, retries, matvecs, worst residual...)."""
        current = [self._solver.summary()] if self._solver is not None else []
        return merge_summaries(self._finished + current)

    def _restart_solver(self) -> None:
        """Drop the solver's state (its statistics go to the summary); the next solve builds a fresh one."""
        if self._solver is not None:
            self._finished.append(self._solver.summary())
            self._solver = None


def solver_bytes(family: EllipticFamily, n: int, nnz: int) -> int:
    """Memory of the family's solver for ``n`` unknowns and ``nnz`` matrix entries (bytes).

    A sparse LU (``direct``) holds its factors: SuperLU's fill measured on the 5-/7-point
    Laplacian is below ``7 n log2 n`` in 2-D (n up to 65 000) and ``5.5 n^1.5`` in 3-D (n up to
    33 000); with ~16 bytes per entry and a margin that is ``8 n log2 n`` and ``6 n^1.5`` entries.
    Krylov methods hold ``2 m + 3 k + 2`` vectors (GCRO-DR's bases and recycled space) and a
    preconditioner: ILU with its fill factor, multigrid about four copies of the matrix.
    An iterative run that misses its tolerance retries with a direct solve, which may need more.
    """
    c = family.config
    method = c.solver if c.solver != "auto" else family.method()
    if method == "direct":
        fill = 8 * n * math.log2(max(n, 2)) if family.dim <= 2 else 6 * n**1.5
        return int(16 * fill + 16 * nnz)
    vectors = (2 * c.restart + 3 * c.recycle + 2) * 8 * n
    return int(vectors + 20 * 12 * nnz)


