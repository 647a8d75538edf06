"""Symmetry augmentation of training windows (the ``data.augment`` section), drawn on the fly per item.

Every training item (a window of consecutive stored states, with its conditioning channels) is
replaced, with probability ``probability``, by its image under a random symmetry of the equation
(:mod:`pde_data.symmetries`), so the model sees other exact solutions each epoch:

``kuramoto-sivashinsky``, ``burgers`` (``u_t + u u_x = ...`` on a periodic line)
    ``translate``: a uniform shift by whole cells; ``boost``: the Galilean boost
    ``u(x, t) -> u(x - eps t, t) + eps`` with ``eps ~ U(-boost, boost)`` and ``t`` counted from the
    window's first state (the equations are autonomous, so every origin gives a solution).
    Burgers' scaling ``u -> lambda u(lambda x, lambda^2 t)`` is not offered: on a periodic grid it keeps
    the period only for integer ``lambda``, which keeps every ``lambda``-th Fourier mode, multiplies the
    amplitude by ``lambda`` (a different flow regime, outside the data's distribution) and needs the
    states ``lambda^2`` stored steps apart, which the window protocols do not serve. Kuramoto-Sivashinsky
    has no scaling symmetry (its derivatives of order 2 and 4 fix the length scale).
``navier-stokes`` (vorticity on the unit torus)
    ``translate``: a uniform shift by whole cells along both axes; ``reflect``: a uniform symmetry of
    the square (reflections, the swap x <-> y, rotations by quarter turns), under which vorticity
    changes sign with the determinant. The forcing ``f`` transforms the same way: when it is a
    conditioning channel it is transformed with the state; when it is not (the model cannot see
    it), or when a physics term reads the stored forcing, only the transforms that leave ``f``
    unchanged are drawn (for the FNO forcing ``sin 2 pi (x+y) + cos 2 pi (x+y)``: the shifts with
    ``s_x + s_y = 0`` and three reflections combined with quarter-period shifts).

Exactness: shifts by whole cells and the square's symmetries permute grid values, so they map stored
solutions to stored solutions exactly (the Navier-Stokes scheme commutes with them, except that it
differentiates a Nyquist mode one-sidedly, a difference at the level of the field's content at the
internal grid's Nyquist frequency). The boost's shift ``eps t`` is a Fourier interpolation: exact for
fields band-limited on the stored grid, as the shipped KS and Burgers presets are (stored at the
simulation's resolution, 2/3-dealiased); fields subsampled from a finer simulation are shifted
as their trigonometric interpolant, with aliasing errors of the size of their unresolved content.

Draws depend only on ``(seed, epoch, item)``: a run is reproducible whatever the batch size, and a
resumed run replays the epochs it continues exactly. The physics metadata the transforms need
(periodicity, stored times, domain lengths, conditioning variables, forcing) is read from the dataset
file by :func:`physics_metadata`, the one place that knows where a file keeps them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pde_data.config import check
from solvers.errors import ConfigError

#: the transforms each problem admits, and its pseudo-scalar fields (state and forcing) in 2-D
SYMMETRIES: dict[str, tuple[str, ...]] = {
    "kuramoto-sivashinsky": ("translate", "boost"),
    "burgers": ("translate", "boost"),
    "navier-stokes": ("translate", "reflect"),
}
#: the static variable holding a forcing field, which transforms like the state
FORCING_VARIABLE = "f"
#: a per-sample variable with this name is the domain length, and the x coordinate is a fraction of it
LENGTH_VARIABLE = "L"
#: random stream of the augmentation draws (distinct from the trainer's shuffling seeds)
_STREAM = 0xA06


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """The ``data.augment`` section: which symmetries to draw for each training item.

    Parameters
    ----------
    translate
        Shift by a uniform whole number of cells (along every axis).
    boost
        Largest Galilean boost velocity ``eps`` (units of ``u``); 0 for none (1-D Burgers and KS).
    reflect
        Apply a uniform symmetry of the square (2-D Navier-Stokes).
    probability
        Chance that an item is transformed at all (else it is served as stored).
    """

    translate: bool = True
    boost: float = 0.0
    reflect: bool = False
    probability: float = 1.0

    def __post_init__(self) -> None:
        check(math.isfinite(self.boost) and self.boost >= 0, f"data.augment.boost must be a velocity >= 0 (got {self.boost})")
        check(0 <= self.probability <= 1, f"data.augment.probability must lie in [0, 1] (got {self.probability})")
        check(self.translate or self.boost > 0 or self.reflect,
              "data.augment selects no transform: set translate, boost or reflect (or remove data.augment)")

    @property
    def transforms(self) -> tuple[str, ...]:
        """Names of the selected transforms."""
        chosen = {"translate": self.translate, "boost": self.boost > 0, "reflect": self.reflect}
        return tuple(name for name, on in chosen.items() if on)


@dataclasses.dataclass(frozen=True)
class PhysicsMetadata:
    """What the transforms need to know about a dataset file.

    Attributes
    ----------
    problem
        The file's ``problem`` attribute.
    periodic
        Whether the grid is periodic.
    times
        ``[T]`` stored times after ``data.time_subsample``.
    periods
        ``[N, d]`` domain length of each loaded sample along each axis.
    conditioning_dims
        Dims of each conditioning variable.
    forcing
        The static forcing field on the (subsampled) grid, if the file has one.
    """

    problem: str
    periodic: bool
    times: np.ndarray
    periods: np.ndarray
    conditioning_dims: dict[str, tuple[str, ...]]
    forcing: np.ndarray | None


def physics_metadata(ds: Any, config: Any, samples: Sequence[int]) -> PhysicsMetadata:
    """Read the physics metadata of an open dataset file (see :class:`PhysicsMetadata`).

    The periodicity and the stored times and grid come from :func:`pde_data.loading.describe` (the
    problem's periodicity unless ``data.periodic`` says otherwise); the period of an axis is
    ``n dx`` of its coordinate, times the per-sample length ``L(sample)`` when the file has one (the
    coordinate then holds fractions of it); the forcing is the static variable ``f``.

    Parameters
    ----------
    ds
        The file, open as an ``xarray.Dataset``.
    config
        The ``data`` section (:class:`~pde_data.loading.DataConfig`).
    samples
        File rows of the loaded samples.
    """
    from pde_data.loading import describe

    info = describe(ds, config)
    unit_periods = []
    for dim in info["space_dims"]:
        coords = np.asarray(info["grid"].get(dim, ()), dtype=np.float64)
        steps = np.diff(coords)
        if len(coords) < 2 or not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
            raise ConfigError(f"data.augment needs a uniform coordinate {dim!r} in the dataset to know the domain period")
        unit_periods.append(len(coords) * float(steps.mean()))
    rows = np.asarray(samples, dtype=np.int64)
    scale = np.ones(len(rows))
    if LENGTH_VARIABLE in ds.variables and tuple(ds[LENGTH_VARIABLE].dims) == ("sample",):
        scale = np.asarray(ds[LENGTH_VARIABLE].values, dtype=np.float64)[rows]
    forcing = None
    if FORCING_VARIABLE in ds.variables and tuple(ds[FORCING_VARIABLE].dims) == tuple(info["space_dims"]):
        forcing = np.asarray(ds[FORCING_VARIABLE].isel(
            {d: slice(None, None, config.subsample) for d in info["space_dims"]}).values, dtype=np.float64)
    return PhysicsMetadata(
        problem=str(ds.attrs.get("problem")),
        periodic=bool(info["periodic"]),
        times=np.asarray(info["times"] if info["times"] is not None else [], dtype=np.float64),
        periods=scale[:, None] * np.asarray(unit_periods)[None, :],
        conditioning_dims={name: tuple(ds[name].dims) for name in config.conditioning if name in ds.variables},
        forcing=forcing,
    )


def make_augmenter(config: Any, dataset: Any, seed: int, forcing_fixed: bool = False) -> Augmenter:
    """The :class:`Augmenter` of a run's training split.

    Parameters
    ----------
    config
        The ``data`` section with an ``augment`` section.
    dataset
        The training split (:class:`~pde_data.samples.TrajectoryWindows`).
    seed
        The run's seed.
    forcing_fixed
        Draw only transforms that leave the stored forcing unchanged (set when something else, such
        as a physics term, reads the stored forcing).

    Raises
    ------
    ConfigError
        For a static protocol, a non-periodic grid, a problem without these symmetries, or a
        conditioning variable whose transformation is not known.
    """
    from pde_data.loading import open_dataset

    if not getattr(dataset, "time_dependent", False):
        raise ConfigError("data.augment needs a time-dependent protocol (window, one-step); data.protocol is 'static'")
    ds = open_dataset(config.path, allow_incomplete=config.allow_incomplete)
    try:
        metadata = physics_metadata(ds, config, dataset.samples)
    finally:
        ds.close()
    return Augmenter(config.augment, metadata, dataset, list(config.conditioning), seed, forcing_fixed)


class Augmenter:
    """Draws and applies the symmetry transforms of :class:`AugmentConfig` to training batches.

    Parameters
    ----------
    settings
        The ``data.augment`` section.
    metadata
        From :func:`physics_metadata` for the training split's samples.
    dataset
        The training split (its windows: item -> sample row and start).
    conditioning
        Names of the conditioning channels, in order.
    seed
        The run's seed.
    forcing_fixed
        See :func:`make_augmenter`.
    """

    def __init__(self, settings: AugmentConfig, metadata: PhysicsMetadata, dataset: Any, conditioning: list[str],
                 seed: int, forcing_fixed: bool = False) -> None:
        self.settings = settings
        self.metadata = metadata
        self.seed = int(seed)
        self.item_sample = np.asarray(dataset.item_sample)
        self.item_start = np.asarray(dataset.item_start)
        self.window = dataset.t_in + dataset.t_out
        self.space_shape = tuple(dataset.space_shape)
        problem = metadata.problem
        if not metadata.periodic:
            raise ConfigError("data.augment: the symmetries are those of a periodic domain, but the data is not "
                              "periodic (data.periodic or the problem)")
        if problem not in SYMMETRIES:
            raise ConfigError(f"data.augment: no symmetries are known for problem {problem!r} (known: "
                              f"{', '.join(SYMMETRIES)})")
        for name in settings.transforms:
            if name not in SYMMETRIES[problem]:
                raise ConfigError(f"data.augment.{name}: {problem} admits {', '.join(SYMMETRIES[problem])}")
        self.field_channels = self._field_channels(conditioning)
        self.two_d = len(self.space_shape) == 2
        if self.two_d:
            self.candidates = self._square_candidates(forcing_fixed or FORCING_VARIABLE not in conditioning)

    def _field_channels(self, conditioning: list[str]) -> list[int]:
        """Conditioning channels that are fields transformed with the state (the rest are parameters)."""
        space = {"x", "y", "z"}
        fields = []
        for channel, name in enumerate(conditioning):
            dims = self.metadata.conditioning_dims.get(name, ())
            if not set(dims) & space:
                continue  # a parameter (per sample or global): invariant under translations, boosts, reflections
            if self.metadata.problem == "navier-stokes" and name == FORCING_VARIABLE:
                fields.append(channel)
                continue
            raise ConfigError(f"data.augment: conditioning variable {name!r} is a field, and how it transforms under "
                              f"{', '.join(self.settings.transforms)} is not known; remove it from data.conditioning "
                              f"or data.augment")
        return fields

    def _square_candidates(self, keep_forcing: bool) -> np.ndarray:
        """``[K, 3]`` rows ``(element, s_x, s_y)`` to draw from uniformly."""
        from pde_data.symmetries import SQUARE_ELEMENTS, SWAP, square_stabiliser

        nx, ny = self.space_shape
        elements = tuple(e for e in SQUARE_ELEMENTS if nx == ny or not e & SWAP) if self.settings.reflect else (0,)
        forcing = self.metadata.forcing
        if keep_forcing and forcing is not None:
            candidates = square_stabiliser(forcing, elements, self.settings.translate)
        else:
            sx, sy = np.meshgrid(np.arange(nx) if self.settings.translate else [0],
                                 np.arange(ny) if self.settings.translate else [0], indexing="ij")
            candidates = np.array([(e, a, b) for e in elements for a, b in zip(sx.ravel(), sy.ravel())])
        if len(candidates) <= 1:
            raise ConfigError("data.augment: no transform other than the identity leaves the forcing f unchanged; "
                              "add f to data.conditioning so that the model sees the transformed forcing")
        return candidates

    def draws(self, items: Sequence[int], epoch: int) -> dict[str, np.ndarray]:
        """The random transform of each item in ``epoch``: ``applied``, ``shift`` ``[B, d]`` and, as the
        problem has them, ``velocity`` ``[B]`` or ``element`` ``[B]``. Depends only on (seed, epoch, item)."""
        s = self.settings
        d = len(self.space_shape)
        out = {"applied": np.zeros(len(items), bool), "shift": np.zeros((len(items), d), np.int64),
               "velocity": np.zeros(len(items)), "element": np.zeros(len(items), np.int64)}
        for k, item in enumerate(items):
            rng = np.random.default_rng([self.seed, int(epoch), int(item), _STREAM])
            if rng.random() >= s.probability:
                continue
            out["applied"][k] = True
            if self.two_d:
                element, sx, sy = self.candidates[rng.integers(len(self.candidates))]
                out["element"][k], out["shift"][k] = element, (sx, sy)
                continue
            if s.translate:
                out["shift"][k, 0] = rng.integers(self.space_shape[0])
            if s.boost > 0:
                out["velocity"][k] = rng.uniform(-s.boost, s.boost)
        return out

    def __call__(self, batch: tuple[Any, Any, Any], items: Any, epoch: int) -> tuple[Any, Any, Any]:
        """Transform a training batch ``(x, y, cond)`` (physical values) of the window items ``items``.

        ``x`` ``[B, t_in, *space]`` and ``y`` ``[B, t_out, *space]`` are one window of consecutive
        states; they are transformed together, and ``cond`` ``[B, C, *space]`` with them.
        """
        import torch

        from pde_data.symmetries import galilean_boost, torus_transform, translate

        x, y, cond = batch
        items = np.asarray(torch.as_tensor(items).cpu(), dtype=np.int64).reshape(-1)
        draw = self.draws(items, epoch)
        if not draw["applied"].any():
            return x, y, cond
        window = torch.cat((x, y), dim=1)
        t_in = x.shape[1]
        shift = torch.from_numpy(draw["shift"]).to(window.device)
        field = self.field_channels
        if self.two_d:
            element = torch.from_numpy(draw["element"]).to(window.device)
            window = torus_transform(window, element, shift, pseudo=True)
            if field:
                cond = cond.clone()
                cond[:, field] = torus_transform(cond[:, field], element, shift, pseudo=True)
            return window[:, :t_in], window[:, t_in:], cond
        window = translate(window, shift)
        if self.settings.boost > 0:
            rows = self.item_sample[items]
            starts = self.item_start[items]
            times = self.metadata.times
            offsets = np.arange(self.window)
            elapsed = times[starts[:, None] + offsets[None, :]] - times[starts][:, None]
            as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float64, device=window.device)  # noqa: E731
            window = galilean_boost(window, as_tensor(draw["velocity"]), as_tensor(elapsed),
                                    as_tensor(self.metadata.periods[rows, 0]))
        return window[:, :t_in], window[:, t_in:], cond
