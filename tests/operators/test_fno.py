"""FNO/TFNO: equal to neuralop's FNO for equal weights, resolution consistent, factorisations agree."""

from __future__ import annotations

import pytest
import torch

import operators
from operators.layers.neuralop_interop import fno_state_from_neuralop
from operators.models.fno import FNO, TFNO, FNOConfig, TFNOConfig
from solvers.errors import ConfigError

neuralop_models = pytest.importorskip("neuralop.models")

CASES = [
    # (neuralop keyword arguments, our config fields, input grid)
    ({"n_modes": (8, 8)}, {"n_modes": (8, 8)}, (32, 32)),
    ({"n_modes": (8,), "domain_padding": 0.25}, {"n_modes": (8,), "domain_padding": (0.25,)}, (40,)),
    ({"n_modes": (6, 6, 4), "factorization": "tucker", "rank": 0.3},
     {"n_modes": (6, 6, 4), "factorization": "tucker", "rank": 0.3}, (12, 12, 8)),
    ({"n_modes": (8, 8), "factorization": "cp", "rank": 0.3, "positional_embedding": None},
     {"n_modes": (8, 8), "factorization": "cp", "rank": 0.3, "positional_grid": False}, (16, 16)),
    ({"n_modes": (8, 8), "lifting_channel_ratio": 0, "fno_skip": "soft-gating", "channel_mlp_skip": "linear"},
     {"n_modes": (8, 8), "lifting_ratio": 0, "skip": "soft-gating", "channel_mlp_skip": "linear"}, (16, 24)),
]


@pytest.mark.parametrize("theirs_kwargs,ours_fields,grid", CASES)
def test_fno_equals_neuralop_fno(theirs_kwargs, ours_fields, grid):
    """For neuralop's FNO with its weights copied in, our FNO has the same parameter count and gives
    the same outputs to float32 precision (1e-5 on O(1) outputs): 1-3 D, padding, Tucker/CP, skips.

    This is what makes the throughput benchmark a like-for-like comparison."""
    torch.manual_seed(0)
    theirs = neuralop_models.FNO(in_channels=3, out_channels=2, hidden_channels=12, n_layers=3, **theirs_kwargs)
    ours = FNO(FNOConfig(in_channels=3, out_channels=2, width=12, n_layers=3, **ours_fields))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    ours.load_state_dict(fno_state_from_neuralop(theirs.state_dict(), len(grid)))
    x = torch.randn(2, 3, *grid)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


def _smooth_field(n: int) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) / n
    X, Y = torch.meshgrid(t, t, indexing="ij")
    u = torch.sin(2 * torch.pi * X) * torch.cos(2 * torch.pi * Y) + 0.3 * torch.cos(2 * torch.pi * (2 * X + Y))
    return u[None, None].float()


def test_fno_outputs_converge_under_refinement():
    """Resolution consistency of the whole FNO: the same smooth input sampled at n and 2n points gives
    outputs whose difference on the shared points shrinks as n grows, and is small at n = 64.

    The discrepancy is aliasing on the coarse grid of the high frequencies the network creates; the
    grid channels x = i / n are a sawtooth on the torus (a jump at x = 1), whose 1/k spectrum makes
    the convergence first order. Measured with these seeds: 3e-4 to 8e-4, then halving at each
    refinement; the test asks for a factor >= 1.8 per refinement and < 1e-3 at n = 64.
    """
    torch.manual_seed(1)
    model = FNO(FNOConfig(in_channels=1, out_channels=1, n_modes=(6, 6), width=16, n_layers=3)).eval()
    gaps = []
    with torch.no_grad():
        for n in (16, 32, 64):
            coarse, fine = model(_smooth_field(n)), model(_smooth_field(2 * n))
            gaps.append(((fine[..., ::2, ::2] - coarse).norm() / coarse.norm()).item())
    assert gaps[1] < gaps[0] / 1.8 and gaps[2] < gaps[1] / 1.8, gaps
    assert gaps[2] < 1e-3, gaps


def test_padded_fno_is_consistent_across_resolutions():
    """Domain padding scales with the grid (a fixed fraction of the domain), so a padded FNO is as
    resolution consistent as an unpadded one: relative gap < 1e-3 between 64 and 128 points
    (measured about 2e-4)."""
    torch.manual_seed(2)
    model = FNO(FNOConfig(in_channels=1, out_channels=1, n_modes=(6, 6), width=16, n_layers=2,
                          domain_padding=(0.25,))).eval()
    with torch.no_grad():
        coarse, fine = model(_smooth_field(64)), model(_smooth_field(128))
    assert ((fine[..., ::2, ::2] - coarse).norm() / coarse.norm()).item() < 1e-3


def test_tfno_equals_fno_with_its_reconstructed_weights():
    """A TFNO computes exactly the FNO whose dense spectral weights are its reconstructed Tucker
    weights (float32, 1e-5), and it has fewer parameters (rank 0.1 keeps ~10% of the spectral ones)."""
    torch.manual_seed(3)
    fields = {"in_channels": 2, "out_channels": 1, "n_modes": (8, 8), "width": 16, "n_layers": 2}
    tfno = operators.build({"model": "tfno", **fields})
    assert isinstance(tfno, TFNO) and tfno.config == TFNOConfig(**fields)
    fno = FNO(FNOConfig(**fields))
    state = {k: v for k, v in tfno.state_dict().items() if ".conv.weight." not in k}
    for i, block in enumerate(tfno.blocks):
        state[f"blocks.{i}.conv.weight.weight"] = block.conv.dense_weight().detach()
    fno.load_state_dict(state)
    x = torch.randn(2, 2, 16, 16)
    torch.testing.assert_close(tfno(x), fno(x), atol=1e-5, rtol=1e-5)

    def spectral(model):
        return sum(p.numel() for b in model.blocks for p in b.conv.weight.parameters())

    assert spectral(tfno) < 0.15 * spectral(fno)


def test_fno_builds_from_a_mapping_and_checks_settings():
    """The registry builds FNOs from plain settings, and mistakes name the field (ConfigError)."""
    model = operators.build({"model": "fno", "in_channels": 1, "out_channels": 1, "n_modes": [4, 4], "width": 8})
    assert model.config.n_modes == (4, 4)
    with pytest.raises(ConfigError, match="domain_padding"):
        operators.build({"model": "fno", "in_channels": 1, "out_channels": 1, "n_modes": [4, 4],
                         "domain_padding": [0.1, 0.1, 0.1]})
    for modes in ([], [4, 0]):
        with pytest.raises(ConfigError, match="n_modes"):
            operators.build({"model": "fno", "in_channels": 1, "out_channels": 1, "n_modes": modes})
    with pytest.raises(ConfigError, match="factorization"):
        operators.build({"model": "fno", "in_channels": 1, "out_channels": 1, "n_modes": [4], "factorization": "tt"})
    with pytest.raises(ConfigError, match=r"expects \[B, 1, 2 spatial axes\]"):
        model(torch.randn(2, 3, 16, 16))


def test_fno_exports_with_a_dynamic_batch():
    """``torch.export`` (dynamic batch) and ``torch.jit.trace`` of an FNO with domain padding reproduce
    the eager outputs (1e-6): the custom-gradient layout helper, the cached DFT matrices and the
    padding arithmetic all trace."""
    torch.manual_seed(4)
    model = FNO(FNOConfig(in_channels=1, out_channels=1, n_modes=(6, 6), width=8, n_layers=2,
                          domain_padding=(0.1,))).eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        program = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        wider = torch.randn(5, 1, 16, 16)
        torch.testing.assert_close(program.module()(wider), model(wider), atol=1e-6, rtol=0)
        traced = torch.jit.trace(model, (x,))
        torch.testing.assert_close(traced(x), model(x), atol=1e-6, rtol=0)
