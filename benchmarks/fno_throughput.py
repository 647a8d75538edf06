"""FNO training-step throughput on CPU: pdeop's FNO vs neuralop's FNO at the same configuration.

Target (DESIGN.md §10, issue 4 item 9a): a training step (forward, MSE loss, backward, Adam step) of
our FNO at least 1.5x faster than neuralop's FNO at batch 16, 64^2 grid, width 32, 16 modes.

Contenders, timed round-robin in one process (:func:`harness.interleaved`):

* ``neuralop`` — ``neuralop.models.FNO(n_modes, in_channels, out_channels, hidden_channels)`` with its
  defaults (grid channels, lifting/projection MLPs with ratio 2, linear skips, channel MLPs with
  soft-gating skips, GELU);
* ``pdeop`` — :class:`operators.models.fno.FNO` with the same architecture and *the same weights*
  (copied from the neuralop model, so both compute the same function: the table reports the largest
  output difference);
* ``neuralop+pdeop_conv`` — neuralop's FNO with our :class:`SpectralConv` as ``conv_module`` (shows
  how much of the gain is the spectral layer; full run only).

Also the spectral convolution alone (forward + backward, width 32, 16 modes, 64^2, batch 16): ours vs
neuralop's ``SpectralConv`` (DESIGN.md §10 target: >= 1.3x), for real and complex data, and on a 3-D +
time grid (16^3 x 8, 8^3 x 4 modes, width 16, batch 4).

The full run repeats the measurements with 1 thread and with the default thread count, adds a TFNO
row pair (Tucker rank 0.1 on both sides), the 10-steps-in Navier-Stokes protocol (10 input
channels), and complex-valued FNOs (``complex_data``) at the target configuration. neuralop's complex
layer is not the Fourier multiplier ours is in 2-D (see :class:`SpectralConv`), so the complex rows
report the output difference against neuralop's FNO with our layer (same weights, same function).
``--quick`` times the target configuration (without the hybrid) and the complex and 4-D spectral
convolutions, with 3 rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from harness import format_table, interleaved, parser, set_threads, write_results

from operators.layers.neuralop_interop import (
    fno_state_from_neuralop,
    pdeop_state_for_neuralop_model,
    spectral_conv_state_from_neuralop,
)
from operators.layers.spectral_conv import SpectralConv
from operators.models.fno import FNO, FNOConfig


def _mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error (of the modulus for complex fields)."""
    if output.is_complex():
        return torch.view_as_real(output - target).square().sum(-1).mean()
    return torch.nn.functional.mse_loss(output, target)


def _train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = _mse(model(x), y)
        loss.backward()
        optimizer.step()

    return step


def compare_fno(batch: int, size: int, width: int, modes: int, in_channels: int, factorization: str | None,
                rounds: int, hybrid: bool, complex_data: bool = False) -> list[dict[str, Any]]:
    """Time one training step of each contender; returns one row per contender."""
    from neuralop.models import FNO as NeuralopFNO

    torch.manual_seed(0)
    rank = 0.1 if factorization else 1.0
    common = dict(n_modes=(modes, modes), in_channels=in_channels, out_channels=1, hidden_channels=width,
                  complex_data=complex_data)
    theirs = NeuralopFNO(**common, factorization=factorization, rank=rank)
    ours = FNO(FNOConfig(in_channels=in_channels, out_channels=1, n_modes=(modes, modes), width=width,
                         factorization=factorization or "dense", rank=rank, complex_data=complex_data))
    ours.load_state_dict(fno_state_from_neuralop(theirs.state_dict(), 2, complex_data))
    dtype = torch.complex64 if complex_data else torch.float32
    x = torch.randn(batch, in_channels, size, size, dtype=dtype)
    y = torch.randn(batch, 1, size, size, dtype=dtype)
    contenders = {"neuralop": _train_step(theirs, x, y), "pdeop": _train_step(ours, x, y)}
    reference = theirs
    if hybrid or complex_data:
        mixed = NeuralopFNO(**common, factorization=factorization, rank=rank, conv_module=SpectralConv)
        mixed.load_state_dict(pdeop_state_for_neuralop_model(theirs.state_dict(), 2, complex_data))
        contenders["neuralop+pdeop_conv"] = _train_step(mixed, x, y)
        reference = mixed if complex_data else theirs
    with torch.no_grad():
        difference = (ours(x) - reference(x)).abs().max().item()
    timings = interleaved(contenders, rounds=rounds, warmup=1)
    kind = ("TFNO" if factorization else "FNO") + (" complex" if complex_data else "")
    config = f"{kind} b{batch} {size}^2 w{width} m{modes} in{in_channels}"
    rows = []
    for name, timing in timings.items():
        rows.append({"case": "train_step", "config": config, "threads": torch.get_num_threads(), "contender": name,
                     "median_s": timing["median_s"], "min_s": timing["min_s"], "max_s": timing["max_s"],
                     "samples_per_s": batch / timing["median_s"],
                     "speedup_vs_neuralop": timings["neuralop"]["median_s"] / timing["median_s"],
                     "max_output_difference": difference if name == "pdeop" else None})
    return rows


def compare_spectral_conv(batch: int, grid: tuple[int, ...], width: int, modes: tuple[int, ...], rounds: int,
                          complex_data: bool = False) -> list[dict[str, Any]]:
    """Time forward + backward of the spectral convolution alone (ours vs neuralop's, equal weights)."""
    from neuralop.layers.spectral_convolution import SpectralConv as NeuralopSpectralConv

    torch.manual_seed(1)
    theirs = NeuralopSpectralConv(width, width, modes, complex_data=complex_data)
    ours = SpectralConv(width, width, modes, complex_data=complex_data)
    state = {k: v for k, v in theirs.state_dict().items() if isinstance(v, torch.Tensor)}
    ours.load_state_dict(spectral_conv_state_from_neuralop(state, len(modes), complex_data))
    dtype = torch.complex64 if complex_data else torch.float32
    x = torch.randn(batch, width, *grid, dtype=dtype, requires_grad=True)
    grad = torch.randn(batch, width, *grid, dtype=dtype)

    def run(layer: torch.nn.Module) -> Callable[[], None]:
        def step() -> None:
            layer.zero_grad(set_to_none=True)
            x.grad = None
            layer(x).backward(grad)

        return step

    difference = None
    if not complex_data:  # neuralop's complex layer computes another function (see the module docstring)
        with torch.no_grad():
            difference = (ours(x) - theirs(x)).abs().max().item()
    timings = interleaved({"neuralop": run(theirs), "pdeop": run(ours)}, rounds=rounds, warmup=1)
    kind = "complex " if complex_data else ""
    config = f"SpectralConv {kind}b{batch} {'x'.join(map(str, grid))} w{width} m{'x'.join(map(str, modes))}"
    return [{"case": "spectral_conv_fwd_bwd", "config": config, "threads": torch.get_num_threads(), "contender": name,
             "median_s": t["median_s"], "min_s": t["min_s"], "max_s": t["max_s"],
             "samples_per_s": batch / t["median_s"],
             "speedup_vs_neuralop": timings["neuralop"]["median_s"] / t["median_s"],
             "max_output_difference": difference if name == "pdeop" else None} for name, t in timings.items()]


def main() -> None:
    """Run the benchmark and write ``benchmarks/results/fno_throughput.json``."""
    args = parser(__doc__.splitlines()[0]).parse_args()
    set_threads(args.threads)
    default_threads = torch.get_num_threads()
    thread_counts = [default_threads] if args.quick or args.threads else sorted({1, default_threads})
    rounds = 3 if args.quick else 9
    rows: list[dict[str, Any]] = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        rows += compare_fno(16, 64, 32, 16, 1, None, rounds, hybrid=not args.quick)
        rows += compare_spectral_conv(16, (64, 64), 32, (16, 16), rounds)
        rows += compare_spectral_conv(16, (64, 64), 32, (16, 16), rounds, complex_data=True)
        rows += compare_spectral_conv(4, (16, 16, 16, 8), 16, (8, 8, 8, 4), rounds)
        rows += compare_spectral_conv(4, (16, 16, 16, 8), 16, (8, 8, 8, 4), rounds, complex_data=True)
        if not args.quick:
            rows += compare_fno(16, 64, 32, 16, 10, None, rounds, hybrid=False)
            rows += compare_fno(16, 64, 32, 16, 1, "tucker", rounds, hybrid=False)
            rows += compare_fno(16, 64, 32, 16, 1, None, rounds, hybrid=False, complex_data=True)
    torch.set_num_threads(default_threads)
    summary: dict[str, Any] = {"target_train_step_speedup": 1.5, "target_spectral_conv_speedup": 1.3}
    for row in rows:
        if row["contender"] == "neuralop":
            continue
        key = f"{row['config']} threads={row['threads']} {row['contender']}"
        summary[f"speedup[{key}]"] = round(row["speedup_vs_neuralop"], 3)
    target = [r["speedup_vs_neuralop"] for r in rows
              if r["case"] == "train_step" and r["contender"] == "pdeop" and r["config"].startswith("FNO b16 64^2 w32 m16 in1")]
    summary["train_step_speedup_target_config_min_over_threads"] = round(min(target), 3)
    summary["train_step_target_met"] = min(target) >= 1.5
    convs = [r["speedup_vs_neuralop"] for r in rows if r["case"] == "spectral_conv_fwd_bwd" and r["contender"] == "pdeop"]
    summary["spectral_conv_speedup_min_over_cases_and_threads"] = round(min(convs), 3)
    summary["spectral_conv_target_met"] = min(convs) >= 1.3
    columns = ["case", "config", "threads", "contender", "median_s", "min_s", "samples_per_s",
               "speedup_vs_neuralop", "max_output_difference"]
    print(format_table(rows, columns))
    path = write_results("fno_throughput", rows, summary, out=args.out,
                         extra={"quick": bool(args.quick), "rounds": rounds})
    print(f"summary: {summary}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
