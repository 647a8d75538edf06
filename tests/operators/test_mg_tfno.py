"""MG-TFNO: multigrid patches (exact stitching, periodic wrap, coarse context), parameters, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import operators
from operators.layers.multigrid_patching import multigrid_patches, stitch_patches
from operators.models.fno import TFNO
from solvers.errors import ConfigError
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)

NS_LIKE = {"model": "mg_tfno", "in_channels": 3, "out_channels": 1, "n_modes": [6, 6], "width": 12, "n_layers": 2,
           "levels": 1, "rank": 0.2}


@pytest.mark.parametrize("levels,margins,shape", [(1, (4, 4), (32, 32)), (2, (2, 3), (32, 64)), (1, (3,), (24,)),
                                                  (1, (0, 0), (8, 16))])
def test_stitching_inverts_patching_on_the_interiors(levels, margins, shape):
    """stitch(level-0 channels of the patches) returns the input bit for bit: every fine cell lies in
    exactly one patch interior, at the right place (1-D and 2-D, non-square grids, unequal margins)."""
    x = torch.randn(3, 2, *shape, dtype=torch.float64)
    patches = multigrid_patches(x, levels, margins)
    assert patches.shape == (3 * 2 ** (levels * len(shape)), 2 * (levels + 1),
                             *(n // 2 ** levels + 2 * m for n, m in zip(shape, margins)))
    assert torch.equal(stitch_patches(patches[:, :2], levels, margins, batch=3), x)


def test_windows_wrap_around_the_torus_and_coarse_levels_average_wider_windows():
    """Against an independent construction on the 3x3-tiled field (a periodic field seen on a larger
    plane): patch (0, 1) of a 32^2 grid with levels 2 and margin 2 has fine cells -2..9 x 6..17, and its
    level-l window is the 2^l-times wider window centred on the patch averaged over 2^l x 2^l blocks,
    to float64 rounding. The fine window's first rows are the last rows of the grid (wrapped)."""
    rng = np.random.default_rng(0)
    n, levels, margin = 32, 2, 2
    field = rng.standard_normal((n, n))
    patches = multigrid_patches(torch.from_numpy(field)[None, None], levels, (margin, margin)).numpy()
    size, width = n // 2 ** levels, n // 2 ** levels + 2 * margin
    tiled = np.tile(field, (3, 3))                        # tiled[n + i, n + j] = field[i, j] for any i, j in -n..2n
    patch = 0 * 2 ** levels + 1                           # row 0, column 1 of the 4 x 4 patches
    centre = np.array([size // 2, size + size // 2])
    for level in range(levels + 1):
        scale = 2 ** level
        start = centre - scale * width // 2 + n
        window = tiled[start[0]:start[0] + scale * width, start[1]:start[1] + scale * width]
        coarse = window.reshape(width, scale, width, scale).mean(axis=(1, 3))
        np.testing.assert_allclose(patches[patch, level], coarse, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(patches[patch, 0, :margin], field[n - margin:, size - margin:2 * size + margin])


def test_parameters_are_those_of_a_tfno_on_the_stacked_levels_and_far_fewer_than_an_fno():
    """The patches share one TFNO, so MG-TFNO has exactly the parameters of a TFNO whose input channels
    are (fields + 4 periodic coordinates) x (levels + 1); with Tucker rank 0.2 that is under a third
    of the dense FNO of the same width and modes."""
    def count(model: torch.nn.Module) -> int:
        return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())

    mg = operators.build(NS_LIKE)
    tfno_settings = {k: v for k, v in NS_LIKE.items() if k not in ("levels",)}
    same = operators.build({**tfno_settings, "model": "tfno", "in_channels": (3 + 4) * 2})
    assert isinstance(mg.tfno, TFNO) and count(mg) == count(same)
    fno = operators.build({**tfno_settings, "model": "fno"})
    assert count(mg) < count(fno) / 3


def test_without_global_coordinates_patch_shifts_commute():
    """With global_grid off every patch is treated alike, so shifting the input by a whole patch (16
    cells) shifts the output by the same amount (float32 rounding, 1e-5): patching and stitching put
    each patch back where it came from. The periodic coordinates tell the patches apart (> 1e-4)."""
    torch.manual_seed(0)
    local = operators.build({**NS_LIKE, "global_grid": False}).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        shifted = local(torch.roll(x, (16, 16), (2, 3)))
        torch.testing.assert_close(shifted, torch.roll(local(x), (16, 16), (2, 3)), atol=1e-5, rtol=0)
        placed = operators.build(NS_LIKE).eval()
        assert float((placed(torch.roll(x, 16, 2)) - torch.roll(placed(x), 16, 2)).abs().max()) > 1e-4


def test_checkpoint_round_trip_and_bad_grids(tmp_path):
    """save -> load gives bit-identical outputs; a grid the patching cannot split is a ConfigError."""
    torch.manual_seed(1)
    model = operators.build(NS_LIKE)
    operators.save(model, tmp_path / "ckpt")
    loaded = operators.load(tmp_path / "ckpt")
    assert loaded.config == model.config
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    with pytest.raises(ConfigError, match="divisible by 2"):
        model(torch.randn(1, 3, 36, 36))
    with pytest.raises(ConfigError, match="patch_margin"):
        operators.build({**NS_LIKE, "patch_margin": 2.0})
