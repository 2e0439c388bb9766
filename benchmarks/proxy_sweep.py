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

Usage::

    python benchmarks/proxy_sweep.py run --config search_spaces/fashion_mnist_public_proxy_tempered.yaml \\
        --step-sizes 0.5 0.8 1.2 1.7 2.4 3.4 --repeats 2 --workers 2
    python benchmarks/proxy_sweep.py summarise
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
RESULTS = HERE / "results" / "proxy_sweep.jsonl"


def _one(config_path: str, step_size: float) -> dict[str, Any]:
    import torch

    from tunedp.config import load_config
    from tunedp.config.space import optimizer_hyperparameters
    from tunedp.planning import plan_search
    from tunedp.planning.staged import StagedPlan
    from tunedp.run.trial import TrialSettings, run_trial

    torch.set_num_threads(1)
    config = load_config(Path(config_path))
    plan = plan_search(config)
    assert isinstance(plan, StagedPlan)
    stage1 = plan.stage1
    settings = TrialSettings(
        workload=stage1.config.workload,
        model=stage1.config.model,
        optimizer=stage1.config.optimizer,
        hyperparameters=optimizer_hyperparameters({"step_size": step_size}, stage1.config),
        plan=stage1.trial,
        lr_schedule=stage1.config.training.lr_schedule,
    )
    started = time.perf_counter()
    result = run_trial(settings, evaluate_test=False)
    return {
        "config": config_path,
        "public_workload": stage1.config.workload,
        "model": stage1.config.model,
        "step_size": step_size,
        "transferred_step_size": step_size * plan.transfer_factor,
        "noise_multiplier": stage1.trial.segments[0].noise_multiplier,
        "steps": result.steps,
        "public_validation_accuracy": result.final_score,
        "wall_s": time.perf_counter() - started,
    }


def run(args: argparse.Namespace) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    jobs = [s for s in args.step_sizes for _ in range(args.repeats)]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(_one, args.config, s) for s in jobs]
        for future in futures:
            row = future.result()
            with RESULTS.open("a") as out:
                out.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def summarise() -> str:
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["config"], row["step_size"]), []).append(row)
    lines = [
        "| config | η·C (stage 1) | transferred η·C | trials | public val. acc. (each) | mean |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for (config, step), group in sorted(groups.items()):
        scores = [r["public_validation_accuracy"] for r in group]
        each = ", ".join(f"{100 * s:.1f}" for s in scores)
        lines.append(
            f"| {Path(config).stem} | {step:g} | {group[0]['transferred_step_size']:.2f} | {len(group)} "
            f"| {each} | {100 * statistics.mean(scores):.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="run stage-1 trials of a public_proxy config at given η·C")
    one.add_argument("--config", required=True)
    one.add_argument("--step-sizes", type=float, nargs="+", required=True)
    one.add_argument("--repeats", type=int, default=1)
    one.add_argument("--workers", type=int, default=2)
    sub.add_parser("summarise", help="print the table of recorded trials")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args)
    else:
        print(summarise())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
