"""Search-driver overhead: how much of a search's wall time is spent training.

Runs a 10-trial random search (``release: all`` so every trial's timings may
be read; K drawn with a seed that gives 10) on digits and on Fashion-MNIST
with short trials, on a local Ray with the machine's cores, and reports:

- Ray start-up (``ray.init``) in seconds;
- the share of the search's trial-slot time spent inside trial training
  (``sum(train seconds) / (wall × concurrent slots)``; target ≥ 85 %);
- per-trial overhead: slot time not spent training, per trial;
- trials per hour.

Usage: ``.venv/bin/python benchmarks/search.py [--workloads digits fashion_mnist]``
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tunedp.accounting.search_event import draw_trial_count  # noqa: E402
from tunedp.config import parse_config  # noqa: E402
from tunedp.ledger.binding import create_ledger  # noqa: E402
from tunedp.planning import plan_search  # noqa: E402
from tunedp.run.driver import run_search  # noqa: E402

TRIALS = 10

CONFIGS: dict[str, dict[str, Any]] = {
    "digits": {
        "workload": "digits",
        "training": {"epochs": 15, "expected_batch_size": 200, "evaluations": 1},
        "validation": {"policy": "private", "score_noise_multiplier": 5.0},
        "space": {
            "coupling": "lr_clip",
            "params": {
                "step_size": {"distribution": "log_uniform", "low": 0.05, "high": 2.0},
                "clip_norm": {"distribution": "log_uniform", "low": 0.1, "high": 5.0},
                "momentum": {"distribution": "fixed", "value": 0.9},
            },
        },
    },
    "fashion_mnist": {
        "workload": "fashion_mnist",
        "training": {"steps": 100, "expected_batch_size": 512, "evaluations": 1},
        "validation": {"policy": "private", "score_noise_multiplier": 10.0},
        "space": {
            "coupling": "lr_clip",
            "params": {
                "step_size": {"distribution": "log_uniform", "low": 0.05, "high": 2.0},
                "clip_norm": {"distribution": "log_uniform", "low": 0.02, "high": 1.0},
                "momentum": {"distribution": "fixed", "value": 0.9},
            },
        },
    },
}
# Same search with trials twice as long: how the share moves with trial length.
CONFIGS["fashion_mnist_200_steps"] = {
    **CONFIGS["fashion_mnist"],
    "training": {"steps": 200, "expected_batch_size": 512, "evaluations": 1},
}


def config_for(workload: str) -> Any:
    data = {
        "name": f"bench-{workload}",
        "budget": {"epsilon": 8.0, "delta": 1e-5},
        "search": {
            "mode": "random",
            "expected_trials": TRIALS,
            "shape": 1.0,
            "release": "all",
            "max_trials": TRIALS,
        },
        "optimizer": "dp_sgd",
        **CONFIGS[workload],
    }
    return parse_config(data, source=workload)


def seed_for_ten(plan: Any) -> int:
    for seed in range(10_000):
        if draw_trial_count(plan.shape, np.random.default_rng(seed)) == TRIALS:
            return seed
    raise RuntimeError("no seed gives 10 trials")


def bench(workload: str, folder: Path) -> dict[str, float]:
    plan = plan_search(config_for(workload))
    ledger = create_ledger(folder / f"{workload}.sqlite", dataset=plan.sizes.dataset, epsilon=100, delta=1e-5)
    started = time.perf_counter()
    outcome = run_search(plan, ledger=ledger, seed=seed_for_ten(plan), output_dir=folder / workload)
    wall = time.perf_counter() - started
    trials = outcome.disclosed_trials
    slots = min(os.cpu_count() or 1, len(trials))
    training = sum(t.train_seconds for t in trials)
    trial_wall = sum(t.wall_time_s for t in trials)
    return {
        "trials": len(trials),
        "wall_s": wall,
        "slots": slots,
        "training_share": training / (wall * slots),
        "trial_share": trial_wall / (wall * slots),
        "overhead_per_trial_s": (wall * slots - training) / len(trials),
        "ray_overhead_per_trial_s": (wall * slots - trial_wall) / len(trials),
        "mean_train_s": training / len(trials),
        "trials_per_hour": len(trials) / wall * 3600,
        "best_score": outcome.best.final_score if outcome.best else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["digits", "fashion_mnist", "fashion_mnist_200_steps"])
    args = parser.parse_args()
    logging.getLogger("absl").setLevel(logging.ERROR)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["TUNEDP_TRACKING"] = "0"
    import ray

    tick = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=os.cpu_count() or 1,
        include_dashboard=False,
        object_store_memory=256 * 1024 * 1024,
        log_to_driver=False,
    )
    startup = time.perf_counter() - tick
    print(f"ray.init: {startup:.2f} s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workload in args.workloads:
            rows.append((workload, bench(workload, Path(tmp))))
    ray.shutdown()
    print()
    print(
        "| workload | trials | wall (s) | slots | training share | trial share | overhead/trial (s) "
        "| Ray overhead/trial (s) | train/trial (s) | trials/hour |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for workload, r in rows:
        print(
            f"| {workload} | {r['trials']:.0f} | {r['wall_s']:.1f} | {r['slots']:.0f} | {r['training_share']:.1%} "
            f"| {r['trial_share']:.1%} | {r['overhead_per_trial_s']:.1f} | {r['ray_overhead_per_trial_s']:.1f} "
            f"| {r['mean_train_s']:.1f} "
            f"| {r['trials_per_hour']:.0f} |"
        )


if __name__ == "__main__":
    main()
