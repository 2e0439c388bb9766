"""The model variant as a searched dimension (``space.model``): same charge, variant carried to the released model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from search_helpers import REPO, grid, public_proxy, random_best, two_stage, with_searched_variants
from shared_runs import contract_run, shared_run

from tunedp.config import ConfigError, parse_config
from tunedp.ledger.binding import create_ledger
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.planning import plan_search
from tunedp.run.driver import search
from tunedp.run.preflight import PreflightError, run_preflight


def test_a_searched_variant_costs_what_a_fixed_one_costs() -> None:
    """The variant changes no step, σ, q or score release: random/best is priced the same; grid counts it."""
    fixed, searched = random_best(2.5), with_searched_variants(random_best(2.5), ["mlp", "cnn"])
    assert plan_search(searched).search_epsilon == pytest.approx(plan_search(fixed).search_epsilon, rel=1e-12)
    one, two = grid(momenta=[0.9]), with_searched_variants(grid(momenta=[0.9]), ["mlp", "cnn"])
    assert plan_search(one).shape.max_trials == 1 and plan_search(two).shape.max_trials == 2
    assert plan_search(two).search_epsilon > plan_search(one).search_epsilon


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model": "mlp"}, "model: fixes one variant while space.model searches several"),
        ({"space.model.values": ["mlp", "mlp"]}, "listed more than once"),
        ({"space.model.values": []}, "space.model.values"),
    ],
)
def test_bad_variant_choices_are_one_line_errors(change: dict[str, object], field: str) -> None:
    data = with_searched_variants(random_best(2.5), ["mlp", "cnn"]).model_dump(mode="json", exclude_none=True)
    for key, value in change.items():
        if key == "model":
            data["model"] = value
        else:
            data["space"]["model"]["values"] = value
    with pytest.raises(ConfigError) as error:
        parse_config(data, source="test")
    assert "\n" not in str(error.value) and field in str(error.value)


def test_an_unknown_variant_fails_the_preflight_before_any_charge() -> None:
    config = with_searched_variants(random_best(2.5), ["mlp", "transformer"])
    with pytest.raises(PreflightError, match=r"^space\.model\.values: .* no model variant 'transformer'; known: mlp"):
        run_preflight(plan_search(config))


def test_a_public_proxy_must_offer_every_searched_variant() -> None:
    with pytest.raises(ConfigError, match=r"public workload 'mnist_public' has no variant 'mlp'"):
        plan_search(with_searched_variants(public_proxy(), ["mlp", "cnn"]))


@pytest.mark.slow
@shared_run("grid/model")
def test_a_grid_over_variants_trains_each_and_releases_the_best_with_its_variant(
    ray_session: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = with_searched_variants(grid(momenta=[0.9]), ["mlp", "cnn"])
    run = contract_run(config, tmp_path_factory)  # the search-mode contract's grid/model run
    ledger, outcome, out = run.ledger_path, run.outcome, run.outcome.output_dir
    assert sorted(str(t.variant) for t in outcome.disclosed_trials) == ["cnn", "mlp"]  # grid releases all
    best = outcome.report.best
    assert best is not None and best.variant in ("mlp", "cnn") and best.test_metric is not None
    # The released file is the selected variant's network: it loads into that variant only.
    from tunedp.workloads import resolve_workload

    state = torch.load(out / "best_model.pt", weights_only=True)
    resolve_workload("digits").build_model(best.variant).load_state_dict(state)
    other = "cnn" if best.variant == "mlp" else "mlp"
    with pytest.raises(RuntimeError):
        resolve_workload("digits").build_model(other).load_state_dict(state)
    report = json.loads((out / "report.json").read_text())
    assert report["best"]["variant"] == best.variant
    assert {t["variant"] for t in report["trials"]} == {"mlp", "cnn"}
    (charge,) = PrivacyLedger.open(ledger).charges()
    assert charge.epsilon == pytest.approx(plan_search(config).search_epsilon, rel=1e-12)


@pytest.mark.slow
def test_a_two_stage_final_run_trains_the_variant_stage_one_selected(ray_session: str, tmp_path: Path) -> None:
    config = with_searched_variants(two_stage(), ["mlp", "cnn"])
    ledger = tmp_path / "digits.sqlite"
    create_ledger(ledger, dataset="digits", epsilon=100.0, delta=1e-5)
    outcome = search(config, ledger_path=ledger, output_dir=tmp_path / "out", seed=5)
    best = outcome.report.best
    assert best is not None and best.variant in ("mlp", "cnn")
    # The test metric is measured by rebuilding the released variant: it loads, so they agree.
    assert best.test_metric is not None


def test_the_shipped_tempered_search_plans_with_both_variants(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tunedp.cli", "plan", "--json",
         "--config", str(REPO / "search_spaces" / "fashion_mnist_tempered.yaml")],
        capture_output=True, text=True, env={"TUNEDP_HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
                                              "PYTHONPATH": str(REPO)}, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["workload"] == "fashion_mnist" and figures["search_epsilon"] <= 3.0
