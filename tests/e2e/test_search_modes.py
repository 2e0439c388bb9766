"""The search-mode contract (:class:`tunedp.testing.SearchModeContract`), passed by every mode: one class each.

For each mode, on the real digits workload with a real Ray and sqlite ledger:
the charged event is the plan's event; the number of trials is the one the
charge assumed (the draw from the configured distribution, the grid's size,
``max_trials``); and every observer sees exactly what the disclosure rule
allows — under ``release: best`` one released trial and no per-trial
callback, otherwise every trial once, counted 1..K. Staged modes
(``two_stage``, ``public_proxy``) draw K for their stage-1 search and release
only their final run: nothing of a stage-1 trial reaches the output folder.
A new mode is one module in ``tunedp/modes`` and one class here.

Each mode's search runs once per worker (:func:`shared_runs.contract_run`);
tests elsewhere that assert other things about the same search (release:
best's silence on stdout and stderr, ``tunedp.search`` itself, release: all's
composition, ASHA's noisy scores, the progress callback, the searched
variant's released model) read that run instead of repeating it.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

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
from shared_runs import ContractRun, Recorder, contract_run, shared_run

from tunedp.ledger.sqlite import Charge, PrivacyLedger
from tunedp.observe.console import ConsoleProgress
from tunedp.observe.protocol import SearchObserver, SearchOutcome, notify
from tunedp.planning import plan_search
from tunedp.planning.single_stage import SearchPlan
from tunedp.testing import SearchModeContract


class _Shared(SearchModeContract):
    """The contract, reading the run other tests share (one search per worker, whichever asks first)."""

    @classmethod
    def run_search(cls, tmp_path_factory: pytest.TempPathFactory) -> ContractRun:
        return contract_run(cls.config, tmp_path_factory)


@pytest.mark.slow
@shared_run("random/best")
class TestRandomBestMode(_Shared):
    config = random_best(expected_trials=3.0)


@pytest.mark.slow
@shared_run("random/all")
class TestRandomAllMode(_Shared):
    config = random_all(expected_trials=2.0, max_trials=3)


@pytest.mark.slow
@shared_run("adaptive")
class TestAdaptiveMode(_Shared):
    config = adaptive(max_trials=3, evaluations=2)


@pytest.mark.slow
@shared_run("grid")
class TestGridMode(_Shared):
    config = grid(momenta=[0.5, 0.9])


@pytest.mark.slow
@shared_run("grid/model")
class TestGridModelMode(_Shared):
    """The model variant searched like a hyperparameter: one momentum × two variants = two trials."""

    config = with_searched_variants(grid(momenta=[0.9]), ["mlp", "cnn"])


@pytest.mark.slow
@shared_run("hypo")
class TestHypoMode(_Shared):
    """Adaptive proposals, K drawn as in random/best and kept secret: released as release: best."""

    config = hypo(expected_trials=3.0)


@pytest.mark.slow
@shared_run("two_stage")
class TestTwoStageMode(_Shared):
    config = two_stage()


@pytest.mark.slow
@shared_run("two_stage/hypo")
class TestTwoStageHypoMode(_Shared):
    """DP-HyPO as stage 1: its proposals learn from stage-1 scores, and nothing of stage 1 leaves."""

    config = two_stage(stage1={"mode": "hypo", "expected_trials": 3.0, "shape": 1.0, "density_ratio": 1.2}, share=0.4)


@pytest.mark.slow
@shared_run("public_proxy")
class TestPublicProxyMode(_Shared):
    """Horizon transfer here (linear radius in two_stage): the contract checks the factor either way.

    Its final run releases no score, so it trains on the validation rows too.
    """

    config = public_proxy(transfer="horizon", train_on_validation=True)


def test_every_registered_mode_has_a_contract_class_here() -> None:
    from tunedp.modes import registered_modes

    tested = {cls.config.search.mode for cls in _Shared.__subclasses__()}
    assert tested == set(registered_modes())


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
