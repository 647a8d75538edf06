"""neuraloperator's own model tests (FNO, UNO), run with our SpectralConv as neuralop's default conv_module.

The installed ``neuralop.models.tests`` modules are imported and their test functions called, under
:func:`~operators.layers.neuralop_interop.pdeop_conv_as_neuralop_default`, with a layer class that
counts its instances, so a test that silently built neuralop's own layer would fail here; with the
extension built, the profiler must also see the compiled mixing op and its backward run in
``test_fno`` (1-D to 4-D, real and complex). All 297
cases (294 FNO + 3 UNO) take minutes on two cores; this is a deterministic subset in which every value
of every parameter of every test appears at least once. The full set:

    .venv/bin/python -m pytest -p tests.operators.neuralop_drop_in -p no:cacheprovider \
        --pyargs neuralop.models.tests.test_fno neuralop.models.tests.test_uno

(see tests/operators/neuralop_drop_in.py).
"""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
import torch.nn.functional as F

from operators.kernels import ops
from operators.layers.neuralop_interop import pdeop_conv_as_neuralop_default
from operators.layers.spectral_conv import SpectralConv
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)

their_fno_tests = pytest.importorskip("neuralop.models.tests.test_fno", reason="neuraloperator is not installed")
their_uno_tests = pytest.importorskip("neuralop.models.tests.test_uno", reason="neuraloperator is not installed")

pytestmark = pytest.mark.filterwarnings("ignore:'has_cuda' is deprecated")


class _CountedSpectralConv(SpectralConv):
    """Our layer, counting how many were built."""

    built = 0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        type(self).built += 1


def _run_with_our_conv(test, profile: bool = False, **parameters) -> None:
    """Run one of their tests with our layer; ``profile``: check that the compiled mixing op and its
    backward ran (the profiler quadruples the test's time, so only the main test does)."""
    _CountedSpectralConv.built = 0
    profiler = torch.profiler.profile() if profile and ops.load() else contextlib.nullcontext()
    with pdeop_conv_as_neuralop_default(_CountedSpectralConv), contextlib.redirect_stdout(io.StringIO()), profiler:
        test(**parameters)
    assert _CountedSpectralConv.built > 0, "the model was not built with pdeop's SpectralConv"
    if isinstance(profiler, torch.profiler.profile):
        names = {event.key for event in profiler.key_averages()}
        assert {"pdeop::spectral_mix_forward", "pdeop::spectral_mix_backward_input"} <= names, "not on the C++ path"


# test_fno(n_dim, fno_block_precision, stabilizer, lifting_channel_ratio, preactivation, complex_data): the
# 4-D case is real (the complex 4-D cases cost ~2 s each; complex data is covered in 1-3 D).
FNO_CASES = [
    dict(n_dim=1, fno_block_precision="full", stabilizer=None, lifting_channel_ratio=1, preactivation=False,
         complex_data=True),
    dict(n_dim=2, fno_block_precision="full", stabilizer="tanh", lifting_channel_ratio=2, preactivation=True,
         complex_data=True),
    dict(n_dim=3, fno_block_precision="full", stabilizer="tanh", lifting_channel_ratio=1, preactivation=True,
         complex_data=False),
    dict(n_dim=4, fno_block_precision="full", stabilizer=None, lifting_channel_ratio=2, preactivation=False,
         complex_data=False),
]
ADVANCED_CASES = [  # (norm, use_channel_mlp, channel_mlp_skip, fno_skip, complex_data)
    (None, True, "linear", "linear", True),
    ("group_norm", False, "identity", "soft-gating", False),
    ("instance_norm", True, "soft-gating", "identity", True),
    (None, True, None, None, False),
]


@pytest.mark.parametrize("parameters", FNO_CASES, ids=lambda p: f"{p['n_dim']}d-complex={p['complex_data']}")
def test_their_fno_test(parameters):
    _run_with_our_conv(their_fno_tests.test_fno, profile=True, **parameters)


@pytest.mark.parametrize("factor", [[2, 1, 1], [1, 2, 1], [1, 1, 2], [1, 2, 2], [1, 0.5, 1]])
def test_their_superresolution_test(factor):
    _run_with_our_conv(their_fno_tests.test_fno_superresolution, resolution_scaling_factor=factor)


@pytest.mark.parametrize("norm,use_channel_mlp,channel_mlp_skip,fno_skip,complex_data", ADVANCED_CASES)
def test_their_advanced_params_test(norm, use_channel_mlp, channel_mlp_skip, fno_skip, complex_data):
    _run_with_our_conv(their_fno_tests.test_fno_advanced_params, norm=norm, use_channel_mlp=use_channel_mlp,
                       channel_mlp_skip=channel_mlp_skip, fno_skip=fno_skip, complex_data=complex_data)


@pytest.mark.parametrize("positional_embedding,domain_padding", [("grid", None), (None, 0.1), ("grid", [0.1, 0.2])])
def test_their_embedding_and_padding_test(positional_embedding, domain_padding):
    _run_with_our_conv(their_fno_tests.test_fno_embedding_and_padding, positional_embedding=positional_embedding,
                       domain_padding=domain_padding)


@pytest.mark.parametrize("dropout,expansion,non_linearity", [(0.0, 0.25, F.gelu), (0.1, 0.5, F.relu),
                                                             (0.5, 1.0, F.tanh)])
def test_their_channel_mlp_params_test(dropout, expansion, non_linearity):
    _run_with_our_conv(their_fno_tests.test_fno_channel_mlp_params, channel_mlp_dropout=dropout,
                       channel_mlp_expansion=expansion, non_linearity=non_linearity)


def test_their_uno_test():
    """UNO rescales between layers (x0.5 x0.25 down, x2 x4 up, horizontal skips resampled between
    them). Their three inputs are batches of 32 at 64x55 to 133x95 (7 s of CPU each); here their test
    runs on a batch of 4 at 32x27, odd like theirs."""
    _run_with_our_conv(their_uno_tests.test_UNO, input_shape=(4, 3, 32, 27))
