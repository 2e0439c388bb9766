"""The search-mode contract: every mode (and every mode added later) must pass these.

For each mode, on the real digits workload with a real Ray and sqlite ledger:
the charged event is the plan's event; the number of trials is the one the
charge assumed (the draw from the configured distribution, the grid's size,
``max_trials``); and every observer sees exactly what the disclosure rule
allows — under ``release: best`` one released trial and no per-trial
callback, otherwise every trial once, counted 1..K. Staged modes
(``two_stage``, ``public_proxy``) draw K for their stage-1 search and release
only their final run: nothing of a stage-1 trial reaches the output folder.

Each mode's search runs once per worker (:func:`shared_runs.contract_run`);
tests elsewhere that assert other things about the same search (release:
best's silence on stdout and stderr, ``tunedp.search`` itself, release: all's
composition, ASHA's noisy scores, the progress callback, the searched
variant's released model) read that run instead of repeating it.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from search_helpers import (
    adaptive,
    grid,
    hypo,
    public_proxy,
    random_all,
    random_best,
    two_stage,
    with_searched_variants,
)
from shared_runs import Recorder, contract_run, selection_shape, shared_run

from tunedp.accounting.search_event import draw_trial_count
from tunedp.accounting.serialization import event_to_json
from tunedp.accounting.staged_event import transfer_point
from tunedp.ledger.sqlite import Charge, PrivacyLedger
from tunedp.observe.console import ConsoleProgress
from tunedp.observe.protocol import SearchObserver, SearchOutcome, notify
from tunedp.planning import plan_search
from tunedp.planning.single_stage import SearchPlan
from tunedp.planning.staged import StagedPlan
from tunedp.release.disclosure import disclosure_for
from tunedp.release.records import TrialRecord
from tunedp.release.selection import select_best

MODES = {
    "random/best": lambda: random_best(expected_trials=3.0),
    "random/all": lambda: random_all(expected_trials=2.0, max_trials=3),
    "adaptive": lambda: adaptive(max_trials=3, evaluations=2),
    "grid": lambda: grid(momenta=[0.5, 0.9]),
    # The model variant searched like a hyperparameter: one momentum × two variants = two trials.
    "grid/model": lambda: with_searched_variants(grid(momenta=[0.9]), ["mlp", "cnn"]),
    "two_stage": lambda: two_stage(),
    # Horizon transfer here (linear radius in two_stage): the contract checks the factor either way.
    # Its final run releases no score, so it trains on the validation rows too.
    "public_proxy": lambda: public_proxy(transfer="horizon", train_on_validation=True),
    # Adaptive proposals, K drawn as in random/best and kept secret: released as release: best.
    "hypo": lambda: hypo(expected_trials=3.0),
}


#: Modes whose run tests in other modules assert on too (see shared_runs): one run serves them all.
SHARED = {"random/best", "random/all", "adaptive", "grid/model"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode", [pytest.param(mode, marks=shared_run(mode)) if mode in SHARED else mode for mode in sorted(MODES)]
)
def test_search_mode_contract(mode: str, ray_session: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    run = contract_run(MODES[mode](), tmp_path_factory)
    plan, seed, ledger_path, outcome, recorder = run.plan, run.seed, run.ledger_path, run.outcome, run.recorder

    # 1. The charge is the plan's event, stored and recomposed.
    (charge,) = PrivacyLedger.open(ledger_path).charges()
    assert event_to_json(charge.event) == event_to_json(plan.event)
    assert charge.epsilon == pytest.approx(plan.search_epsilon, rel=1e-12)

    # 2. K is what the charge assumed.
    records = run.selected[-1]
    shape = selection_shape(plan)
    expected = draw_trial_count(shape, np.random.default_rng(seed))
    assert len(records) == expected
    if shape.max_trials is not None:
        assert len(records) <= shape.max_trials

    # 3. Observers see exactly what the disclosure rule allows.
    rule = disclosure_for(plan.shape.mode, plan.shape.release)
    kinds = [kind for kind, _ in recorder.calls]
    assert kinds[0] == "charged" and kinds[-1] == "finished"
    trial_calls = [payload for kind, payload in recorder.calls if kind == "trial"]
    assert outcome.best is not None
    if rule.releases_all:
        assert [done for _, done, _ in trial_calls] == list(range(1, len(records) + 1))
        assert {planned for _, _, planned in trial_calls} == {len(records)}
        assert len(outcome.disclosed_trials) == len(records)
        assert outcome.report.trials is not None and len(outcome.report.trials) == len(records)
    else:
        assert trial_calls == []
        assert outcome.disclosed_trials == (outcome.best,)
        assert outcome.report.trials is None and "trial_count" not in outcome.report.to_json()
        shown = run.console
        for record in records:
            if record.point != outcome.best.point:
                assert f"{record.final_score:.4f}" not in shown or record.final_score == outcome.best.final_score
    if isinstance(plan, StagedPlan):
        _assert_nothing_of_stage1_leaves(records, outcome, shown=run.console)
        # 4. The final run trained at the selected point with its learning rate times the plan's factor.
        chosen = select_best(records)
        assert chosen is not None and plan.transfer_factor != 1.0
        assert outcome.best.point == pytest.approx(transfer_point(chosen.point, plan.transfer_factor), rel=1e-12)
        # 5. The charged run sampled from the rows it trained on (and stage 1 never from validation).
        sizes = plan.sizes
        on_validation = plan.config.training.train_on_validation
        assert plan.trial.dataset_size == sizes.train + (sizes.validation if on_validation else 0)
        assert not plan.stage1.config.training.train_on_validation


def _assert_nothing_of_stage1_leaves(stage1: list[TrialRecord], outcome: SearchOutcome, *, shown: str) -> None:
    """The output folder and the console hold the final run only: no stage-1 point, score or count."""
    assert outcome.best is not None and outcome.best.released_scores == ()  # final_score: none
    written = "\n".join(p.read_text(errors="replace") for p in outcome.output_dir.rglob("*") if p.suffix != ".pt")
    document = outcome.report.to_json()
    assert document["best"]["final_score"] is None and "trial_count" not in document
    assert sorted(p.name for p in outcome.output_dir.iterdir()) == ["best_model.pt", "report.json", "report.txt"]
    for record in stage1:
        for value in [*record.point.values(), *record.released_scores]:
            if value in outcome.best.point.values():  # a fixed coordinate (momentum) the final run shares
                continue
            # Full precision in the files (4-digit forms could occur inside other figures by chance).
            assert repr(value) not in written and json.dumps(value) not in written, record
            assert f"{value:.4f}" not in shown, record


# ---------------------------------------------------------------------------- the observer contract


class Broken(SearchObserver):
    def on_charged(self, plan: SearchPlan, charge: Charge, ledger: PrivacyLedger) -> None:
        raise RuntimeError("display went away")


def test_a_failing_observer_never_stops_the_others(caplog: pytest.LogCaptureFixture) -> None:
    after = Recorder()
    with caplog.at_level(logging.WARNING):
        notify([Broken(), after], "on_charged", None, None, None)
    assert after.calls == [("charged", None)]
    assert "display went away" in caplog.text


@pytest.mark.parametrize("observer", ["console", "mlflow"])
def test_every_shipped_observer_is_a_search_observer_and_ignores_a_search_it_never_saw(
    observer: str, tmp_path: Path
) -> None:
    """An observer told only that a search finished (it missed the charge) must not fail or open anything."""
    if observer == "console":
        instance: SearchObserver = ConsoleProgress(Console(file=io.StringIO()))
    else:
        from tunedp.observe.mlflow_tracker import MlflowTracker

        instance = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert isinstance(instance, SearchObserver)
    for hook in ("on_charged", "on_trial_done", "on_finished"):
        assert callable(getattr(instance, hook))
    plan = plan_search(random_best())
    outcome = SearchOutcome(
        search_id="0" * 32, plan=plan, charge=None, best=None, disclosed_trials=(), report=None, output_dir=tmp_path
    )  # type: ignore[arg-type]
    if observer == "mlflow":
        instance.on_finished(outcome)
        assert not (tmp_path / "mlflow.db").exists()


def test_the_cli_chooses_the_observers(monkeypatch: pytest.MonkeyPatch) -> None:
    from tunedp.cli.search import _observers
    from tunedp.observe.mlflow_tracker import MlflowTracker

    monkeypatch.setenv("TUNEDP_TRACKING", "0")
    assert [type(o) for o in _observers(None)] == [ConsoleProgress]
    assert [type(o) for o in _observers("sqlite:////tmp/x.db")] == [ConsoleProgress, MlflowTracker]
    monkeypatch.setenv("TUNEDP_TRACKING", "1")
    assert [type(o) for o in _observers(None)] == [ConsoleProgress, MlflowTracker]
