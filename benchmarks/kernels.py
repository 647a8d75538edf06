"""The pdeop custom ops against their competitors (issue 7): rational activation, spectral convolution,
and a whole KAN-FNO training step.

Rows, each timed round-robin in one process (``harness.interleaved``, median and minimum of the
rounds):

* **rational**, forward and forward + backward (gradients of x and of both coefficient tensors), at
  transformer shape ``[B*L, 768]`` (channels last, 8 groups) and operator shape ``[B, C, H, W]``
  (channels first, C = 32-64, 64^2-256^2, 8 groups): the eager pure-PyTorch reference
  (``rational_reference``), ``torch.compile`` of that reference (inductor; skipped in ``--quick``
  mode unless ``--compile``: its first compilation alone takes about a minute here), the C++ op, and
  the CUDA op and GPU reference when a GPU is present. A memory copy of x is timed alongside for scale.
* **spectral conv**, forward + backward at FNO sizes, real and complex data (``complex_data``), 1-D to
  3-D + time (4-D): neuralop's ``SpectralConv``, pdeop's ``SpectralConv`` with the reference mixing
  (einsum) and with the C++ mixing; the forward alone (``no_grad``), neuralop against C++; and the
  bytes each layer's autograd graph saves for the backward (``saved_for_bwd``, activation memory); plus the mixing op alone (forward + both gradients) in the two
  layouts it meets: channel-major (slices of an rfft output) and mode-major (pdeop's DFT-by-matmul
  layer), einsum against C++, with 2, 3 and 4 mode axes.
* **KAN-FNO training step** (forward, backward, Adam step), C++ kernels against the reference ones.

``summary`` holds the ratios (competitor time / pdeop time) of the medians and, less sensitive to
other processes on a shared machine, of the minima; ``*_min`` entries are the smallest over cases.

Run: ``python benchmarks/kernels.py [--quick] [--threads N] [--compile] [--sections S,...]`` or
``pdeop bench kernels``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, format_table, interleaved, parser, set_threads, write_results  # noqa: E402

import operators.kernels as kernels  # noqa: E402
from operators.kernels.rational_reference import rational_reference  # noqa: E402

GROUPS = 8


def _sync(device: str) -> Callable[[], Any] | None:
    return torch.cuda.synchronize if device == "cuda" else None


def _time(contenders: dict[str, Callable[[], Any]], quick: bool, device: str) -> dict[str, dict[str, float]]:
    return interleaved(contenders, rounds=3 if quick else 7, warmup=1, min_seconds=0.1 if quick else 0.3,
                       sync=_sync(device))


def _forward_backward(fn: Callable[..., torch.Tensor], leaves: list[torch.Tensor], grad: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        for t in leaves:
            t.grad = None
        fn(*leaves).backward(grad)

    return step


def rational_rows(quick: bool, compile_reference: bool, device: str) -> list[dict[str, Any]]:
    """Rational forward and forward + backward at transformer and operator shapes."""
    if quick:
        cases = [("transformer", (2048, 768), -1), ("operator", (4, 32, 64, 64), 1)]
    else:
        cases = [("transformer", (8192, 768), -1), ("operator", (8, 32, 128, 128), 1),
                 ("operator", (4, 64, 256, 256), 1)]
    rows = []
    for kind, shape, channel_dim in cases:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=g).to(device).requires_grad_()
        numerator = (0.3 * torch.randn(GROUPS, 6, generator=g)).to(device).requires_grad_()
        denominator = (0.3 * torch.randn(GROUPS, 4, generator=g)).to(device).requires_grad_()
        grad = torch.randn(shape, generator=g).to(device)
        leaves = [x, numerator, denominator]

        def reference(x, n, d, channel_dim=channel_dim):  # noqa: ANN001, ANN202
            return rational_reference(x, n, d, GROUPS, channel_dim)

        def fast(x, n, d, channel_dim=channel_dim):  # noqa: ANN001, ANN202
            return kernels.rational(x, n, d, GROUPS, channel_dim)

        fast_name = kernels.backend(device)
        functions = {"eager": reference, fast_name: fast}
        if compile_reference:
            functions["compile"] = torch.compile(reference)
        contenders: dict[str, Callable[[], Any]] = {"copy": lambda: x.detach().clone()}
        for name, fn in functions.items():
            contenders[f"{name}_fwd"] = lambda fn=fn: fn(*(t.detach() for t in leaves))
            contenders[f"{name}_fwd_bwd"] = _forward_backward(fn, leaves, grad)
        timings = _time(contenders, quick, device)
        for name in functions:
            for part in ("fwd", "fwd_bwd"):
                t = timings[f"{name}_{part}"]
                rows.append({"section": "rational", "case": f"{kind} {list(shape)}", "device": device,
                             "pass": part, "impl": name, "median_s": t["median_s"], "min_s": t["min_s"]})
        rows.append({"section": "rational", "case": f"{kind} {list(shape)}", "device": device, "pass": "copy",
                     "impl": "x.clone()", "median_s": timings["copy"]["median_s"], "min_s": timings["copy"]["min_s"]})
    return rows


def _spectral_layers(channels: int, modes: tuple[int, ...], complex_data: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
    """neuralop's layer and ours with its weights (where both are Fourier multipliers, the same function)."""
    from neuralop.layers.spectral_convolution import SpectralConv as NeuralopSpectralConv

    from operators.layers.neuralop_interop import spectral_conv_state_from_neuralop
    from operators.layers.spectral_conv import SpectralConv

    torch.manual_seed(0)
    theirs = NeuralopSpectralConv(channels, channels, n_modes=modes, complex_data=complex_data)
    ours = SpectralConv(channels, channels, modes, complex_data=complex_data)
    state = {k: v for k, v in theirs.state_dict().items() if isinstance(v, torch.Tensor)}
    ours.load_state_dict(spectral_conv_state_from_neuralop(state, len(modes), complex_data))
    return theirs, ours


def spectral_rows(quick: bool) -> list[dict[str, Any]]:
    """Spectral convolution forward + backward: neuralop, pdeop with einsum, pdeop with C++ mixing."""
    # (batch, channels, grid, modes, complex data)
    if quick:
        cases = [(16, 32, (64, 64), (16, 16), False), (16, 32, (64, 64), (16, 16), True),
                 (2, 16, (16, 16, 16, 8), (8, 8, 8, 4), True)]
    else:
        cases = [(16, 32, (64, 64), (16, 16), False), (16, 64, (64, 64), (16, 16), False),
                 (8, 64, (128, 128), (24, 24), False), (32, 64, (1024,), (64,), False),
                 (4, 32, (32, 32, 32), (8, 8, 8), False), (16, 32, (64, 64), (16, 16), True),
                 (32, 64, (1024,), (64,), True), (4, 16, (16, 16, 16, 8), (8, 8, 8, 4), False),
                 (4, 16, (16, 16, 16, 8), (8, 8, 8, 4), True)]
    rows = []
    for batch, channels, grid, modes, complex_data in cases:
        theirs, ours = _spectral_layers(channels, modes, complex_data)
        dtype = torch.complex64 if complex_data else torch.float32
        x = torch.randn(batch, channels, *grid, dtype=dtype, requires_grad=True)
        grad = torch.randn(batch, channels, *grid, dtype=dtype)

        def step(layer: torch.nn.Module, reference: bool = False) -> Callable[[], None]:
            def run() -> None:
                layer.zero_grad(set_to_none=True)
                x.grad = None
                if reference:
                    with kernels.reference_kernels():
                        layer(x).backward(grad)
                else:
                    layer(x).backward(grad)

            return run

        def forward(layer: torch.nn.Module) -> Callable[[], None]:
            def run() -> None:
                with torch.no_grad():
                    layer(x)

            return run

        case = f"{'complex' if complex_data else 'real'} B={batch} C={channels} grid={list(grid)} modes={list(modes)}"
        passes = {"fwd_bwd": {"neuralop": step(theirs), "pdeop_einsum": step(ours, reference=True),
                              "pdeop_cpp": step(ours)},
                  "fwd": {"neuralop": forward(theirs), "pdeop_cpp": forward(ours)}}
        for part, contenders in passes.items():
            for name, t in _time(contenders, quick, "cpu").items():
                rows.append({"section": "spectral_conv", "case": case, "device": "cpu", "pass": part, "impl": name,
                             "median_s": t["median_s"], "min_s": t["min_s"]})
        for name, layer in (("neuralop", theirs), ("pdeop_cpp", ours)):
            rows.append({"section": "spectral_conv", "case": case, "device": "cpu", "pass": "saved_for_bwd",
                         "impl": name, "saved_bytes": saved_for_backward_bytes(layer, x)})
    return rows


def saved_for_backward_bytes(layer: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes the autograd graph of ``layer(x)`` keeps for the backward pass (activation memory).

    Counted once per storage, over every tensor the forward saves (``saved_tensors_hooks``), leaving out
    the input and the parameters, which exist anyway. Deterministic, unlike a timing.
    """
    kept = {p.untyped_storage().data_ptr() for p in layer.parameters()} | {x.untyped_storage().data_ptr()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in kept:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = layer(x)
    del out
    return sum(saved.values())


def mixing_rows(quick: bool) -> list[dict[str, Any]]:
    """The mixing op alone (forward and both gradients) in its two layouts, einsum against C++."""
    cases = [(16, 64, (16, 9)), (4, 16, (8, 8, 8, 4))] if quick else [
        (16, 64, (16, 9)), (32, 64, (24, 13)), (4, 32, (8, 8, 5)), (4, 16, (8, 8, 8, 4)), (16, 32, (16, 16))]
    rows = []
    for batch, channels, modes in cases:
        d = len(modes)
        g = torch.Generator().manual_seed(0)
        spectrum = torch.randn(batch, channels, *(2 * m for m in modes), generator=g, dtype=torch.complex64)
        layouts = {
            "channel-major (rfft slice)": (
                spectrum[(slice(None), slice(None), *(slice(0, m) for m in modes))],
                torch.randn(channels, channels, *modes, generator=g, dtype=torch.complex64),
            ),
            "mode-major": (
                torch.randn(*modes, batch, channels, generator=g, dtype=torch.complex64).permute(d, d + 1, *range(d)),
                torch.randn(*modes, channels, channels, generator=g, dtype=torch.complex64).permute(d, d + 1, *range(d)),
            ),
        }
        for layout, (x, weight) in layouts.items():
            x = x.detach().requires_grad_()
            weight = weight.detach().requires_grad_()
            grad = torch.randn(batch, channels, *modes, generator=g, dtype=torch.complex64)

            def step(reference: bool, x=x, weight=weight, grad=grad) -> Callable[[], None]:
                def run() -> None:
                    x.grad = weight.grad = None
                    if reference:
                        with kernels.reference_kernels():
                            kernels.spectral_mix(x, weight).backward(grad)
                    else:
                        kernels.spectral_mix(x, weight).backward(grad)

                return run

            timings = _time({"einsum": step(True), "cpp": step(False)}, quick, "cpu")
            for name, t in timings.items():
                rows.append({"section": "spectral_mix", "case": f"{layout} B={batch} C={channels} modes={list(modes)}",
                             "device": "cpu", "pass": "fwd_bwd", "impl": name, "median_s": t["median_s"],
                             "min_s": t["min_s"]})
    return rows


def kan_fno_rows(quick: bool) -> list[dict[str, Any]]:
    """One KAN-FNO training step (forward, backward, Adam) with the C++ kernels and the reference ones."""
    import operators
    from operators.registry import model_names

    if "kan-fno" not in model_names():
        return [{"section": "kan_fno_step", "case": "skipped", "note": "no kan-fno model registered"}]
    batch, width, grid, modes = (4, 16, 32, 8) if quick else (8, 32, 64, 12)
    torch.manual_seed(0)
    model = operators.build({"model": "kan-fno", "in_channels": 1, "out_channels": 1, "n_modes": [modes, modes],
                             "width": width, "n_layers": 4})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, grid, grid)
    y = torch.randn(batch, 1, grid, grid)

    def step(reference: bool) -> Callable[[], None]:
        def run() -> None:
            optimizer.zero_grad(set_to_none=True)
            if reference:
                with kernels.reference_kernels():
                    loss = torch.nn.functional.mse_loss(model(x), y)
                    loss.backward()
            else:
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
            optimizer.step()

        return run

    timings = _time({"reference": step(True), "cpp": step(False)}, quick, "cpu")
    case = f"B={batch} width={width} grid={grid}^2 modes={modes} layers=4"
    return [{"section": "kan_fno_step", "case": case, "device": "cpu", "pass": "train_step", "impl": name,
             "median_s": t["median_s"], "min_s": t["min_s"]} for name, t in timings.items()]


def _ratio(rows: list[dict[str, Any]], section: str, case: str, part: str, slow: str, fast: str,
           statistic: str = "median_s") -> float | None:
    times = {r["impl"]: r[statistic] for r in rows
             if r["section"] == section and r["case"] == case and r.get("pass") == part}
    if slow in times and fast in times:
        return round(times[slow] / times[fast], 3)
    return None


def _grid_dims(case: str) -> int:
    """Spatial dimensions of a case named ``... grid=[n_1, ..., n_d] ...`` (0 without a grid)."""
    if "grid=[" not in case:
        return 0
    return case.split("grid=[", 1)[1].split("]", 1)[0].count(",") + 1


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Speed-up ratios (competitor median / pdeop median) per case, their minima, and the targets."""
    summary: dict[str, Any] = {"targets": {
        "cpu_rational_fwd_bwd_vs_eager": ">= 10", "cpu_spectral_conv_fwd_bwd_vs_neuralop": ">= 1.3",
        "gpu_rational_vs_eager": ">= 10", "gpu_rational_vs_compile": ">= 1", "gpu_rational_bwd_over_fwd": "<= 2"}}
    cases = dict.fromkeys((r["section"], r["case"], r.get("device")) for r in rows if "median_s" in r)
    per_case: dict[str, dict[str, float | None]] = {}
    for section, case, device in cases:
        key = f"{section} {device} {case}"
        if section == "rational":
            fast = "cuda" if device == "cuda" else "cpp"
            entry = {f"{part}_vs_{other}": _ratio(rows, section, case, part, other, fast)
                     for part in ("fwd", "fwd_bwd") for other in ("eager", "compile")}
            entry.update({f"{part}_vs_{other}_of_minima": _ratio(rows, section, case, part, other, fast, "min_s")
                          for part in ("fwd", "fwd_bwd") for other in ("eager", "compile")})
            times = {(r["impl"], r["pass"]): r["median_s"] for r in rows if r["section"] == section and r["case"] == case
                     and r["device"] == device}
            if ("eager", "fwd") in times and ("x.clone()", "copy") in times:
                entry["eager_fwd_over_copy"] = round(times[("eager", "fwd")] / times[("x.clone()", "copy")], 2)
                entry[f"{fast}_fwd_over_copy"] = round(times[(fast, "fwd")] / times[("x.clone()", "copy")], 2)
            if (fast, "fwd") in times and (fast, "fwd_bwd") in times:
                entry["bwd_over_fwd"] = round((times[(fast, "fwd_bwd")] - times[(fast, "fwd")]) / times[(fast, "fwd")], 3)
            per_case[key] = entry
        elif section == "spectral_conv":
            saved = {r["impl"]: r["saved_bytes"] for r in rows
                     if r["section"] == section and r["case"] == case and r["pass"] == "saved_for_bwd"}
            per_case[key] = {
                "cpp_vs_neuralop": _ratio(rows, section, case, "fwd_bwd", "neuralop", "pdeop_cpp"),
                "fwd_cpp_vs_neuralop": _ratio(rows, section, case, "fwd", "neuralop", "pdeop_cpp"),
                "fwd_cpp_vs_neuralop_of_minima": _ratio(rows, section, case, "fwd", "neuralop", "pdeop_cpp", "min_s"),
                "saved_for_bwd_neuralop_over_cpp": (round(saved["neuralop"] / saved["pdeop_cpp"], 3)
                                                    if saved.get("pdeop_cpp") else None),
                "cpp_vs_einsum": _ratio(rows, section, case, "fwd_bwd", "pdeop_einsum", "pdeop_cpp"),
                "einsum_vs_neuralop": _ratio(rows, section, case, "fwd_bwd", "neuralop", "pdeop_einsum"),
                "cpp_vs_neuralop_of_minima": _ratio(rows, section, case, "fwd_bwd", "neuralop", "pdeop_cpp", "min_s"),
                "cpp_vs_einsum_of_minima": _ratio(rows, section, case, "fwd_bwd", "pdeop_einsum", "pdeop_cpp", "min_s")}
        elif section == "spectral_mix":
            per_case[key] = {"cpp_vs_einsum": _ratio(rows, section, case, "fwd_bwd", "einsum", "cpp"),
                             "cpp_vs_einsum_of_minima": _ratio(rows, section, case, "fwd_bwd", "einsum", "cpp", "min_s")}
        elif section == "kan_fno_step":
            per_case[key] = {
                "cpp_vs_reference": _ratio(rows, section, case, "train_step", "reference", "cpp"),
                "cpp_vs_reference_of_minima": _ratio(rows, section, case, "train_step", "reference", "cpp", "min_s")}
    summary["per_case"] = per_case

    def smallest(prefix: str, name: str) -> float | None:
        values = [v[name] for k, v in per_case.items() if k.startswith(prefix) and v.get(name) is not None]
        return min(values) if values else None

    summary["cpu_rational_fwd_bwd_vs_eager_min"] = smallest("rational cpu", "fwd_bwd_vs_eager")
    summary["cpu_rational_fwd_bwd_vs_eager_of_minima_min"] = smallest("rational cpu", "fwd_bwd_vs_eager_of_minima")
    summary["cpu_rational_fwd_bwd_vs_compile_min"] = smallest("rational cpu", "fwd_bwd_vs_compile")
    summary["cpu_spectral_conv_vs_neuralop_min"] = smallest("spectral_conv", "cpp_vs_neuralop")
    summary["cpu_spectral_conv_vs_neuralop_of_minima_min"] = smallest("spectral_conv", "cpp_vs_neuralop_of_minima")
    summary["cpu_spectral_conv_cpp_vs_einsum_min"] = smallest("spectral_conv", "cpp_vs_einsum")
    for kind in ("real", "complex"):
        summary[f"cpu_spectral_conv_{kind}_vs_neuralop_min"] = smallest(f"spectral_conv cpu {kind}", "cpp_vs_neuralop")
        summary[f"cpu_spectral_conv_{kind}_fwd_vs_neuralop_min"] = smallest(f"spectral_conv cpu {kind}",
                                                                           "fwd_cpp_vs_neuralop")
        summary[f"cpu_spectral_conv_{kind}_saved_for_bwd_neuralop_over_cpp_min"] = smallest(
            f"spectral_conv cpu {kind}", "saved_for_bwd_neuralop_over_cpp")
    four_d = [v["cpp_vs_neuralop"] for k, v in per_case.items()
              if k.startswith("spectral_conv") and _grid_dims(k) == 4 and v.get("cpp_vs_neuralop") is not None]
    summary["cpu_spectral_conv_4d_vs_neuralop_min"] = min(four_d) if four_d else None
    summary["cpu_spectral_mix_cpp_vs_einsum_min"] = smallest("spectral_mix", "cpp_vs_einsum")
    summary["kan_fno_step_cpp_vs_reference"] = smallest("kan_fno_step", "cpp_vs_reference")
    if any(r.get("device") == "cuda" for r in rows):
        summary["gpu_rational_fwd_bwd_vs_eager_min"] = smallest("rational cuda", "fwd_bwd_vs_eager")
        summary["gpu_rational_fwd_bwd_vs_compile_min"] = smallest("rational cuda", "fwd_bwd_vs_compile")
        values = [v["bwd_over_fwd"] for k, v in per_case.items() if k.startswith("rational cuda") and "bwd_over_fwd" in v]
        summary["gpu_rational_bwd_over_fwd_max"] = max(values) if values else None
    return summary


SECTIONS: dict[str, Callable[[bool], list[dict[str, Any]]] | None] = {
    "rational": None, "spectral_conv": spectral_rows, "spectral_mix": mixing_rows, "kan_fno_step": kan_fno_rows}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--compile", action="store_true", help="time torch.compile of the reference in --quick mode too")
    p.add_argument("--sections", default=None,
                   help=f"comma-separated subset of {','.join(SECTIONS)} to run (default: all; "
                        "use with --out so the full results file is not replaced)")
    args = p.parse_args(argv)
    set_threads(args.threads)
    compile_reference = args.compile or not args.quick
    load_before = os.getloadavg()[0]
    print(f"kernel backend: {kernels.backend()}, threads: {torch.get_num_threads()}")
    sections = args.sections.split(",") if args.sections else list(SECTIONS)
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        p.error(f"--sections: unknown {unknown}; expected a comma-separated subset of {list(SECTIONS)}")
    rows = []
    if "rational" in sections:
        rows += rational_rows(args.quick, compile_reference, "cpu")
        if torch.cuda.is_available():
            rows += rational_rows(args.quick, True, "cuda")
    rows += [row for name in sections if SECTIONS[name] for row in SECTIONS[name](args.quick)]
    summary = summarize(rows)
    print(format_table(rows, ["section", "case", "device", "pass", "impl", "median_s", "min_s", "saved_bytes"]))
    print({k: v for k, v in summary.items() if k != "per_case"})
    out = args.out or (RESULTS / "kernels_quick.json" if args.quick else None)
    path = write_results("kernels", rows, summary, out=out, extra={
        "backend": kernels.backend(), "quick": args.quick, "compile_timed": compile_reference,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
