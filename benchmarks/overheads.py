"""What a search costs beyond its trials' steps: the fixed costs behind ``tunedp plan``'s time estimate.

``tunedp plan`` times one private step on a synthetic batch; a user waits
for much more: Ray's start, the pre-flight, the charge and the MLflow run,
a worker per trial (imports, the data loaded, the model built, the
evaluations), and the release (test metric, model, MLflow artifacts). This
script runs a grid search of 1-step trials with one trial at a time through
the CLI, exactly as a user runs it, with 1 and with 4 grid points:

    T(n) = search overhead + n × trial overhead     (steps ≈ 0)

so trial overhead = (T(4) − T(1)) / 3 and search overhead = T(1) − trial
overhead. Each workload is measured ``--repeats`` times; the medians go to
``benchmarks/results/overheads.json`` and the constants in
``tunedp/run/preflight/estimate.py`` (SEARCH_OVERHEAD_S, TRIAL_OVERHEAD_S) are set from
the largest workload's figures, rounded up.

Usage::

    python benchmarks/overheads.py --workloads digits fashion_mnist --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONFIGS = {"digits": "search_spaces/example.yaml", "fashion_mnist": "search_spaces/fashion_mnist.yaml",
           "adult": "search_spaces/adult.yaml"}  # fmt: skip


def _grid_config(workload: str, points: int, folder: Path) -> Path:
    data = yaml.safe_load((REPO / CONFIGS[workload]).read_text())
    data["budget"] = {"epsilon": 8.0, "delta": 1e-6}
    data["training"] = {**{k: v for k, v in data["training"].items() if k not in ("epochs", "steps")},
                        "steps": 1, "evaluations": 1}  # fmt: skip
    data["training"].pop("lr_schedule", None)
    data["training"].pop("train_on_validation", None)
    data["search"] = {"mode": "grid"}
    params = data["space"]["params"]
    name = next(iter(params))  # one searched hyperparameter: its values make the grid
    params[name] = {"distribution": "choice", "values": [0.1 * (i + 1) for i in range(points)]}
    for other in list(params)[1:]:
        spec = params[other]
        if spec.get("distribution") != "fixed":
            params[other] = {"distribution": "fixed", "value": spec.get("low", spec.get("values", [1.0])[0])}
    path = folder / f"{workload}-{points}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _search_seconds(config: Path, folder: Path) -> float:
    home = folder / f"home-{config.stem}"
    env = {**os.environ, "TUNEDP_HOME": str(home), "TUNEDP_MLFLOW_DIR": str(folder / "mlflow")}
    tunedp = [sys.executable, "-m", "tunedp.cli"]
    dataset = yaml.safe_load(config.read_text())["workload"]
    subprocess.run([*tunedp, "budget", "init", "--dataset", dataset, "--epsilon", "100", "--delta", "1e-6"],
                   check=True, capture_output=True, env=env, cwd=REPO)  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run([*tunedp, "search", "--config", str(config), "--max-concurrent", "1",
                           "--output", str(folder / f"out-{config.stem}-{time.time_ns()}")],
                          capture_output=True, text=True, env=env, cwd=REPO)  # fmt: skip
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{config.name}: search failed: {done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["digits", "fashion_mnist"], choices=list(CONFIGS))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for workload in args.workloads:
        one, four = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="tunedp-overheads-") as name:
                folder = Path(name)
                one.append(_search_seconds(_grid_config(workload, 1, folder), folder))
                four.append(_search_seconds(_grid_config(workload, 4, folder), folder))
        t1, t4 = statistics.median(one), statistics.median(four)
        trial = (t4 - t1) / 3
        results[workload] = {"search_1_trial_s": t1, "search_4_trials_s": t4, "trial_overhead_s": trial,
                             "search_overhead_s": t1 - trial, "load_average_1min": os.getloadavg()[0]}  # fmt: skip
        print(f"{workload}: T(1) {t1:.1f} s, T(4) {t4:.1f} s -> per trial {trial:.1f} s, per search {t1 - trial:.1f} s")
    out = HERE / "results" / "overheads.json"
    out.write_text(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
