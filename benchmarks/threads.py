"""The final run of a staged search on one torch thread against two (issue 28 §3).

A staged search's final run trains alone: stage 1's trials are done, so the
cores they used are idle. :func:`tunedp.run.ray_backend.cluster.trial_threads`
gives such a trial the idle cores as torch intra-op threads. This script
measures what that buys on the run it matters most for: the 40-epoch final
run of ``search_spaces/fashion_mnist_public_proxy_tempered.yaml`` (the
tempered CNN, expected batch 2048, training and validation rows), at the
step size a typical stage-1 selection transfers to.

Each measurement is a fresh subprocess (a torch thread pool is not resized
cleanly inside one process), run one after the other, alternating the
thread counts; ``--steps`` truncates the run (the per-step cost does not
change over the run: the batch size is constant in expectation and the
learning-rate schedule costs nothing), ``--steps 0`` runs it whole.
Prints one JSON line per run and a Markdown row per thread count.

Usage: ``.venv/bin/python benchmarks/threads.py [--threads 1,2] [--repeats 1] [--steps 0]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "search_spaces" / "fashion_mnist_public_proxy_tempered.yaml"
#: η·C a public stage-1 selection typically lands on (benchmarks/README.md, proxy sweep), before transfer.
STAGE1_STEP_SIZE = 1.6


def _one_run(threads: int, steps: int) -> dict[str, float | int]:
    """Run the final run (or its first ``steps`` steps) here, on ``threads`` threads."""
    import torch

    sys.path.insert(0, str(REPO))
    from tunedp.accounting.staged_event import transfer_point
    from tunedp.config import load_config
    from tunedp.config.space import fixed_values, optimizer_hyperparameters
    from tunedp.optim import keep_freed_memory
    from tunedp.planning import plan_search
    from tunedp.run.trial import TrialSettings, run_trial

    torch.set_num_threads(threads)
    keep_freed_memory()  # as a trial's worker does (tunedp.run.ray_backend.trainable)
    plan = plan_search(load_config(CONFIG))
    chosen = {**fixed_values(plan.config), "step_size": STAGE1_STEP_SIZE}  # a stage-1 point (fixed values too)
    point = transfer_point(chosen, plan.transfer_factor)  # type: ignore[attr-defined]
    final = plan.final_plan(point)  # type: ignore[attr-defined]
    trial_plan = final.trial
    if steps > 0:  # the first ``steps`` steps at the run's first σ (the tempered run's σ is constant)
        first = replace(trial_plan.segments[0], steps=steps)
        trial_plan = replace(trial_plan, steps=steps, segments=(first,), evaluation_steps=())
    config = final.config
    settings = TrialSettings(
        workload=config.workload,
        model=config.model,
        optimizer=config.optimizer,
        hyperparameters=optimizer_hyperparameters(point, config),
        plan=trial_plan,
        lr_schedule=config.training.lr_schedule,
        train_on_validation=config.training.train_on_validation,
    )
    started = time.perf_counter()
    result = run_trial(settings, evaluate_test=True)
    return {
        "threads": threads,
        "steps": result.steps,
        "planned_steps": final.trial.steps,
        "wall_s": round(time.perf_counter() - started, 2),
        "train_s": round(result.train_seconds, 2),
        "test_accuracy": round(float(result.test_metric or 0.0), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--threads", default="1,2", help="thread counts to compare, comma-separated")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--steps", type=int, default=0, help="run only the first STEPS steps (0: the whole run)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the subprocess's own run
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(_one_run(args.one, args.steps)), flush=True)
        return
    counts = [int(t) for t in args.threads.split(",")]
    runs: dict[int, list[dict[str, float]]] = {t: [] for t in counts}
    for _ in range(args.repeats):
        for threads in counts:
            out = (
                subprocess.run(
                    [sys.executable, __file__, "--one", str(threads), "--steps", str(args.steps)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            print(out, flush=True)
            runs[threads].append(json.loads(out))
    base = statistics.median(r["train_s"] for r in runs[counts[0]])
    print("\n| threads | steps | training (s) | wall (s) | ÷ first row |")
    print("|---:|---:|---:|---:|---:|")
    for threads in counts:
        train = statistics.median(r["train_s"] for r in runs[threads])
        wall = statistics.median(r["wall_s"] for r in runs[threads])
        steps = runs[threads][0]["steps"]
        print(f"| {threads} | {steps:.0f} | {train:.1f} | {wall:.1f} | {train / base:.2f} |")


if __name__ == "__main__":
    main()
