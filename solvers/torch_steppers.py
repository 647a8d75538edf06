"""The spectral integrators on any torch device: PyTorch ports of the classic vorticity scheme and ETDRK4.

:func:`port` turns a NumPy integrator (:class:`~solvers.navier_stokes.VorticityCN`,
:class:`~solvers.etdrk4.ETDRK4` with its nonlinear term) into its port: the same scheme, with the
coefficients the NumPy integrator computed (phi-functions by the contour integral, the folded
nonlinear factor, the forcing) copied to the device, so the coefficients have one implementation.
Each step is the NumPy step transcribed operation for operation (real products on the interleaved
real and imaginary parts where the NumPy code uses them). Precision is the NumPy integrator's
(float64 by default, float32 when asked).

:meth:`TorchRollout.rollout` has the signature of :meth:`solvers.rollout.Rollout.rollout`: the
initial fields come as NumPy arrays (drawn on the CPU exactly as for the NumPy path, so sample
``i`` starts from the same field on every device), the batch runs in device batches sized from
the free device memory, and every snapshot is brought back to the CPU, where the NumPy
integrator's guards check it (finite values, CFL number, the equation's invariant) before it is
stored.

Results agree with the NumPy path to rounding (the FFTs differ): about 1e-13 relative after a few
hundred float64 steps of a resolved flow, which the tests hold to 1e-10. cuFFT does not promise
that a sample's bits are independent of the batch it runs in, so on a GPU the stored values may
change in the last bits with the chunking (the CPU NumPy path guarantees bit identity).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from solvers.etdrk4 import ETDRK4
from solvers.navier_stokes import VorticityCN
from solvers.stability import Failure, check_rows, first_failure, unstable
from solvers.torch_terms import port_term, to_tensor

#: fraction of the free device memory a rollout plans to use
DEVICE_MEMORY_FRACTION = 0.8
#: device memory of one sample relative to the NumPy integrator's ``bytes_per_sample``: torch's FFTs
#: copy their inputs (c2r transforms overwrite them) and the snapshot temporaries come on top
TORCH_MEMORY_FACTOR = 2.5
#: snapshot values brought to the CPU at once (bytes), so that the host copy stays small beside the chunk
_HOST_SLICE_BYTES = 64 << 20


def split_batches(batch: int, bytes_per_sample: int, free_bytes: int | None) -> list[slice]:
    """Split ``range(batch)`` into nearly equal device batches that fit in the free device memory.

    Parameters
    ----------
    batch
        Samples to integrate.
    bytes_per_sample
        The NumPy integrator's working memory of one sample (scaled here by :data:`TORCH_MEMORY_FACTOR`).
    free_bytes
        Free device memory, or None when it is not limited here (the CPU: the pipeline sized the
        chunk from the host memory).

    Returns
    -------
    list of slice
        Contiguous batches; one when everything fits.

    Raises
    ------
    MemoryError
        When not even one sample fits in :data:`DEVICE_MEMORY_FRACTION` of ``free_bytes``.
    """
    if batch <= 0:
        return []
    if free_bytes is None:
        return [slice(0, batch)]
    need = TORCH_MEMORY_FACTOR * max(1, bytes_per_sample)
    fit = int(DEVICE_MEMORY_FRACTION * free_bytes // need)
    if fit < 1:
        raise MemoryError(f"one sample needs about {need / 2**20:.0f} MiB of device memory; "
                          f"{free_bytes / 2**20:.0f} MiB are free")
    count = -(-batch // fit)
    edges = [round(i * batch / count) for i in range(count + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def free_memory(device: torch.device) -> int | None:
    """Free memory of a CUDA device in bytes (``torch.cuda.mem_get_info``); None for other devices."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return None


class TorchRollout:
    """Base of the ports: records trajectories of device batches and checks every snapshot on the CPU.

    Parameters
    ----------
    stepper
        The NumPy integrator: its ``dt``, ``cfl_limit``, ``cutoff_wavenumber``, ``grid_points``,
        ``bytes_per_sample`` and guard (``invariant``) are this port's.
    term
        The port of its nonlinear term (:mod:`solvers.torch_terms`).
    device
        Where the states live.
    """

    def __init__(self, stepper: Any, term: Any, device: torch.device) -> None:
        self.stepper = stepper
        self.term = term
        self.device = device
        self.dt = stepper.dt
        self.cfl_limit = stepper.cfl_limit
        self.cutoff_wavenumber = stepper.cutoff_wavenumber
        self.grid_points = stepper.grid_points
        self.bytes_per_sample = stepper.bytes_per_sample
        self.invariant = getattr(stepper, "invariant", None)

    def tensor(self, array: np.ndarray | None) -> torch.Tensor | None:
        """A coefficient array on the device (interleaved real arrays get a trailing axis of 2)."""
        if array is None:
            return None
        if np.iscomplexobj(array):
            return to_tensor(array, self.device)
        return to_tensor(array, self.device).unflatten(-1, (-1, 2))

    def advance(self, state: torch.Tensor, steps: int, rows: slice) -> None:
        """Advance the device state (rows ``rows`` of the batch) by ``steps`` steps in place."""
        raise NotImplementedError

    def rollout(self, initial: np.ndarray, steps_per_record: int, records: int, warmup_steps: int = 0,
                stride: int = 1, labels: Sequence[int] | None = None, out_dtype: type = np.float32,
                threads: int | None = None, progress: Callable[[float], None] | None = None) -> np.ndarray:
        """Integrate a batch of initial fields on the device and return the recorded snapshots (NumPy).

        Same parameters, result and errors as :meth:`solvers.rollout.Rollout.rollout`; ``threads``
        is ignored (torch's own thread count applies on the CPU).
        """
        initial = np.asarray(initial, dtype=np.float64)
        batch, grid = initial.shape[0], initial.shape[1:]
        keep = (slice(None),) + tuple(slice(None, None, stride) for _ in grid)
        out = np.empty((batch, records + 1) + tuple(n // stride for n in grid), dtype=out_dtype)
        for rows in split_batches(batch, self.bytes_per_sample, free_memory(self.device)):
            def report(records_done: int, rows: slice = rows) -> None:
                if progress is not None:
                    progress((rows.start + (rows.stop - rows.start) * records_done / (records + 1)) / batch)

            failure = self._run(initial, rows, out, keep, steps_per_record, records, warmup_steps, report)
            if failure is not None:
                raise unstable(failure, labels, self.dt, self.grid_points)
        return out

    def _run(self, initial: np.ndarray, rows: slice, out: np.ndarray, keep: tuple, steps_per_record: int,
             records: int, warmup_steps: int, report: Callable[[int], None]) -> Failure | None:
        """Integrate rows ``rows``, fill their snapshots in ``out``; the first failure (if any)."""
        with torch.no_grad():
            state = self.term.start(initial[rows])
            reference = self._measure(state) if self.invariant is not None else None
            self.advance(state, warmup_steps, rows)
            for r in range(records + 1):
                if r:
                    self.advance(state, steps_per_record, rows)
                time = (warmup_steps + r * steps_per_record) * self.dt
                failure = self._record(state, out, rows, r, keep, reference, time)
                if failure is not None:
                    return failure
                report(r + 1)
        return None

    def _host_slices(self, state: torch.Tensor) -> list[slice]:
        field_bytes = 8 * self.grid_points ** (state.dim() - 1)
        size = max(1, _HOST_SLICE_BYTES // field_bytes)
        return [slice(a, min(a + size, state.shape[0])) for a in range(0, state.shape[0], size)]

    def _observe(self, state: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        fields, speeds = self.term.observe(state)
        return fields.cpu().numpy(), speeds.cpu().numpy()

    def _measure(self, state: torch.Tensor) -> np.ndarray:
        return np.concatenate([self.invariant.measure(self._observe(state[part])[0])
                               for part in self._host_slices(state)])

    def _record(self, state: torch.Tensor, out: np.ndarray, rows: slice, r: int, keep: tuple,
                reference: np.ndarray | None, time: float) -> Failure | None:
        """Bring snapshot ``r`` to the CPU slice by slice, check it with the NumPy guards and store it."""
        failures = []
        for part in self._host_slices(state):
            fields, speeds = self._observe(state[part])
            with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported as a Failure
                found = check_rows(fields, speeds, self.dt, self.cutoff_wavenumber, self.cfl_limit, time)
                if reference is not None and not found:
                    from solvers.stability import check_growth

                    found = check_growth(self.invariant, self.invariant.measure(fields), reference[part], time)
            failures += [dataclasses.replace(f, row=f.row + rows.start + part.start) for f in found]
            out[rows.start + part.start: rows.start + part.stop, r] = fields[keep]
        return first_failure(failures)


class TorchVorticityCN(TorchRollout):
    """:class:`~solvers.navier_stokes.VorticityCN` (the classic FNO scheme) on a torch device."""

    def __init__(self, stepper: VorticityCN, device: torch.device) -> None:
        super().__init__(stepper, port_term(stepper.term, device), device)
        decay, advect, force = stepper.step_coefficients()
        self._decay, self._advect, self._force = (self.tensor(c) for c in (decay, advect, force))

    def advance(self, w_hat: torch.Tensor, steps: int, rows: slice) -> None:
        """Advance ``[b, n, n // 2 + 1]`` spectra by ``steps`` steps in place (see ``VorticityCN.advance``)."""
        if steps <= 0:
            return
        work = self.term.workspace(w_hat.shape[0])
        f_hat = torch.empty_like(w_hat)
        wr, fr = torch.view_as_real(w_hat), torch.view_as_real(f_hat)
        for _ in range(steps):
            self.term.evaluate(w_hat, f_hat, work)
            wr.mul_(self._decay)
            fr.mul_(self._advect)
            wr.add_(fr)
            if self._force is not None:
                wr.add_(self._force)


class TorchETDRK4(TorchRollout):
    """:class:`~solvers.etdrk4.ETDRK4` (KS, Burgers, Navier–Stokes ``etdrk4``) on a torch device."""

    def __init__(self, stepper: ETDRK4, device: torch.device) -> None:
        super().__init__(stepper, port_term(stepper.nonlinear, device), device)
        c = stepper.folded_coefficients()
        self._exp = tuple(self.tensor(x) for x in c.exp)
        self._folded = tuple(self.tensor(x) for x in c.folded)
        self._source = tuple(self.tensor(x) for x in c.source)
        self._real_factor, self._per_sample = c.real_factor, c.per_sample

    def _coefficients(self, rows: slice) -> tuple[torch.Tensor, ...]:
        coefficients = self._exp + self._folded + self._source
        return tuple(c[rows] for c in coefficients) if self._per_sample else coefficients

    def advance(self, v: torch.Tensor, steps: int, rows: slice) -> None:
        """Advance the spectra ``v`` (rows ``rows`` of the batch) ``steps`` steps in place (as ``ETDRK4.advance``)."""
        if steps <= 0:
            return
        E, E2, Q, Q2, f1, f2x2, f3, *source = self._coefficients(rows)
        qs, ps = source if source else (None, None)
        evaluate = self.term.evaluate
        work = self.term.workspace(v.shape[0])
        fv, fa, fb, fc, a, b, c, e2v, qnv, tmp = (torch.empty_like(v) for _ in range(10))
        real = torch.view_as_real
        rv, ra, rc, re2v = (real(x) for x in (v, a, c, e2v))
        fold = real if self._real_factor else (lambda z: z)
        mfv, mfa, mfb, mfc, mb, mqnv, mtmp = (fold(x) for x in (fv, fa, fb, fc, b, qnv, tmp))
        mul, add = torch.mul, torch.add
        for _ in range(steps):
            evaluate(v, fv, work)
            mul(rv, E2, out=re2v)
            if qs is not None:
                e2v.add_(qs)  # E2 v + Q s
            mul(mfv, Q, out=mqnv)
            add(e2v, qnv, out=a)  # a = E2 v + Q N(v)
            evaluate(a, fa, work)
            mul(mfa, Q, out=mb)
            b.add_(e2v)  # b = E2 v + Q N(a)
            evaluate(b, fb, work)
            mul(mfb, Q2, out=mtmp)
            mul(ra, E2, out=rc)
            c.add_(tmp)
            c.sub_(qnv)
            if qs is not None:
                c.add_(qs)  # c = E2 a + Q (2 N(b) - N(v))
            evaluate(c, fc, work)
            rv.mul_(E)
            mul(mfv, f1, out=mtmp)
            v.add_(tmp)
            add(fa, fb, out=tmp)
            mtmp.mul_(f2x2)
            v.add_(tmp)
            mul(mfc, f3, out=mtmp)
            v.add_(tmp)
            if ps is not None:
                v.add_(ps)  # v = E v + f1 N(v) + 2 f2 (N(a) + N(b)) + f3 N(c)


#: the port of each NumPy integrator class
PORTS: dict[type, type] = {VorticityCN: TorchVorticityCN, ETDRK4: TorchETDRK4}


def port(stepper: Any, device: torch.device) -> TorchRollout:
    """The PyTorch port of a NumPy integrator on ``device`` (see :data:`PORTS`)."""
    for cls, ported in PORTS.items():
        if isinstance(stepper, cls):
            return ported(stepper, device)
    raise TypeError(f"no PyTorch port of the integrator {type(stepper).__name__}")
