"""The ``hypo`` search mode: its bounded proposal, its config and plan, and a real adaptive search.

The proposal is what DP-HyPO's charge rests on: for every history its
density ratio to the prior must stay in [c, C] with C/c the config's
``density_ratio``, and what it samples must be that density. Then the
config, the plan (``plan --json`` carries what recomputes ε), the shipped
configs, and one real search on digits whose proposals are watched: each
point is drawn from the released scores of the trials finished before it.
(The disclosure side — one released trial, no K — is the search-mode
contract's, ``tests/e2e/test_search_modes.py``.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dp_accounting import dp_event
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from search_helpers import REPO, hypo, small_config

import tunedp
import tunedp.modes.hypo_proposal as hypo_proposal
from tunedp import cli
from tunedp.accounting.epsilon import rdp_epsilon
from tunedp.accounting.hypo import HypoDpEvent
from tunedp.accounting.search_event import draw_trial_count
from tunedp.config import ConfigError, load_config, parse_config
from tunedp.errors import CalibrationError
from tunedp.ledger.binding import create_ledger
from tunedp.modes.hypo_proposal import CHOICE_KEEP, Axis, BoundedProposal
from tunedp.planning import plan_search
from tunedp.release.records import TrialRecord

# ----------------------------------------------------------------------------- the proposal's bounds

_AXES = (
    Axis(name="step_size", kind="log", low=0.05, high=2.0),
    Axis(name="momentum", kind="linear", low=0.0, high=0.95),
    Axis(name="batch", kind="choice", values=(64.0, 128.0, 256.0)),
    Axis(name="model", kind="choice", values=("mlp", "cnn")),
    Axis(name="clip_norm", kind="fixed", values=(1.0,)),
)


def _point(unit: list[float], batch: int, model: int) -> dict[str, Any]:
    return {
        "step_size": _AXES[0].from_unit(unit[0]),
        "momentum": _AXES[1].from_unit(unit[1]),
        "batch": _AXES[2].values[batch],
        "model": _AXES[3].values[model],
        "clip_norm": 1.0,
    }


_points = st.builds(
    _point,
    st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2, max_size=2),
    st.integers(min_value=0, max_value=2),
    st.integers(min_value=0, max_value=1),
)
_history = st.lists(st.tuples(_points, st.floats(min_value=-0.5, max_value=1.5)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    history=_history,
    point=_points,
    ratio=st.floats(min_value=1.0, max_value=50.0),
    bandwidth=st.floats(min_value=0.02, max_value=1.0),
)
def test_for_every_history_the_ratio_to_the_prior_stays_in_c_to_big_c(
    history: list[tuple[dict[str, Any], float]], point: dict[str, Any], ratio: float, bandwidth: float
) -> None:
    proposal = BoundedProposal(_AXES, density_ratio=ratio, bandwidth=bandwidth)
    assert proposal.upper / proposal.lower == pytest.approx(ratio, rel=1e-12)
    assert proposal.lower <= 1.0 <= proposal.upper
    value = proposal.ratio(point, history)
    assert proposal.lower * (1 - 1e-12) <= value <= proposal.upper * (1 + 1e-12)


@pytest.mark.parametrize("corner", [0.0, 1.0])
def test_the_upper_bound_is_reached_so_c_over_big_c_is_the_span_actually_used(corner: float) -> None:
    """One elite at a corner of the cube, on the least likely choice: the ratio there is C exactly.

    (Centred at an end of [0, 1] the truncated normal is at its tallest, the
    case the closed-form bound is written for.)
    """
    proposal = BoundedProposal(_AXES, density_ratio=1.5, bandwidth=0.2)
    elite = _point([corner, corner], 2, 1)
    assert proposal.ratio(elite, [(elite, 0.9)]) == pytest.approx(proposal.upper, rel=1e-9)
    far = _point([1.0 - corner, 1.0 - corner], 0, 0)
    assert proposal.ratio(far, [(elite, 0.9)]) == pytest.approx(proposal.lower, rel=1e-6)


def test_no_history_or_density_ratio_one_is_the_prior() -> None:
    point = _point([0.3, 0.7], 1, 0)
    assert BoundedProposal(_AXES, density_ratio=1.5, bandwidth=0.2).ratio(point, []) == 1.0
    flat = BoundedProposal(_AXES, density_ratio=1.0, bandwidth=0.2)
    assert flat.weight == 0.0 and flat.ratio(point, [(point, 1.0)]) == 1.0


def test_the_kernel_is_centred_on_the_best_released_scores() -> None:
    """The best quarter of the history by score: here the single best of four trials."""
    proposal = BoundedProposal(_AXES[:1], density_ratio=2.0, bandwidth=0.1)
    points = [{"step_size": _AXES[0].from_unit(u)} for u in (0.1, 0.4, 0.7, 0.9)]
    history = list(zip(points, [0.2, 0.95, 0.5, 0.6], strict=True))
    assert proposal.elites(history) == [points[1]]
    assert proposal.ratio(points[1], history) > 1.0 > proposal.ratio(points[3], history)


def test_a_non_finite_score_teaches_nothing() -> None:
    proposal = BoundedProposal(_AXES[:1], density_ratio=2.0, bandwidth=0.1)
    point = {"step_size": 0.3}
    assert proposal.elites([(point, math.nan)]) == []


# ----------------------------------------------------------------------------- the proposal samples its density


def test_continuous_draws_follow_the_mixture_it_claims() -> None:
    """20 000 draws on one log-uniform axis, seen in the unit interval: a KS test against
    (1 − w)·u + w·F_truncnorm(u), the mixture's CDF."""
    axis = Axis(name="lr", kind="log", low=1e-3, high=0.3)
    proposal = BoundedProposal([axis], density_ratio=3.0, bandwidth=0.15)
    elite = {"lr": axis.from_unit(0.8)}
    rng = np.random.default_rng(11)
    draws = np.array([axis.to_unit(proposal.sample([(elite, 0.9)], rng)["lr"]) for _ in range(20_000)])
    kernel = stats.truncnorm(-0.8 / 0.15, 0.2 / 0.15, loc=0.8, scale=0.15)
    w = proposal.weight

    def cdf(u: np.ndarray) -> np.ndarray:
        return (1 - w) * np.clip(u, 0, 1) + w * kernel.cdf(u)

    assert stats.kstest(draws, cdf).pvalue > 1e-3
    # ... and not the prior: at this many draws the KS test sees the difference.
    assert stats.kstest(draws, "uniform").pvalue < 1e-3


def test_choice_draws_follow_the_mixture_it_claims() -> None:
    axis = Axis(name="model", kind="choice", values=("mlp", "cnn", "logreg"))
    proposal = BoundedProposal([axis], density_ratio=4.0, bandwidth=0.2)
    rng = np.random.default_rng(5)
    draws = [proposal.sample([({"model": "cnn"}, 0.9)], rng)["model"] for _ in range(30_000)]
    w = proposal.weight
    expected = {
        v: (1 - w) / 3 + w * ((1 - CHOICE_KEEP) / 3 + (CHOICE_KEEP if v == "cnn" else 0.0)) for v in axis.values
    }
    observed = [draws.count(v) for v in axis.values]
    assert stats.chisquare(observed, [expected[v] * len(draws) for v in axis.values]).pvalue > 1e-3
    assert set(draws) == set(axis.values)


def test_draws_stay_inside_the_declared_ranges() -> None:
    proposal = BoundedProposal(_AXES, density_ratio=10.0, bandwidth=0.5)
    rng = np.random.default_rng(3)
    history = [(_point([0.0, 1.0], 0, 1), 1.0)]
    for _ in range(2000):
        point = proposal.sample(history, rng)
        assert 0.05 <= point["step_size"] <= 2.0 and 0.0 <= point["momentum"] <= 0.95
        assert point["batch"] in (64.0, 128.0, 256.0) and point["model"] in ("mlp", "cnn")
        assert point["clip_norm"] == 1.0


def test_the_proposal_of_a_config_has_its_space_and_variants() -> None:
    data = small_config().model_dump(mode="json", exclude_none=True)
    data["search"] = {"mode": "hypo", "expected_trials": 3.0, "density_ratio": 1.3, "bandwidth": 0.3}
    data.pop("model", None)
    data["space"]["model"] = {"distribution": "choice", "values": ["mlp", "cnn"]}
    proposal = BoundedProposal.of_config(parse_config(data), model_key="model")
    kinds = {axis.name: axis.kind for axis in proposal.axes}
    assert kinds == {"step_size": "log", "clip_norm": "log", "momentum": "fixed", "model": "choice"}
    assert (proposal.density_ratio, proposal.bandwidth) == (1.3, 0.3)
    with pytest.raises(ValueError, match="mode hypo"):
        BoundedProposal.of_config(small_config(), model_key="model")


# ----------------------------------------------------------------------------- config and plan


def _hypo_data(**search: object) -> dict[str, Any]:
    data = small_config().model_dump(mode="json", exclude_none=True)
    data["search"] = {"mode": "hypo", "expected_trials": 4.0, "density_ratio": 1.2, **search}
    return data


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"distribution": "poisson"}, "search.distribution: hypo needs negative_binomial"),
        ({"density_ratio": 0.9}, "search.density_ratio: Input should be greater than or equal to 1"),
        ({"density_ratio": None}, "search.density_ratio"),
        ({"release": "all"}, "search.release"),
        ({"bandwidth": 0.0}, "search.bandwidth"),
        ({"max_trials": 5}, "search.max_trials: unknown field"),
    ],
)
def test_a_bad_hypo_config_is_one_line_naming_the_field(search: dict[str, object], message: str) -> None:
    data = _hypo_data(**search)
    if search.get("density_ratio", 0) is None:
        del data["search"]["density_ratio"]
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source="cfg.yaml")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_density_ratio_no_sigma_can_pay_for_is_refused_naming_it() -> None:
    data = _hypo_data(density_ratio=50.0)
    data["budget"] = {"epsilon": 1.0, "delta": 1e-5}
    with pytest.raises(CalibrationError, match=r"lower search\.density_ratio"):
        plan_search(parse_config(data))


def test_plan_json_recomputes_the_charge() -> None:
    """Everything Theorem 1 needs is in the plan's JSON: the trial from its schedule, q, steps and
    score releases; K's mean, shape and γ; C/c. Rebuilt from the document alone, the event prices the same."""
    plan = plan_search(hypo(expected_trials=4.0, density_ratio=1.3))
    document = json.loads(json.dumps(plan.to_json()))
    assert (document["mode"], document["release"], document["max_trials"]) == ("hypo", "best", None)
    q = document["sampling_rate"]
    steps = [
        dp_event.SelfComposedDpEvent(
            dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(s["noise_multiplier"])), s["steps"]
        )
        for s in document["schedule"]
    ]
    scores = dp_event.SelfComposedDpEvent(
        dp_event.GaussianDpEvent(document["score_noise_multiplier"]), document["score_releases"]
    )
    trial = dp_event.ComposedDpEvent([*steps, scores])
    rebuilt = HypoDpEvent(trial, document["expected_trials"], document["shape"], document["density_ratio"])
    assert rdp_epsilon(rebuilt, document["delta"]) == pytest.approx(document["search_epsilon"], rel=1e-9)
    assert rdp_epsilon(trial, document["delta"]) == pytest.approx(document["trial_epsilon"], rel=1e-9)
    # γ as printed is the truncated negative binomial's with that mean (Papernot & Steinke, Definition 1).
    gamma, shape = document["count_gamma"], document["shape"]
    assert shape * (1 - gamma) / (gamma * (1 - gamma**shape)) == pytest.approx(document["expected_trials"], rel=1e-6)
    # The charge is above what random/best pays at the same σ (the price of adapting), never below.
    random = rdp_epsilon(dp_event.RepeatAndSelectDpEvent(trial, 4.0, shape), document["delta"])
    assert random < document["search_epsilon"] <= document["budget_epsilon"]


@pytest.mark.parametrize("name", ["digits_hypo.yaml", "adult_hypo.yaml"])
def test_the_shipped_hypo_configs_plan_within_their_budget(name: str) -> None:
    config = load_config(REPO / "search_spaces" / name)
    plan = plan_search(config)
    assert plan.shape.mode == "hypo" and plan.shape.release == "best"
    assert isinstance(plan.event, HypoDpEvent) and plan.event.density_ratio == config.search.density_ratio  # type: ignore[union-attr]
    assert 0.99 * config.budget.epsilon <= plan.search_epsilon <= config.budget.epsilon


def test_plan_cli_prints_the_density_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TUNEDP_HOME", str(tmp_path))
    monkeypatch.setattr(cli.console, "width", 250)  # one table row a line
    config = str(REPO / "search_spaces" / "digits_hypo.yaml")

    def plan(*extra: str) -> str:
        with pytest.raises(SystemExit) as exited:
            cli.main(["plan", "-c", config, "--no-preflight", *extra])
        assert exited.value.code in (0, None)
        return capsys.readouterr().out

    document = json.loads(plan("--json"))
    assert (document["density_ratio"], document["shape"], document["count_gamma"]) == (1.2, 1.0, 0.25)
    assert "proposal density ratio C/c │ 1.2 (DP-HyPO Theorem 1; K's γ = 0.25)" in plan()


# ----------------------------------------------------------------------------- Tune's searcher


class _Watched(BoundedProposal):
    """The real proposal, remembering the history each draw was made from."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.histories: list[list[tuple[dict[str, Any], float]]] = []

    def sample(self, history: Any, rng: np.random.Generator) -> dict[str, Any]:
        self.histories.append([(dict(p), s) for p, s in history])
        return super().sample(history, rng)


def test_the_searcher_learns_only_from_finished_trials_released_scores() -> None:
    from tunedp.run.ray_backend import METRIC, HypoSearcher

    proposal = _Watched([Axis(name="lr", kind="log", low=1e-3, high=0.3)], density_ratio=2.0, bandwidth=0.1)
    searcher = HypoSearcher(proposal, seed=1, lag=3)
    first, second, third = (searcher.suggest(t) for t in ("a", "b", "c"))
    assert first is not None and second is not None and third is not None
    searcher.on_trial_result("a", {METRIC: 0.99})  # an intermediate report: not a finished trial
    assert searcher.history == []
    searcher.on_trial_complete("a", {METRIC: 0.8, "train_seconds": 3.0})
    searcher.on_trial_complete("b", None, error=True)  # failed: teaches nothing
    searcher.on_trial_complete("c", {METRIC: math.nan})
    assert searcher.history == [(first, 0.8)]
    assert searcher.suggest("d") is not None
    assert proposal.histories[-1] == [(first, 0.8)]


def test_which_trials_a_point_learns_from_is_fixed_by_position_not_by_timing() -> None:
    """Two at a time: the third point learns from the first trial only, and waits for it even
    when the second finished first (a trial's wall time is not a release)."""
    from tunedp.run.ray_backend import METRIC, HypoSearcher

    proposal = _Watched([Axis(name="lr", kind="log", low=1e-3, high=0.3)], density_ratio=2.0, bandwidth=0.1)
    searcher = HypoSearcher(proposal, seed=2, lag=2)
    first, second = searcher.suggest("a"), searcher.suggest("b")
    assert proposal.histories == [[], []]
    searcher.on_trial_complete("b", {METRIC: 0.9})
    assert searcher.suggest("c") is None  # trial a, which the third point learns from, still runs
    searcher.on_trial_complete("a", {METRIC: 0.6})
    assert searcher.suggest("c2") is not None
    assert proposal.histories[-1] == [(first, 0.6)]  # not b's 0.9, although b finished first
    searcher.on_trial_complete("c2", {METRIC: 0.7})
    assert searcher.suggest("d") is not None
    assert proposal.histories[-1] == [(first, 0.6), (second, 0.9)]


def test_the_searchers_state_survives_tunes_checkpoint(tmp_path: Path) -> None:
    from tunedp.run.ray_backend import METRIC, HypoSearcher

    proposal = BoundedProposal(_AXES, density_ratio=3.0, bandwidth=0.2)
    searcher = HypoSearcher(proposal, seed=9)
    for trial_id, score in (("a", 0.5), ("b", 0.7)):
        searcher.suggest(trial_id)
        searcher.on_trial_complete(trial_id, {METRIC: score})
    searcher.save(str(tmp_path / "state.json"))
    restored = HypoSearcher(proposal, seed=0)
    restored.restore(str(tmp_path / "state.json"))
    assert restored.history == searcher.history
    assert restored.suggest("c") == searcher.suggest("c")


# ----------------------------------------------------------------------------- a real search


@pytest.mark.slow
def test_a_real_hypo_search_proposes_each_point_from_the_scores_released_before_it(
    ray_session: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One trial at a time on digits: trial j's proposal sees exactly the j − 1 finished trials'
    points and released scores (nothing else), and the search releases one trial."""
    config = hypo(expected_trials=3.0, density_ratio=3.0)
    plan = plan_search(config)
    seed = next(s for s in range(1000) if draw_trial_count(plan.shape, np.random.default_rng(s)) >= 3)
    count = draw_trial_count(plan.shape, np.random.default_rng(seed))
    seen: list[list[tuple[dict[str, Any], float]]] = []
    original = hypo_proposal.BoundedProposal.sample

    def watched(self: BoundedProposal, history: Any, rng: np.random.Generator) -> dict[str, Any]:
        seen.append([(dict(point), score) for point, score in history])
        return original(self, history, rng)

    monkeypatch.setattr(hypo_proposal.BoundedProposal, "sample", watched)
    selected: list[list[TrialRecord]] = []
    import tunedp.run.driver as driver_module

    select = driver_module.select_best
    monkeypatch.setattr(driver_module, "select_best", lambda records: selected.append(list(records)) or select(records))
    ledger_path = tmp_path / "digits.sqlite"
    create_ledger(ledger_path, dataset="digits", epsilon=100.0, delta=1e-5)
    outcome = tunedp.search(config, ledger_path=ledger_path, seed=seed, output_dir=tmp_path / "out", max_concurrent=1)

    records = selected[-1]
    assert len(seen) == len(records) == count
    assert [len(history) for history in seen] == list(range(count))
    finished = [(r.point, r.final_score) for r in records]
    for index, history in enumerate(seen):
        # Exactly the earlier trials' points and last released scores, in the order they finished.
        assert [(p, pytest.approx(s, rel=1e-12)) for p, s in history] == [(p, s) for p, s in finished[:index]]
    assert outcome.best is not None and outcome.disclosed_trials == (outcome.best,)
    assert "trial_count" not in outcome.report.to_json()
