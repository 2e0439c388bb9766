"""The stage-1 landscape of a public-proxy search: public validation accuracy against η·C.

Why: a ``public_proxy`` search picks the step size with the highest exact
validation score among a few short trials on the public workload, then
transfers it to the private run. Whether that pick lands near the private
run's optimum depends on two things this measures on public data alone
(no protected row is read, nothing is charged):

- the *bias*: where the public short-horizon optimum sits (after the
  config's transfer factor) against the private long-run optimum;
- the *noise*: how much two trials at the same η·C differ, which decides
  how often the argmax of a handful of trials is far from that optimum.

Each trial is exactly a stage-1 trial of the config (its plan: the final
run's σ and expected batch, 1/8 of its steps, on ``search.public_workload``),
at a given η·C; it appends one JSON line to
``benchmarks/results/proxy_sweep.jsonl``.

``--fraction`` runs the public trial at another share of the final run's
steps (``1`` is the final run's own horizon, on public data), and ``fit``
fits the exponent α of ``transfer: horizon`` from two horizons' public
landscapes: η*(T₂) = η*(T₁)·(T₁/T₂)^α, so α = log(η₁*/η₂*)/log(T₂/T₁). Public
data only, so the fitted α costs no ε (issue 26's "transfer exponent fitted on
public data at two horizons").

Usage::

    python benchmarks/proxy_sweep.py run --config search_spaces/fashion_mnist_public_proxy_tempered.yaml \\
        --step-sizes 0.5 0.8 1.2 1.7 2.4 3.4 --repeats 2 --workers 2
    python benchmarks/proxy_sweep.py run --config C --set training.epochs=40 --fraction 1 --step-sizes ...
    python benchmarks/proxy_sweep.py fit --config C --set training.epochs=40
    python benchmarks/proxy_sweep.py summarise
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
RESULTS = HERE / "results" / "proxy_sweep.jsonl"


def _parse_value(text: str) -> Any:
    """``--set`` values are YAML scalars: 40, 0.25, true."""
    import yaml

    return yaml.safe_load(text)


def _config(config_path: str, overrides: dict[str, Any], fraction: float | None) -> Any:
    """The config with dotted ``overrides`` set (and ``search.stage1_training_fraction`` = ``fraction``)."""
    import yaml

    from tunedp.config import parse_config

    data = yaml.safe_load(Path(config_path).read_text())
    if fraction is not None:
        overrides = {**overrides, "search.stage1_training_fraction": fraction}
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return parse_config(data, source=config_path)


def _one(
    config_path: str,
    step_size: float,
    overrides: dict[str, Any],
    fraction: float | None,
    fixed: dict[str, float] | None = None,
) -> dict[str, Any]:
    import torch

    from tunedp.config.space import optimizer_hyperparameters
    from tunedp.planning import plan_search
    from tunedp.planning.staged import StagedPlan
    from tunedp.run.trial import TrialSettings, run_trial

    torch.set_num_threads(1)
    config = _config(config_path, overrides, fraction)
    plan = plan_search(config)
    assert isinstance(plan, StagedPlan)
    stage1 = plan.stage1
    settings = TrialSettings(
        workload=stage1.config.workload,
        model=stage1.config.model,
        optimizer=stage1.config.optimizer,
        hyperparameters=optimizer_hyperparameters({"step_size": step_size, **(fixed or {})}, stage1.config),
        plan=stage1.trial,
        lr_schedule=stage1.config.training.lr_schedule,
    )
    started = time.perf_counter()
    # The public test split too: 500 more public images to average the landscape over (``fit`` uses both).
    result = run_trial(settings, evaluate_test=True)
    row = {
        "config": config_path,
        "public_workload": stage1.config.workload,
        "model": stage1.config.model,
        "step_size": step_size,
        "transferred_step_size": step_size * plan.transfer_factor,
        "noise_multiplier": stage1.trial.segments[0].noise_multiplier,
        "steps": result.steps,
        "public_validation_accuracy": result.final_score,
        "public_test_accuracy": result.test_metric,
        "wall_s": time.perf_counter() - started,
    }
    if overrides or fraction is not None or fixed:  # older rows have none of them: the config as shipped
        row.update(overrides=overrides, fraction=config.search.stage1_training_fraction, final_steps=plan.trial.steps)
        row.update(fixed=fixed or {})
    return row


def run(args: argparse.Namespace) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    jobs = [s for _ in range(args.repeats) for s in args.step_sizes]  # a repeat of every size before the next
    overrides = dict(args.set)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(_one, args.config, s, overrides, args.fraction, dict(args.fixed)) for s in jobs]
        for future in futures:
            row = future.result()
            with RESULTS.open("a") as out:
                out.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def _rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def _label(row: dict[str, Any]) -> str:
    """The config, its overrides and the public trial's length: what one landscape is."""
    settings = {**row.get("overrides", {}), **row.get("fixed", {})}
    extra = " ".join(f"{k}={v}" for k, v in sorted(settings.items()))
    return f"{Path(row['config']).stem}{' ' + extra if extra else ''} ({row['steps']} steps)"


def summarise() -> str:
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for row in _rows():
        groups.setdefault((_label(row), row["step_size"]), []).append(row)
    lines = [
        "| config (public trial length) | η·C (stage 1) | transferred η·C | trials | public val. acc. (each) | mean |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for (label, step), group in sorted(groups.items()):
        scores = [r["public_validation_accuracy"] for r in group]
        each = ", ".join(f"{100 * s:.1f}" for s in scores)
        lines.append(
            f"| {label} | {step:g} | {group[0]['transferred_step_size']:.2f} | {len(group)} "
            f"| {each} | {100 * statistics.mean(scores):.2f} |"
        )
    return "\n".join(lines)


def peak(points: dict[float, list[float]]) -> float:
    """The η·C where mean accuracy peaks: the vertex of a parabola in log η·C through the best grid point
    and its two neighbours (the best grid point itself at an edge of the grid)."""
    steps = sorted(points)
    means = [statistics.mean(points[s]) for s in steps]
    best = max(range(len(steps)), key=means.__getitem__)
    if best in (0, len(steps) - 1):
        return steps[best]
    xs = [math.log(steps[i]) for i in (best - 1, best, best + 1)]
    ys = [means[i] for i in (best - 1, best, best + 1)]
    a, b, _ = np.polyfit(xs, ys, 2)
    return steps[best] if a >= 0 else math.exp(min(max(-b / (2 * a), xs[0]), xs[2]))


def fit(config: str, overrides: dict[str, Any]) -> str:
    """α of ``transfer: horizon`` from the public landscapes of ``config`` at two trial lengths."""
    landscapes: dict[int, dict[float, list[float]]] = {}
    for row in _rows():
        if row["config"] == config and row.get("overrides", {}) == overrides and row.get("public_test_accuracy"):
            # Both public splits (500 images each): twice the images, half the variance of one score.
            score = (row["public_validation_accuracy"] + row["public_test_accuracy"]) / 2
            landscapes.setdefault(row["steps"], {}).setdefault(row["step_size"], []).append(score)
    if len(landscapes) < 2:
        return f"need public trials at two lengths for {config} {overrides}; have {sorted(landscapes)}"
    short, long = min(landscapes), max(landscapes)
    eta_short, eta_long = peak(landscapes[short]), peak(landscapes[long])
    alpha = math.log(eta_short / eta_long) / math.log(long / short)
    return (
        f"peak η·C at {short} steps: {eta_short:.3f}; at {long} steps: {eta_long:.3f}; "
        f"α = log({eta_short:.3f}/{eta_long:.3f}) / log({long}/{short}) = {alpha:.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="run stage-1 trials of a public_proxy config at given η·C")
    one.add_argument("--config", required=True)
    one.add_argument("--step-sizes", type=float, nargs="+", required=True)
    one.add_argument("--repeats", type=int, default=1)
    one.add_argument("--workers", type=int, default=2)
    one.add_argument(
        "--fixed", type=lambda t: (t.split("=", 1)[0], float(t.split("=", 1)[1])), action="append", default=[],
        metavar="NAME=VALUE", help="another searched hyperparameter held at VALUE (e.g. clip_norm=0.1)",
    )  # fmt: skip
    one.add_argument("--fraction", type=float, default=None, help="stage-1 trial length as a share of the final run's")
    fitting = sub.add_parser("fit", help="fit transfer: horizon's exponent from two trial lengths")
    fitting.add_argument("--config", required=True)
    for command in (one, fitting):
        command.add_argument(
            "--set", type=lambda t: (t.split("=", 1)[0], _parse_value(t.split("=", 1)[1])), action="append",
            default=[], metavar="KEY=VALUE", help="a dotted config key changed for these trials",
        )  # fmt: skip
    sub.add_parser("summarise", help="print the table of recorded trials")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args)
    elif args.command == "fit":
        print(fit(args.config, dict(args.set)))
    else:
        print(summarise())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
