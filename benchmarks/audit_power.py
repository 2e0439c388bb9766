"""Audit power: does the one-run audit catch a missing clip, a clip at 2·C and noise σ/10?

The trial is ``benchmarks/audit.py``'s digits trial (``search_spaces/example.yaml``'s
shape: q = 200/1200, 90 steps, DP-SGD with lr 0.5, C = 1, momentum 0.9), with σ
calibrated so that the trial costs exactly the claimed ε ∈ {1, 4} at δ = 1e-5.
Each audit is one real training run through ``tunedp.run.trial.run_trial``
(:func:`tunedp.audit.run.run_audit`), unseeded (OS entropy, as a real audit).

Mechanisms (each claims the event of the shipped one):

* ``shipped`` — the DP-SGD tunedp runs;
* ``noise/10`` — σ/10;
* ``no-clip`` — no clipping (a clip at 10⁶·C with σ/10⁶: the same noise σ·C);
* ``clip-2C`` — clipping at 2·C under noise σ·C (a sensitivity off by 2).

Canary designs:

* ``before`` — the canaries as shipped before (raw gradient 2·C, no
  references): m = 1000, the ε lower bound alone (β = 5 %);
* ``now-1000`` — ``tunedp audit``'s default now: m = 1000 audit canaries at
  10·C and 1000 reference canaries at 0.9·C; ε bound and clip check at β/2 each;
* ``now-5000`` — the same with m = 5000 and 5000 references.

"ε realisable" is what the canaries can show at most: the RDP ε (dp_accounting)
of the trial with σ replaced by σ·C / (what one canary contributes per step),
i.e. min(raw canary gradient, trained clip) against noise σ·C. With canaries
at 2·C a missing clip only realises σ/2's ε, however large the real leak.

Usage::

    python benchmarks/audit_power.py run [--repeats 3] [--claims 1 4] [--designs before now-1000 now-5000]
    python benchmarks/audit_power.py report    # writes benchmarks/results/audit_power.md

``run`` appends one JSON line per audit to ``benchmarks/results/audit_power.jsonl``
(flushed at once; run it in the background with a log file). Torch on one
thread: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from audit import DELTA, SETTINGS, trial_plan  # noqa: E402

RESULTS = HERE / "results" / "audit_power.jsonl"
TABLE = HERE / "results" / "audit_power.md"
CLAIMS = (1.0, 4.0)
#: mechanism → (noise divisor, clip multiplier)
MECHANISMS: dict[str, tuple[float, float]] = {
    "shipped": (1.0, 1.0),
    "noise/10": (10.0, 1.0),
    "no-clip": (1.0, math.inf),
    "clip-2C": (1.0, 2.0),
}


@dataclass(frozen=True)
class Design:
    """A canary design: how many audit canaries, their raw gradient (×C) and how many references."""

    canaries: int
    factor: float
    references: int


DESIGNS = {
    "before": Design(canaries=1000, factor=2.0, references=0),
    "now-1000": Design(canaries=1000, factor=10.0, references=1000),
    "now-5000": Design(canaries=5000, factor=10.0, references=5000),
}


def realisable_epsilon(sigma: float, steps: int, q: float, *, factor: float, divisor: float, clip: float) -> float:
    """The ε one canary can show: σ·C noise (÷ divisor) against its per-step contribution, at δ."""
    from tunedp.accounting.epsilon import rdp_epsilon
    from tunedp.accounting.schedule import NoiseSegment
    from tunedp.accounting.trial_event import steps_event

    contribution = min(factor, 1e6 if math.isinf(clip) else clip)  # in units of C
    effective = sigma / divisor / contribution
    return float(rdp_epsilon(steps_event(q, (NoiseSegment(noise_multiplier=effective, steps=steps),)), DELTA))


def run(claims: Iterable[float], designs: Iterable[str], mechanisms: Iterable[str], repeats: int) -> None:
    import torch

    import tunedp.audit.canaries as canary_module
    from tunedp.audit.run import AuditSpec, run_audit

    torch.set_num_threads(1)
    setting = SETTINGS["digits"]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    shipped_factor = canary_module.CANARY_GRADIENT_FACTOR
    for claim in claims:
        plan = trial_plan(setting, 1200, claim)
        sigma = plan.segments[0].noise_multiplier
        for name in designs:
            design = DESIGNS[name]
            for mechanism in mechanisms:
                divisor, clip = MECHANISMS[mechanism]
                for repeat in range(repeats):
                    load = os.getloadavg()[0]
                    started = time.perf_counter()
                    # The canaries' raw gradient is a module constant read when the model is wrapped;
                    # "before" reproduces the old canaries with it, then puts it back.
                    canary_module.CANARY_GRADIENT_FACTOR = design.factor
                    try:
                        result = run_audit(
                            AuditSpec(
                                workload="digits",
                                optimizer="dp_sgd",
                                hyperparameters=setting.hyperparameters,
                                plan=plan,
                                delta=DELTA,
                                canaries=design.canaries,
                                references=design.references,
                                noise_divisor=divisor,
                                clip_multiplier=clip,
                            )
                        )
                    finally:
                        canary_module.CANARY_GRADIENT_FACTOR = shipped_factor
                    line: dict[str, Any] = {
                        **result.to_json(),
                        "claim": claim,
                        "design": name,
                        "canary_factor": design.factor,
                        "mechanism_key": mechanism,
                        "repeat": repeat,
                        "realisable_epsilon": realisable_epsilon(
                            sigma, plan.steps, plan.sampling_rate, factor=design.factor, divisor=divisor, clip=clip
                        ),
                        "wall_s": time.perf_counter() - started,
                        "load_average": load,
                        "machine": platform.machine(),
                        "torch_threads": torch.get_num_threads(),
                    }
                    with RESULTS.open("a", encoding="utf-8") as out:
                        out.write(json.dumps(line) + "\n")
                    check = result.clip_check
                    print(
                        f"{time.strftime('%H:%M:%S')} ε={claim:g} {name} {mechanism} #{repeat}: "
                        f"bound {result.empirical_epsilon:.3f} (claimed {result.claimed_epsilon:.3f})"
                        + ("" if check is None else f", clip ≈ {check.contribution:.2f}·C z = {check.statistic:.1f}")
                        + f" → {'CAUGHT' if result.violates_claim else 'passes'}  {line['wall_s']:.0f} s",
                        flush=True,
                    )


def _range(values: list[float]) -> str:
    if not values:
        return "—"
    low, high = min(values), max(values)
    return f"{low:.2f}" if math.isclose(low, high, abs_tol=5e-3) else f"{low:.2f} to {high:.2f}"


def report() -> str:
    """One row per (claim, design, mechanism): how many audits flagged it, and the figures behind it."""
    rows = [json.loads(line) for line in RESULTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = [
        "| claimed ε | canaries | mechanism | ε realisable | flagged / runs | ε lower bound (range) "
        "| clip check: contribution ≈ ·C (median) | clip check z (range) | wall (median) |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    keys: list[tuple[float, str, str]] = []
    for row in rows:
        key = (row["claim"], row["design"], row["mechanism_key"])
        if key not in keys:
            keys.append(key)
    design_order, mechanism_order = list(DESIGNS), list(MECHANISMS)
    keys.sort(key=lambda k: (k[0], design_order.index(k[1]), mechanism_order.index(k[2])))
    for claim, design, mechanism in keys:
        group = [r for r in rows if (r["claim"], r["design"], r["mechanism_key"]) == (claim, design, mechanism)]
        flagged = sum(r["violates_claim"] for r in group)
        checks = [r["clip_check"] for r in group if r["clip_check"] is not None]
        spec = DESIGNS[design]
        label = f"{spec.canaries} at {spec.factor:g}·C" + (
            f" + {spec.references} refs" if spec.references else " (ε bound only)"
        )
        verdict = f"{flagged} / {len(group)}"
        if mechanism == "shipped":
            verdict += " (must be 0)"
        bounds = _range([r["empirical_epsilon_lower_bound"] for r in group])
        contribution = f"{statistics.median(c['contribution_over_c'] for c in checks):.2f}" if checks else "—"
        z = _range([c["z"] for c in checks]) if checks else "—"
        out.append(
            f"| {claim:g} | {label} | {mechanism} | {group[0]['realisable_epsilon']:.2f} | {verdict} | {bounds} "
            f"| {contribution} | {z} | {statistics.median(r['wall_s'] for r in group):.0f} s |"
        )
    loads = [r["load_average"] for r in rows]
    out.append("")
    out.append(
        f"{len(rows)} audits, unseeded; torch on one thread; load average {min(loads):.1f}–{max(loads):.1f} "
        f"({rows[0]['machine']}). Verdict at 95 %: the ε bound above the claim, or (with references) the clip "
        "check rejecting a contribution ≤ C, each test at β/2."
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="run audits; one JSON line each in results/audit_power.jsonl")
    go.add_argument("--claims", type=float, nargs="+", default=list(CLAIMS))
    go.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS))
    go.add_argument("--mechanisms", nargs="+", default=list(MECHANISMS), choices=list(MECHANISMS))
    go.add_argument("--repeats", type=int, default=3)
    sub.add_parser("report", help="write results/audit_power.md from the recorded runs (and print it)")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.claims, args.designs, args.mechanisms, args.repeats)
        return
    table = report()
    TABLE.write_text(table + "\n", encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
