"""Fourier-space building blocks of the pseudo-spectral integrators.

Conventions, shared by every integrator in :mod:`solvers`:

* grids are periodic with ``n`` points ``x_j = j * length / n``;
* wavenumbers are in NumPy FFT order, ``k = 0, 1, ..., n/2 - 1, -n/2, ..., -1`` (times ``2 pi / length``);
  the half spectrum of a real FFT uses the first ``n // 2 + 1`` of them, so its Nyquist entry is
  ``-n/2`` as in the classic FNO generator (only ``k**2``, ``|k|`` and derivatives that ``irfft``
  discards ever see its sign);
* the 2/3 rule keeps ``|k| <= (2/3) (n // 2)`` per axis;
* FFTs go through pocketfft, called directly through the bindings behind :mod:`scipy.fft`
  (with preallocated outputs and threads for one large block; short transforms cost half of what
  the public wrappers add), or :mod:`numpy.fft` where those are missing. pocketfft computes every
  line with the same operations whether it transforms it alone or several lines together (in
  SIMD lanes or threads), so the result for one sample does not depend on which other samples
  share the array: the datasets' bit-identity across chunk sizes rests on this (``torch.fft``
  with MKL and ``ducc0`` do not have that property on this machine; the tests check it for our
  paths). In float64 both bindings give numpy.fft's bits. Element-wise arithmetic is kept to single
  IEEE operations (real products and sums, or products with purely real / purely imaginary
  factors), which are also batch-independent.
"""

from __future__ import annotations

import numpy as np

try:  # pocketfft's own bindings, the code behind scipy.fft (private module: fall back to numpy.fft)
    from scipy.fft._pocketfft import pypocketfft as _pocketfft
except ImportError:  # pragma: no cover - the public functions compute the same values (float64: same bits)
    _pocketfft = None


def wavenumbers(n: int, length: float = 1.0) -> np.ndarray:
    """Angular wavenumbers ``2 pi k / length`` of an ``n``-point periodic grid, in FFT order.

    Parameters
    ----------
    n
        Number of grid points (even).
    length
        Period of the domain.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``[n]``; entry ``n // 2`` is the Nyquist wavenumber ``-pi n / length``.
        The half spectrum of :func:`numpy.fft.rfft` is ``wavenumbers(n, length)[: n // 2 + 1]``.
    """
    return 2.0 * np.pi / length * np.fft.fftfreq(n, 1.0 / n)


def dealias_mask(n: int) -> np.ndarray:
    """Orszag's 2/3 rule on one axis: ``True`` where ``|k| <= (2/3) (n // 2)``, in FFT order.

    Returns
    -------
    numpy.ndarray
        bool array of shape ``[n]``; slice ``[: n // 2 + 1]`` for a real FFT's half axis.
    """
    k = np.abs(np.fft.fftfreq(n, 1.0 / n))
    return k <= (2.0 / 3.0) * (n // 2)


def interleave(coefficients: np.ndarray) -> np.ndarray:
    """Repeat each real coefficient twice along the last axis.

    Multiplying ``z.view(np.float64)`` (real and imaginary parts interleaved) by the result
    multiplies the complex array ``z`` by the real coefficients with one real product per number,
    which is cheaper than a complex product and exactly the same in every batch.
    """
    return np.ascontiguousarray(np.repeat(np.asarray(coefficients), 2, axis=-1))


def rfft_into(x: np.ndarray, out: np.ndarray, workers: int = 1) -> np.ndarray:
    """Real FFT of ``x`` (even length) along the last axis into ``out``; equals ``numpy.fft.rfft``.

    For the short 1-D transforms of the ETDRK4 integrators the Python wrappers cost as much as
    the transform; this calls pocketfft directly (float64: numpy's bits).
    """
    if _pocketfft is None:
        return np.fft.rfft(x, axis=-1, out=out)
    return _pocketfft.r2c(x, (x.ndim - 1,), True, 0, out, workers)


def irfft_into(x: np.ndarray, out: np.ndarray, workers: int = 1) -> np.ndarray:
    """Inverse real FFT along the last axis into ``out`` (its last axis is the even length ``n``).

    Equals ``numpy.fft.irfft(x, n, axis=-1)``; see :func:`rfft_into`.
    """
    n = out.shape[-1]
    if _pocketfft is None:
        return np.fft.irfft(x, n=n, axis=-1, out=out)
    return _pocketfft.c2r(x, (x.ndim - 1,), n, False, 2, out, workers)


def as_real(z: np.ndarray) -> np.ndarray:
    """View a complex array (contiguous last axis) as real numbers with real and imaginary parts interleaved."""
    return z.view(z.real.dtype)


class ConservativeAdvection1D:
    """The term ``-(u^2 / 2)_x`` of a 1-D periodic field, pseudo-spectrally and 2/3-dealiased.

    ``N(v) = factor * F(v)`` with ``F(v) = rfft(irfft(v) ** 2)`` and ``factor = -i k / 2`` on the
    kept modes, 0 elsewhere, so the result has no modes above the 2/3 cut-off. It is the nonlinear
    term of both the Kuramoto–Sivashinsky and the viscous Burgers equation in conservative form.
    :meth:`evaluate` computes ``F``; integrators fold ``factor`` into their own coefficients. It
    also turns fields into the spectral state and back (:meth:`start`, :meth:`observe`), so that
    an integrator (:class:`~solvers.etdrk4.ETDRK4`) needs to know nothing about the field.

    Parameters
    ----------
    n
        Grid points (even).
    length
        Domain length, scalar or one per sample (shape ``[batch]``).
    dtype
        Real precision of the state: ``numpy.float64`` (default) or ``numpy.float32``.
    """

    #: no constant term: ``N(v) = factor * F(v)``
    source = None

    def __init__(self, n: int, length: float | np.ndarray, dtype: type = np.float64) -> None:
        self.n = self.grid_points = int(n)
        self.dtype = np.dtype(dtype)
        m = self.n // 2 + 1
        self.spectrum_shape = (m,)
        lengths = np.asarray(length, dtype=np.float64)
        k = wavenumbers(self.n, 1.0)[:m] * dealias_mask(self.n)[:m]
        k = k / lengths[..., None] if lengths.ndim else k / float(lengths)
        #: ``-i k / 2`` (masked, float64 precision): purely imaginary, so products with it are batch-independent
        self.factor = np.ascontiguousarray(-0.5j * k)
        self.cutoff_wavenumber = float(np.max(np.abs(k)))
        self.bytes_per_sample = self.sample_bytes(self.n, self.dtype)

    @staticmethod
    def sample_bytes(n: int, dtype: type = np.float64) -> int:
        """Working memory of one sample in :meth:`evaluate` on ``n`` points (bytes): the field and its spectrum."""
        return np.dtype(dtype).itemsize * (n + 2 * (n // 2 + 1))

    def workspace(self, batch: int, workers: int = 1) -> np.ndarray:
        """Scratch memory (physical values) for :meth:`evaluate` on ``batch`` samples (1-D transforms use one thread)."""
        return np.empty((batch, self.n), dtype=self.dtype)

    def evaluate(self, v: np.ndarray, out: np.ndarray, workspace: np.ndarray) -> None:
        """Write ``F(v) = rfft(irfft(v) ** 2)`` into ``out`` (``N(v) = factor * F(v)``).

        Parameters
        ----------
        v, out
            complex ``[b, n // 2 + 1]`` spectra of the state's precision (``out`` may not alias ``v``).
        workspace
            From :meth:`workspace` for the same ``b`` samples.
        """
        irfft_into(v, workspace)
        np.square(workspace, out=workspace)
        rfft_into(workspace, out)

    def __call__(self, v: np.ndarray) -> np.ndarray:
        """``N(v)`` for ``[b, n // 2 + 1]`` spectra (allocating; for tests and one-off use)."""
        out = np.empty_like(v)
        self.evaluate(np.ascontiguousarray(v), out, self.workspace(v.shape[0]))
        return out * self.factor

    def start(self, initial: np.ndarray) -> np.ndarray:
        """Real FFT of ``[b, n]`` physical fields (in the state's precision): the integrator's state."""
        return np.fft.rfft(np.asarray(initial, dtype=self.dtype), axis=-1)

    def observe(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fields ``[b, n]`` and ``max |u|`` per sample."""
        u = np.fft.irfft(state, n=self.n, axis=-1)
        return u, np.max(np.abs(u), axis=1)


def inverse_rfft2(spectra: np.ndarray, n: int, out: np.ndarray, workers: int = 1) -> np.ndarray:
    """``irfft2`` over the last two axes into ``out`` (``[..., n, n]``); ``spectra`` is overwritten.

    ``workers`` threads share the lines of each transform (same bits as one thread). Returns ``out``.
    """
    if _pocketfft is None:
        np.fft.ifft(spectra, axis=-2, out=spectra)
        return np.fft.irfft(spectra, n=n, axis=-1, out=out)
    _pocketfft.c2c(spectra, (spectra.ndim - 2,), False, 2, spectra, workers)
    return irfft_into(spectra, out, workers)


def forward_rfft2(fields: np.ndarray, out: np.ndarray, columns: int, workers: int = 1) -> np.ndarray:
    """``rfft2`` over the last two axes into ``out``, transforming only the first ``columns`` along axis -2.

    The other columns of the result hold the one-dimensional transforms along the last axis
    only: callers multiply them by zero (the 2/3 rule), so their second transform is skipped.
    ``workers`` as for :func:`inverse_rfft2`. Returns ``out``.
    """
    rfft_into(fields, out, workers)
    kept = out[..., :columns]
    if _pocketfft is None:
        np.fft.fft(kept, axis=-2, out=kept)
    else:
        _pocketfft.c2c(kept, (kept.ndim - 2,), True, 0, kept, workers)
    return out
