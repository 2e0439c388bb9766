"""Audit benchmark: claimed ε vs the one-run empirical lower bound (Steinke, Nasr & Jagielski 2023).

For each workload (digits; Fashion-MNIST, shortened to a fixed number of
steps) and each claimed ε ∈ {1, 4, 8} at δ = 1e-5, σ is calibrated so that
*the trial that runs* — q, σ, T — has exactly that RDP ε, and one audited
trial runs through ``tunedp.run.trial.run_trial`` with m white-box
gradient canaries (:mod:`tunedp.audit`). Each setting runs twice: the
shipped DP-SGD (the bound must stay ≤ the claim) and a deliberately broken
variant that trains with σ/10 while claiming σ (the bound must exceed the
claim wherever the method's ceiling allows: with δ = 1e-5 the δ-aware bound
cannot exceed ≈ 8.2 for any number of canaries, so a claim of 8 needs
m = 30000 canaries and near-perfect guessing).

Guess counts are fixed before training: k₊ = k₋ = ⌊f·m⌋ (f = 1/4, or 0.45
for the 30000-canary runs), one test at 95 %. Runs are not seeded (OS
entropy, as a real audit), so the figures vary from run to run.

Poisson sampling limits what a short run can show: a canary is never
sampled with probability e^(−qT) (2.4 % for Fashion-MNIST's q = 0.037 over
100 steps), and such an included canary is indistinguishable from an
excluded one, however broken the noise. ``--steps`` lengthens a run.

Usage::

    python benchmarks/audit.py digits fashion_mnist     # run; one JSON line per finished run
    python benchmarks/audit.py fashion_mnist --epsilons 4 --mechanisms broken --steps 200
    python benchmarks/audit.py --report                 # the markdown table of benchmarks/README.md

Each finished run is appended to ``benchmarks/_work/audit.jsonl``; progress
goes to stdout (run it in the background with a log file). Torch is limited
to one thread: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tunedp.accounting.calibration import calibrate_noise_multiplier  # noqa: E402
from tunedp.accounting.schedule import NoiseSegment  # noqa: E402
from tunedp.accounting.trial_event import TrialPlan, steps_event  # noqa: E402

WORK = HERE / "_work"
RESULTS = WORK / "audit.jsonl"
DELTA = 1e-5
EPSILONS = (1.0, 4.0, 8.0)


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One workload's trial: everything the claimed ε depends on, and the (irrelevant to DP) update rule."""

    workload: str
    expected_batch_size: int
    steps: int
    hyperparameters: dict[str, float]


SETTINGS = {
    # example.yaml's trial length: 15 epochs of q = 200/1200.
    "digits": Setting(
        workload="digits",
        expected_batch_size=200,
        steps=90,
        hyperparameters={"lr": 0.5, "clip_norm": 1.0, "momentum": 0.9},
    ),
    # Tramèr & Boneh's batch and step size, cut to 100 steps (~3.7 epochs) to keep the CPU use moderate.
    "fashion_mnist": Setting(
        workload="fashion_mnist",
        expected_batch_size=2048,
        steps=100,
        hyperparameters={"lr": 4.0, "clip_norm": 0.1, "momentum": 0.9},
    ),
}


def trial_plan(setting: Setting, dataset_size: int, epsilon: float) -> TrialPlan:
    """The plan whose T Poisson-subsampled Gaussian steps cost ``epsilon`` (to within 1 %, never over)."""
    q = setting.expected_batch_size / dataset_size

    def make_event(sigma: float) -> Any:
        return steps_event(q, (NoiseSegment(noise_multiplier=sigma, steps=setting.steps),))

    sigma = calibrate_noise_multiplier(make_event, target_epsilon=epsilon, delta=DELTA).noise_multiplier
    return TrialPlan(
        dataset_size=dataset_size,
        sampling_rate=q,
        steps=setting.steps,
        segments=(NoiseSegment(noise_multiplier=sigma, steps=setting.steps),),
        evaluation_steps=(),
        score_noise_multiplier=None,
    )


def runs_of(epsilons: tuple[float, ...], mechanisms: tuple[str, ...]) -> list[tuple[float, float, int, float]]:
    """(claimed ε, noise divisor, canaries, guess fraction) of every run asked for."""
    runs: list[tuple[float, float, int, float]] = []
    for epsilon in epsilons:
        for mechanism in mechanisms:
            divisor = 10.0 if mechanism == "broken" else 1.0
            runs.append((epsilon, divisor, 1000, 0.25))
            if epsilon >= 8:  # only 30000 near-perfect guesses can refute a claim of 8 at δ = 1e-5
                runs.append((epsilon, divisor, 30_000, 0.45))
    return runs


def run(
    workload: str,
    *,
    epsilons: tuple[float, ...] = EPSILONS,
    mechanisms: tuple[str, ...] = ("shipped", "broken"),
    steps: int | None = None,
) -> None:
    import torch

    from tunedp.audit.run import AuditSpec, run_audit
    from tunedp.workloads import resolve_workload

    torch.set_num_threads(1)
    setting = SETTINGS[workload]
    if steps is not None:
        setting = Setting(
            workload=workload,
            expected_batch_size=setting.expected_batch_size,
            steps=steps,
            hyperparameters=setting.hyperparameters,
        )
    size = resolve_workload(workload).sizes.train
    WORK.mkdir(parents=True, exist_ok=True)
    for epsilon, divisor, canaries, fraction in runs_of(epsilons, mechanisms):
        plan = trial_plan(setting, size, epsilon)
        k = int(fraction * canaries)
        load = os.getloadavg()[0]
        started = time.perf_counter()
        print(f"{time.strftime('%H:%M:%S')} {workload} ε={epsilon:g} noise/{divisor:g} m={canaries} ...", flush=True)
        result = run_audit(
            AuditSpec(
                workload=workload,
                optimizer="dp_sgd",
                hyperparameters=setting.hyperparameters,
                plan=plan,
                delta=DELTA,
                canaries=canaries,
                guess_counts=((k, k),),
                noise_divisor=divisor,
            )
        )
        line = {
            **result.to_json(),
            "target_epsilon": epsilon,
            "guess_fraction": fraction,
            "expected_batch_size": setting.expected_batch_size,
            "hyperparameters": setting.hyperparameters,
            "wall_s": time.perf_counter() - started,
            "load_average": load,
            "machine": platform.machine(),
            "torch_threads": torch.get_num_threads(),
        }
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
        print(
            f"  claimed {result.claimed_epsilon:.3f}  lower bound {result.empirical_epsilon:.3f}  "
            f"({result.counts.correct}/{result.counts.guesses})  {line['wall_s']:.0f} s",
            flush=True,
        )


def report() -> str:
    """The result table: one row per recorded run, in the order they finished."""
    rows = [json.loads(line) for line in RESULTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = [
        "| workload | mechanism | claimed ε (δ = 1e-5) | empirical ε ≥ (95 %) | correct / guesses | canaries m "
        "| σ claimed | q | steps | verdict | wall |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for row in rows:
        if row["mechanism"].startswith("broken"):
            verdict = "**caught**" if row["violates_claim"] else "not caught"
        else:
            verdict = "ok (≤ claim)" if not row["violates_claim"] else "**VIOLATION**"
        out.append(
            f"| {row['workload']} | {row['mechanism']} | {row['claimed_epsilon']:.3f} "
            f"| {row['empirical_epsilon_lower_bound']:.3f} | {row['correct_guesses']} / "
            f"{row['guesses_in'] + row['guesses_out']} | {row['canaries']} | {row['noise_multiplier_claimed']:.3f} "
            f"| {row['sampling_rate']:.4f} | {row['steps']} | {verdict} | {row['wall_s']:.0f} s |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workloads", nargs="*", help=f"workloads to audit: {', '.join(sorted(SETTINGS))}")
    parser.add_argument("--report", action="store_true", help="print the markdown table of the recorded runs")
    parser.add_argument("--epsilons", type=float, nargs="+", default=list(EPSILONS), help="claimed ε values")
    parser.add_argument("--mechanisms", nargs="+", default=["shipped", "broken"], help="shipped and/or broken (σ/10)")
    parser.add_argument("--steps", type=int, default=None, help="override the workload's step count")
    args = parser.parse_args(argv)
    if args.report:
        print(report())
        return
    if not args.workloads:
        parser.error("name at least one workload, or --report")
    unknown = sorted(set(args.workloads) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown workload {unknown[0]!r}; known: {', '.join(sorted(SETTINGS))}")
    if set(args.mechanisms) - {"shipped", "broken"}:
        parser.error("--mechanisms: use shipped and/or broken")
    for workload in args.workloads:
        run(workload, epsilons=tuple(args.epsilons), mechanisms=tuple(args.mechanisms), steps=args.steps)


if __name__ == "__main__":
    main()
