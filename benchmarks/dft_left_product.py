"""The truncated DFT's left product: folded into one matrix product vs PyTorch's batched product.

Along a full-FFT axis, :mod:`operators.layers.truncated_dft` multiplies a batch ``x`` ``[L, n, T]`` by a
constant complex DFT matrix. PyTorch's CPU batched product (``torch.matmul`` with a broadcast matrix)
runs one small GEMM per batch entry; folding the batch into the columns (``matrix @ [n, L*T]``) runs one
GEMM but first copies ``x`` transposed. The module folds when ``T < _FOLD_COLUMNS``; this benchmark
measures both sides of that rule, side by side in one process (:func:`harness.interleaved`):

* the product alone at shapes of real layers (2-D FNO forward/inverse products, 3-D ones with many
  columns);
* one training step of the quick Navier-Stokes FNO (``configs/train/fno_ns_quick.yaml``'s model, 10
  unrolled calls, batch 5 and 10: the per-rank batches of the DDP benchmark) and of the FNO target
  configuration (batch 16, 64^2, width 32, 16 modes), with folding on (the module's rule) and off.

Reports wall-time medians and the ratio batched / folded (> 1: folding is faster).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from harness import format_table, interleaved, parser, set_threads, write_results

import operators.layers.truncated_dft as truncated_dft
from operators.registry import build

#: (rows m, inner n, batch L, columns T) of the product; the first four are 2-D FNO shapes
#: (width 20-32 x batch 10-16, 8-16 modes, 9-17 real-FFT columns), the last two 3-D ones.
SHAPES = ((32, 8, 200, 5), (16, 64, 512, 9), (64, 16, 512, 9), (128, 32, 200, 17), (12, 64, 200, 64),
          (16, 32, 640, 144))


def _product_contenders(shape: tuple[int, int, int, int]) -> dict[str, Callable[[], torch.Tensor]]:
    m, n, batch, columns = shape
    matrix = torch.randn(m, n, dtype=torch.complex64)
    x = torch.randn(batch, n, columns, dtype=torch.complex64)

    def folded() -> torch.Tensor:
        return matrix @ x.transpose(0, 1).reshape(n, batch * columns)

    return {"batched": lambda: torch.matmul(matrix, x), "folded": folded}


def _step(model: torch.nn.Module, batch: int, size: int, channels: int, unrolled: int) -> Callable[[], None]:
    """One forward (``unrolled`` autoregressive calls) + backward of ``model`` on random data."""
    x = torch.randn(batch, channels, size, size)

    def run() -> None:
        state, loss = x, torch.zeros(())
        for _ in range(unrolled):
            out = model(state)
            loss = loss + out.square().mean()
            state = torch.cat((state[:, out.shape[1]:], out), 1) if unrolled > 1 else state
        loss.backward()

    return run


def _with_rule(threshold: int, fn: Callable[[], None]) -> Callable[[], None]:
    """``fn`` run with the module's fold threshold set to ``threshold`` (0 = never fold)."""
    def run() -> None:
        saved = truncated_dft._FOLD_COLUMNS
        truncated_dft._FOLD_COLUMNS = threshold
        try:
            fn()
        finally:
            truncated_dft._FOLD_COLUMNS = saved
    return run


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    set_threads(args.threads)
    rounds = 3 if args.quick else 7
    rows = []
    for shape in SHAPES[:3] if args.quick else SHAPES:
        times = interleaved(_product_contenders(shape), rounds=rounds, min_seconds=0.05)
        rows.append({"case": "product [m, n] @ [L, n, T] = %s" % (shape,), "folds": shape[3] < truncated_dft._FOLD_COLUMNS,
                     "batched_s": times["batched"]["median_s"], "folded_s": times["folded"]["median_s"],
                     "batched_over_folded": times["batched"]["median_s"] / times["folded"]["median_s"]})
    torch.manual_seed(0)
    quick_ns = build({"model": "fno", "n_modes": [8, 8], "width": 20, "n_layers": 4, "lifting_ratio": 0,
                      "projection_ratio": 6.4, "channel_mlp": False, "spectral_bias": False,
                      "in_channels": 10, "out_channels": 1})
    target = build({"model": "fno", "n_modes": [16, 16], "width": 32, "in_channels": 1, "out_channels": 1})
    steps = [("quick NS FNO step, batch 5 (10 unrolled calls, 32^2)", _step(quick_ns, 5, 32, 10, 10)),
             ("quick NS FNO step, batch 10", _step(quick_ns, 10, 32, 10, 10))]
    if not args.quick:
        steps.append(("FNO target step, batch 16, 64^2, width 32, 16 modes", _step(target, 16, 64, 1, 1)))
    for case, step in steps:
        times = interleaved({"batched": _with_rule(0, step), "folded": _with_rule(truncated_dft._FOLD_COLUMNS, step)},
                            rounds=rounds)
        rows.append({"case": case, "folds": True, "batched_s": times["batched"]["median_s"],
                     "folded_s": times["folded"]["median_s"],
                     "batched_over_folded": times["batched"]["median_s"] / times["folded"]["median_s"]})
    print(format_table(rows))
    summary = {"fold_columns": truncated_dft._FOLD_COLUMNS, "rounds": rounds, "quick": args.quick,
               "step_ratios": {r["case"]: r["batched_over_folded"] for r in rows if "step" in r["case"]}}
    print("wrote", write_results("dft_left_product_quick" if args.quick else "dft_left_product", rows, summary,
                                 out=args.out))


if __name__ == "__main__":
    main()
