"""Evaluate a trained run on the test split (pdeop evaluate RUN_DIR --data FILE)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from operators.commands.arguments import positive_int, threads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach this command's arguments to parser."""
    parser.add_argument("run_dir", type=Path, help="run folder written by 'pdeop train'")
    parser.add_argument("--data", type=Path, default=None,
                        help="dataset file (default: the run's); its last n_test samples are the test split")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint (default best)")
    parser.add_argument("--samples", type=positive_int, default=None, help="test samples (default: the run's n_test)")
    parser.add_argument("--horizon", type=positive_int, default=None, help="rollout steps of autoregressive models")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=threads, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None,
                        help="metrics file (default RUN_DIR/metrics.json, which is replaced: it is the run's own)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    from operators import strict_json
    from operators.atomic_files import check_output_file, write_text
    from operators.commands.train import check_device, set_threads
    from operators.physics.evaluation import is_physics_run
    from operators.training.run_folder import read_config
    from operators.training.runs import evaluate_run, load_run

    set_threads(args.threads)
    read_config(args.run_dir)  # a run folder at all, before anything else
    # the run's own metrics.json is replaced; a file the user names needs --overwrite
    out = check_output_file(args.out, args.overwrite) if args.out else check_output_file(
        args.run_dir / "metrics.json", overwrite=True)
    if is_physics_run(args.run_dir):  # a 'pde:' run: errors against the exact / reference solution
        from operators.physics.evaluation import evaluate

        metrics = evaluate(args.run_dir, args.checkpoint, out=out, overwrite=args.overwrite or args.out is None)
        print(f"{metrics['method']} on {metrics['pde']['name']}: rel L2 {metrics['rel_l2']:.4g} "
              f"(max abs error {metrics['max_abs_error']:.4g}); metrics written to {out}")
        return 0
    check_device(args.device)
    loaded = load_run(args.run_dir, args.checkpoint, args.device)
    metrics = evaluate_run(loaded, args.data, args.samples, args.horizon, args.device)
    write_text(out, strict_json.dumps(metrics) + "\n", overwrite=args.overwrite or args.out is None)
    print(summary(metrics))
    print(f"metrics written to {out}" + (" (non-finite values written as null; see 'non_finite')"
                                         if _non_finite(metrics) else ""))
    return 0


def _non_finite(metrics: dict[str, Any]) -> bool:
    from operators import strict_json

    found: dict[str, str] = {}
    strict_json.sanitize(metrics, found=found)
    return bool(found)


#: how the printed summary names each baseline
BASELINE_NAMES = {"persistence": "persistence", "linear_extrapolation": "linear extrapolation",
                  "training_mean": "training-mean output"}


def summary(metrics: dict[str, Any], max_rows: int = 10) -> str:
    """A few human-readable lines of the headline numbers, the baselines' beside the model's.

    Time-dependent runs get a per-step table (at most ``max_rows`` steps, evenly spread, first and last
    always) of the model's relative L2 error, each baseline's, and the model's skill against persistence.
    """
    lines = [f"test ({metrics['n_items']} items at {'x'.join(map(str, metrics['resolution']))}): "
             f"rel L2 {metrics['rel_l2']:.4g}, rel H1 {metrics['rel_h1']:.4g}, "
             f"spectrum error {metrics['energy_spectrum']['rel_l2']:.3g}"]
    baselines = metrics.get("baselines", {})
    if baselines:
        parts = [f"{BASELINE_NAMES.get(name, name)} rel L2 {b['rel_l2']:.4g} (model skill "
                 f"{_number(metrics['skill'][name]['rel_l2'])})" for name, b in baselines.items()]
        lines.append("baselines on the same items: " + "; ".join(parts))
    for name, reason in metrics.get("baselines_unavailable", {}).items():
        lines.append(f"no {BASELINE_NAMES.get(name, name)} baseline: {reason}")
    if "rollout" in metrics:
        lines += _rollout_table(metrics, baselines, max_rows)
        corr = metrics["correlation"]
        times = [f"{BASELINE_NAMES.get(n, n)} {b['correlation']['time_mean']:.4g}" for n, b in baselines.items()]
        lines.append(f"correlation time (corr < {corr['threshold']}): mean {corr['time_mean']:.4g}, "
                     f"median {corr['time_median']:.4g} ({corr['censored']} never dropped)"
                     + (f"; {', '.join(times)}" if times else ""))
    if "super_resolution" in metrics:
        sr = metrics["super_resolution"]
        lines.append(f"zero-shot at {'x'.join(map(str, sr['resolution']))}: rel L2 {sr['rel_l2']:.4g}, "
                     f"rel H1 {sr['rel_h1']:.4g}")
    return "\n".join(lines)


def _rollout_table(metrics: dict[str, Any], baselines: dict[str, Any], max_rows: int) -> list[str]:
    """Per-step relative L2 of the model and the baselines, and the skill against persistence."""
    rollout = metrics["rollout"]
    n = len(rollout["t"])
    rows = sorted({round(i * (n - 1) / max(max_rows - 1, 1)) for i in range(min(n, max_rows))})
    names = list(baselines)
    header = ["t", "model"] + [BASELINE_NAMES.get(name, name) for name in names]
    skill = metrics.get("skill", {}).get("persistence")
    if skill is not None:
        header.append("skill vs persistence")
    table = [header]
    for i in rows:
        row = [f"{rollout['t'][i]:.4g}", f"{rollout['rel_l2'][i]:.4g}"]
        row += [f"{baselines[name]['rollout']['rel_l2'][i]:.4g}" for name in names]
        if skill is not None:
            row.append(_number(skill["rollout"]["rel_l2"][i]))
        table.append(row)
    widths = [max(len(r[c]) for r in table) for c in range(len(header))]
    lines = [f"rollout rel L2 per step ({n} steps{', ' + str(len(rows)) + ' shown' if len(rows) < n else ''}):"]
    lines += ["  " + "  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in table]
    if skill is not None:
        worse = [t for t, v in zip(rollout["t"], skill["rollout"]["rel_l2"]) if v is not None and v <= 0]
        if worse:
            lines.append(f"warning: the model is no better than persistence at {len(worse)} of {n} steps "
                         f"(t = {', '.join(f'{t:.4g}' for t in worse[:8])}{', ...' if len(worse) > 8 else ''}); "
                         f"a model that predicts the state itself often is at small budgets: try "
                         f"training.predict: increment")
    return lines


def _number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3g}"
