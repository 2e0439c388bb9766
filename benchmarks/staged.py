"""Staged searches: where the budget goes, what PLD would save, and (optionally) what a real search delivers.

Three parts, each printed as a Markdown table for ``benchmarks/README.md``:

1. ``split``: for the shipped Fashion-MNIST two-stage config at total ε ∈ {1, 3},
   the stage-1 σ₁ and trial ε, the final run's σ₂ and ε, and the transfer
   factor, for several ``stage1_budget_share`` values — against the σ a
   one-stage random search (the shipped ``fashion_mnist.yaml``) trains its
   released model with. Pure accounting (no data read).
2. ``pld``: the final Fashion-MNIST run alone (what public-proxy charges):
   the σ calibrated with RDP (what tunedp charges), the σ PLD would allow for
   the same ε, and the RDP ε the ledger would record for that PLD σ; and for
   the two-stage charge, RDP composition against PLD-for-stage-2 plus basic
   composition. The reasons PLD calibration is rejected are in the README.
3. ``run`` (``--run``): complete searches with the shipped configs on this
   machine, each with a fresh ledger: test accuracy of the released model and
   wall time. Slow (minutes per search on 2 cores).

Usage: ``.venv/bin/python benchmarks/staged.py [split] [pld] [run --configs ... --repeats N]``
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dp_accounting import dp_event  # noqa: E402
from dp_accounting.pld import pld_privacy_accountant  # noqa: E402

from tunedp.accounting.epsilon import PLD_DISCRETIZATION, rdp_epsilon  # noqa: E402
from tunedp.accounting.trial_event import steps_event  # noqa: E402
from tunedp.config import SearchConfig, load_config  # noqa: E402
from tunedp.planning import plan_search  # noqa: E402
from tunedp.planning.staged import StagedPlan  # noqa: E402

SHARES = (0.1, 0.2, 0.3, 0.4, 0.5)


def _with(config: SearchConfig, **search: Any) -> SearchConfig:
    data = config.model_dump(mode="python")
    data["search"] = {**data["search"], **search}
    return SearchConfig.model_validate(data, strict=False)


def split_table() -> str:
    two_stage = load_config(REPO / "search_spaces" / "fashion_mnist_two_stage.yaml")
    one_stage = load_config(REPO / "search_spaces" / "fashion_mnist.yaml")
    lines = [
        "| total ε | mode | stage-1 share | σ₁ (5-epoch trials) | stage-1 trial ε | σ of the released run "
        "| released run's ε alone | η₂/η₁ |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for epsilon in (1.0, 3.0):
        single = plan_search(one_stage.with_budget(epsilon=epsilon, delta=None))
        lines.append(
            f"| {epsilon:g} | random (8 expected 20-epoch trials) | – | – | – | {single.noise_multiplier:.3f} "
            f"| {single.trial_epsilon:.3f} | – |"
        )
        for share in SHARES:
            try:
                plan = plan_search(_with(two_stage.with_budget(epsilon=epsilon, delta=None), stage1_budget_share=share))
            except Exception as error:  # a share too small for stage 1's fixed costs
                lines.append(f"| {epsilon:g} | two_stage | {share:.0%} | {error} | | | | |")
                continue
            assert isinstance(plan, StagedPlan)
            lines.append(
                f"| {epsilon:g} | two_stage | {share:.0%} | {plan.stage1.noise_multiplier:.3f} "
                f"| {plan.stage1.trial_epsilon:.3f} | {plan.noise_multiplier:.3f} | {plan.trial_epsilon:.3f} "
                f"| {plan.transfer_factor:.3f} |"
            )
    return "\n".join(lines)


def _pld_epsilon(event: dp_event.DpEvent, delta: float) -> float:
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=PLD_DISCRETIZATION)
    return float(accountant.compose(event).get_epsilon(delta))


def pld_table() -> str:
    proxy = plan_search(load_config(REPO / "search_spaces" / "fashion_mnist_public_proxy.yaml"))
    two = plan_search(load_config(REPO / "search_spaces" / "fashion_mnist_two_stage.yaml"))
    assert isinstance(proxy, StagedPlan) and isinstance(two, StagedPlan)
    delta = proxy.delta
    trial = proxy.trial

    def final_event(sigma: float) -> dp_event.DpEvent:
        segments = tuple(type(s)(noise_multiplier=sigma, steps=s.steps) for s in trial.segments)
        return steps_event(trial.sampling_rate, segments)

    target = proxy.config.budget.epsilon
    rdp_sigma = proxy.noise_multiplier
    # PLD calibration by bisection on the same event (the plan's calibration uses RDP).
    low, high = 0.3, rdp_sigma
    for _ in range(30):
        middle = (low + high) / 2
        if _pld_epsilon(final_event(middle), delta) <= target:
            high = middle
        else:
            low = middle
    pld_sigma = high
    rows = [
        "| event | σ (RDP-calibrated, charged today) | its PLD ε | σ if PLD-calibrated "
        "| RDP ε of that σ (what the ledger records) |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| Fashion-MNIST final run, 20 epochs, B = 2048, ε = {target:g} | {rdp_sigma:.4f} "
        f"| {_pld_epsilon(final_event(rdp_sigma), delta):.4f} | {pld_sigma:.4f} "
        f"| {rdp_epsilon(final_event(pld_sigma), delta):.4f} |",
    ]
    # Two-stage: stage 1 is repeat-and-select (RDP only). The only mixed bound is basic composition
    # of stage 1's RDP ε and stage 2's PLD ε (δ split in two halves).
    stage1_half = rdp_epsilon(two.stage1.event, delta / 2)
    stage2_half = _pld_epsilon(two.trial.dp_event(), delta / 2)
    rows += [
        "",
        "| two-stage charge (Fashion-MNIST, ε = 3, share 30 %) | ε at δ = 1e-5 |",
        "| --- | ---: |",
        f"| RDP composition of both stages (charged) | {two.search_epsilon:.4f} |",
        f"| basic composition: stage 1 RDP at δ/2 + stage 2 PLD at δ/2 | {stage1_half + stage2_half:.4f} |",
    ]
    return "\n".join(rows)


def run_searches(configs: list[str], repeats: int) -> str:
    from tunedp.ledger.sqlite import PrivacyLedger
    from tunedp.run.driver import search

    logging.getLogger("absl").setLevel(logging.ERROR)
    lines = [
        "| config | ε | run | test accuracy | wall (s) | released hyperparameters |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name in configs:
        config = load_config(REPO / "search_spaces" / f"{name}.yaml")
        for index in range(repeats):
            with tempfile.TemporaryDirectory() as folder:
                ledger = Path(folder) / "ledger.sqlite"
                PrivacyLedger.create(ledger, dataset=config.dataset_name, epsilon=config.budget.epsilon, delta=1e-5)
                started = time.perf_counter()
                outcome = search(config, ledger_path=ledger, output_dir=Path(folder) / "out")
                wall = time.perf_counter() - started
            best = outcome.best
            assert best is not None
            hyper = ", ".join(f"{k}={v:.4g}" for k, v in sorted(best.hyperparameters.items()))
            lines.append(
                f"| {name} | {config.budget.epsilon:g} | {index + 1} | {best.test_metric or float('nan'):.4f} "
                f"| {wall:.0f} | {hyper} |"
            )
            print(lines[-1], flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["split", "pld"], choices=["split", "pld", "run"])
    parser.add_argument("--configs", nargs="*", default=["fashion_mnist_two_stage", "fashion_mnist_public_proxy"])
    parser.add_argument("--repeats", type=int, default=1)
    arguments = parser.parse_args()
    logging.getLogger("absl").setLevel(logging.ERROR)
    if "split" in arguments.parts:
        print(split_table(), "\n", flush=True)
    if "pld" in arguments.parts:
        print(pld_table(), "\n", flush=True)
    if "run" in arguments.parts:
        print(run_searches(arguments.configs, arguments.repeats), flush=True)


if __name__ == "__main__":
    main()
