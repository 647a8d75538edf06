"""MgNO: parameter count of the reference configuration, the V-cycle's algebra, boundary handling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import operators
from operators.models.mgno import MGNO_PRESETS, MgNO, MgNOConfig, Prolongation, VCycle, mgno_preset
from solvers.errors import ConfigError


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _expected_count(c: int, c_in: int, layers: int, pre: list[int], norm_per_level: int) -> int:
    """The documented composition: per layer a V-cycle and a 1x1 skip with bias; 1x1 projection."""
    levels = len(pre)

    def layer(c_f: int) -> int:
        total = 9 * c * c_f + 18 * c * c_f * (pre[0] - 1)          # level 0: u = S f, then A + S
        for level in range(1, levels):
            total += 9 * c * c + 9 * c_f * c_f + 18 * c * c_f * pre[level]  # Pi, R, smoothing steps
        total += (levels - 1) * (16 * c * c + norm_per_level)         # prolongations (+ norms)
        return total + c_f * c + c                                    # skip

    return layer(c_in) + (layers - 1) * layer(c) + c


def test_darcy_reference_has_the_published_parameter_count():
    """The Darcy-rough reference (24 channels, 4 layers, 6 levels, smoothing 1,1,1,1,1,2) has 572,661
    parameters, about the 0.57 M of the MgNO paper, and the count follows the documented composition;
    the default config adds a group norm (2 x 24 per prolongation: 960 more)."""
    darcy = MgNO(mgno_preset("darcy"))
    assert _count(darcy) == 572_661
    assert _count(darcy) == _expected_count(24, 1, 4, [1, 1, 1, 1, 1, 2], 0)
    default = MgNO(MgNOConfig())
    assert _count(default) == 572_661 + 960 == _expected_count(24, 1, 4, [1, 1, 1, 1, 1, 2], 48)


def test_vcycle_is_the_multigrid_recursion():
    """A two-level V-cycle equals the algorithm written out with the same convolutions (1e-6):
    u0 = S f; u0 <- u0 + S'(f - A' u0); restrict the residual and u; smooth on the coarse grid;
    prolong, add, normalise; post-smooth."""
    torch.manual_seed(0)
    config = MgNOConfig(in_channels=2, width=3, n_layers=1, levels=2, pre_smoothing=(2, 1), post_smoothing=(1, 0),
                        restrict_residual=True, norm="group")
    cycle = VCycle(config, c_f=2)
    f = torch.randn(2, 2, 16, 16)
    s0, s1 = cycle.pre[0]
    u = s0.S(f)
    u = u + s1.S(f - s1.A(u))
    fc = cycle.restrict_f[0](f - cycle.residual_A[0](u))
    uc = cycle.restrict_u[0](u)
    (coarse,) = cycle.pre[1]
    uc = uc + coarse.S(fc - coarse.A(uc))
    u = cycle.norms[0](u + cycle.prolong[0](uc, (16, 16)))
    (post,) = cycle.post[0]
    u = u + post.S(f - post.A(u))
    torch.testing.assert_close(cycle(f), u, atol=1e-6, rtol=1e-6)


def test_circular_padding_makes_the_model_periodic():
    """With circular padding (Navier-Stokes preset) shifting the input by 2^(levels-1) cells shifts
    the output by the same amount, exactly (float32 rounding, 1e-5): every convolution, restriction
    and prolongation wraps around. Zero padding breaks this at the boundary (difference > 1e-2)."""
    torch.manual_seed(1)
    periodic = MgNO(mgno_preset("navier-stokes", levels=3, width=8, pre_smoothing=(1,)))
    x = torch.randn(2, 1, 32, 32)
    shift = 2 ** (3 - 1)
    shifted = periodic(torch.roll(x, (shift, -shift), (2, 3)))
    torch.testing.assert_close(shifted, torch.roll(periodic(x), (shift, -shift), (2, 3)), atol=1e-5, rtol=0)
    dirichlet = MgNO(mgno_preset("darcy", levels=3, width=8, pre_smoothing=(1,)))
    difference = dirichlet(torch.roll(x, (shift, -shift), (2, 3))) - torch.roll(dirichlet(x), (shift, -shift), (2, 3))
    assert difference.abs().max() > 1e-2


def test_periodic_prolongation_equals_the_tiled_transposed_convolution():
    """The circular prolongation equals a plain transposed convolution applied to the 3x3-tiled coarse
    field, cut out of the middle tile (an independent periodic construction; 1e-6). The three padding
    modes agree away from the boundary."""
    torch.manual_seed(2)
    prolong = {mode: Prolongation(2, 3, mode) for mode in ("zeros", "circular", "reflect")}
    for module in prolong.values():
        module.weight.data.copy_(prolong["zeros"].weight.data)
    coarse = torch.randn(2, 3, 8, 8)
    tiled = coarse.repeat(1, 1, 3, 3)
    reference = F.conv_transpose2d(tiled, prolong["zeros"].weight, stride=2, padding=1)[..., 16:32, 16:32]
    torch.testing.assert_close(prolong["circular"](coarse, (16, 16)), reference, atol=1e-6, rtol=0)
    interior = (slice(None), slice(None), slice(2, -2), slice(2, -2))
    fine = {mode: module(coarse, (16, 16)) for mode, module in prolong.items()}
    torch.testing.assert_close(fine["reflect"][interior], fine["zeros"][interior], atol=1e-6, rtol=0)
    torch.testing.assert_close(fine["circular"][interior], fine["zeros"][interior], atol=1e-6, rtol=0)


def test_any_grid_size_runs_and_normalisation_ignores_the_grid_size():
    """Odd vertex grids (85, 33 points) and non-square grids run; the default group norm uses each
    sample's own statistics, so normalising a field refined by cell duplication equals refining the
    normalised field (1e-5) — no statistic is tied to one grid size."""
    torch.manual_seed(3)
    model = MgNO(MgNOConfig(width=6, n_layers=2, levels=4, pre_smoothing=(1, 1, 1, 2)))
    for shape in ((85, 85), (33, 40), (64, 64)):
        assert model(torch.randn(1, 1, *shape)).shape == (1, 1, *shape)
    norm = model.cycles[0].norms[0]
    u = torch.randn(2, 6, 10, 10)
    refine = lambda v: v.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # noqa: E731
    torch.testing.assert_close(norm(refine(u)), refine(norm(u)), atol=1e-5, rtol=0)


def test_input_residual_predicts_an_increment():
    """With ``input_residual`` (Navier-Stokes preset) the output is input + network: zeroing the
    projection gives back the input exactly."""
    model = MgNO(mgno_preset("navier-stokes", width=4, levels=2, pre_smoothing=(1,)))
    for p in model.projection.parameters():
        p.data.zero_()
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(model(x), x, atol=0, rtol=0)


def test_presets_and_bad_settings():
    """Presets build through the registry; mistakes are ConfigErrors naming the field."""
    assert set(MGNO_PRESETS) == {"darcy", "navier-stokes"}
    model = operators.build({"model": "mgno", **MGNO_PRESETS["navier-stokes"]})
    assert model.config.padding == "circular"
    with pytest.raises(ConfigError, match="pre_smoothing"):
        MgNOConfig(levels=3, pre_smoothing=(1, 1))
    with pytest.raises(ConfigError, match="input_residual"):
        MgNOConfig(in_channels=2, out_channels=1, input_residual=True)
    with pytest.raises(ConfigError, match="preset"):
        mgno_preset("heat")
    with pytest.raises(ConfigError, match="padding"):
        operators.build({"model": "mgno", "padding": "replicate"})
