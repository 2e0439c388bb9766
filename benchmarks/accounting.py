"""How long planning takes: calibrating σ for a whole search, and the rest of ``tunedp plan``.

Two searches on Fashion-MNIST-sized data (55000 training examples, expected
batch 256, 60 epochs = 12900 steps, one private validation score per trial,
budget ε = 3 at δ = 1e-5):

- random search, K ~ geometric with mean 10, only the best released
  (repeat-and-select);
- adaptive search, 30 trials (composition).

For each we time ``plan_search`` (geometry + calibration: the part the target
"calibration under 1 s" is about), count how many σ were priced (one RDP
accountant run over the whole search each), time ``SearchPlan.to_json`` (which
adds the PLD second opinions), and, once, the whole ``tunedp plan --json``
command including interpreter start-up. Medians over ``--repeats`` runs.
These in-process timings calibrate from scratch every time: the calibration
memo is off (``TUNEDP_CACHE_DIR=off``) and the per-process step curves and
PLD figures are forgotten before each repeat.

``--shipped`` instead plans every ``search_spaces/*.yaml`` in fresh processes,
three ways (issue 28): the memo off, the memo empty (the first plan of a
config: it calibrates and remembers σ), and the memo holding that σ (every
later plan of it: ``tunedp search`` after ``tunedp plan``). Each is
``plan_search`` plus ``to_json`` (what ``tunedp plan --json`` computes),
timed inside the process, imports excluded.

Usage: ``.venv/bin/python benchmarks/accounting.py [--repeats 7] [--no-cli] [--shipped]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import tunedp.accounting.calibration as calibration
import tunedp.accounting.epsilon as epsilon_module
from tunedp.config import SearchConfig, parse_config
from tunedp.planning import plan_search

logging.getLogger("absl").setLevel(logging.ERROR)

SPACE = {
    "coupling": "lr_clip",
    "params": {
        "step_size": {"distribution": "log_uniform", "low": 0.5, "high": 8.0},
        "clip_norm": {"distribution": "log_uniform", "low": 0.1, "high": 5.0},
    },
}


def fashion_mnist_config(search: dict[str, Any]) -> dict[str, Any]:
    return {
        "workload": "fashion_mnist",
        "budget": {"epsilon": 3.0, "delta": 1e-5},
        "search": search,
        "training": {"epochs": 60, "expected_batch_size": 256, "evaluations": 1},
        "validation": {"policy": "private", "score_noise_multiplier": 20.0},
        "optimizer": "dp_sgd",
        "space": SPACE,
    }


CASES: dict[str, dict[str, Any]] = {
    "random, mean 10 (geometric)": fashion_mnist_config(
        {"mode": "random", "expected_trials": 10, "distribution": "negative_binomial", "shape": 1.0}
    ),
    "adaptive, 30 trials": fashion_mnist_config({"mode": "adaptive", "max_trials": 30}),
}


@dataclass
class Measurement:
    plan_s: list[float]
    json_s: list[float]
    pricings: int
    noise_multiplier: float
    fraction: float
    steps: int
    cli_s: float | None = None


class PricingCounter:
    """Counts calls of the accountant inside calibration (one per σ priced)."""

    def __init__(self) -> None:
        self.calls = 0
        # Patched through the module's namespace: the benchmark's own instrumentation.
        self._original: Callable[..., float] = vars(calibration)["rdp_epsilon"]

    def __enter__(self) -> PricingCounter:
        def counted(*args: Any, **kwargs: Any) -> float:
            self.calls += 1
            return self._original(*args, **kwargs)

        vars(calibration)["rdp_epsilon"] = counted
        return self

    def __exit__(self, *exc: object) -> None:
        vars(calibration)["rdp_epsilon"] = self._original


def measure(config: SearchConfig, repeats: int) -> Measurement:
    plan_times, json_times = [], []
    pricings = 0
    plan = None
    for _ in range(repeats):
        epsilon_module._STEP_CURVES.clear()
        epsilon_module._PLD_FIGURES.clear()
        with PricingCounter() as counter:
            start = time.perf_counter()
            plan = plan_search(config)
            plan_times.append(time.perf_counter() - start)
        pricings = counter.calls
        start = time.perf_counter()
        plan.to_json()
        json_times.append(time.perf_counter() - start)
    assert plan is not None
    return Measurement(
        plan_s=plan_times,
        json_s=json_times,
        pricings=pricings,
        noise_multiplier=plan.noise_multiplier,
        fraction=plan.calibration.fraction_of_target,
        steps=plan.trial.steps,
    )


def time_cli(data: dict[str, Any], repeats: int) -> float | None:
    script = Path(sys.executable).with_name("tunedp")
    executable = str(script) if script.exists() else shutil.which("tunedp")
    if executable is None:
        return None
    with tempfile.TemporaryDirectory() as home:
        config = Path(home) / "c.yaml"
        config.write_text(yaml.safe_dump(data))
        env = {**os.environ, "TUNEDP_HOME": home}
        env.pop("TUNEDP_LEDGER_DIR", None)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(
                [executable, "plan", "--config", str(config), "--json"],
                env=env,
                check=True,
                capture_output=True,
            )
            times.append(time.perf_counter() - start)
    return statistics.median(times)


REPO = Path(__file__).resolve().parents[1]
_PLAN_ONE = """
import json, sys, time
from tunedp.config.loading import load_config
from tunedp.planning import plan_search
config = load_config(sys.argv[1])
start = time.perf_counter()
plan = plan_search(config)
plan.to_json()
print(json.dumps({"seconds": time.perf_counter() - start, "sigma": plan.noise_multiplier}))
"""


def plan_in_fresh_process(config: Path, cache_dir: str) -> tuple[float, float]:
    """(seconds, σ) of planning ``config`` in a new interpreter whose memo is ``cache_dir``."""
    env = {**os.environ, "TUNEDP_CACHE_DIR": cache_dir}
    done = subprocess.run(
        [sys.executable, "-c", _PLAN_ONE, str(config)], env=env, check=True, capture_output=True, text=True
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return float(figures["seconds"]), float(figures["sigma"])


def shipped_table() -> None:
    print("| config | memo off s | memo empty s | memo holds σ s | same σ |")
    print("|---|---:|---:|---:|---|")
    totals = [0.0, 0.0, 0.0]
    for config in sorted((REPO / "search_spaces").glob("*.yaml")):
        with tempfile.TemporaryDirectory() as memo:
            off, sigma_off = plan_in_fresh_process(config, "off")
            cold, sigma_cold = plan_in_fresh_process(config, memo)
            warm, sigma_warm = plan_in_fresh_process(config, memo)
        for index, value in enumerate((off, cold, warm)):
            totals[index] += value
        same = "yes" if sigma_off == sigma_cold == sigma_warm else f"NO ({sigma_off}, {sigma_cold}, {sigma_warm})"
        print(f"| {config.name} | {off:.2f} | {cold:.2f} | {warm:.2f} | {same} |")
    print(f"| **all** | **{totals[0]:.1f}** | **{totals[1]:.1f}** | **{totals[2]:.1f}** | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cli-repeats", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true", help="skip timing the tunedp plan command")
    parser.add_argument("--shipped", action="store_true", help="every shipped config: memo off, empty, warm")
    args = parser.parse_args()
    os.environ["TUNEDP_CACHE_DIR"] = "off"  # in-process timings calibrate from scratch
    if args.shipped:
        print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
        shipped_table()
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        return

    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print()
    print(
        "| search | steps/trial | σ | ε / budget | σ priced | plan_search median (min–max) s | "
        "ms per pricing | to_json (PLD) median s | `tunedp plan --json` median s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, data in CASES.items():
        config = parse_config(data)
        plan_search(config)  # warm imports and caches once
        m = measure(config, args.repeats)
        if not args.no_cli:
            m.cli_s = time_cli(data, args.cli_repeats)
        median = statistics.median(m.plan_s)
        cli = "—" if m.cli_s is None else f"{m.cli_s:.2f}"
        print(
            f"| {name} | {m.steps} | {m.noise_multiplier:.4f} | {m.fraction:.5f} | {m.pricings} | "
            f"{median:.3f} ({min(m.plan_s):.3f}–{max(m.plan_s):.3f}) | {1000 * median / m.pricings:.0f} | "
            f"{statistics.median(m.json_s):.3f} | {cli} |"
        )
    print()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
