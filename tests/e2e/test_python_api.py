"""The Python entry points of docs/architecture.md (§1): ``tunedp.search(config)`` and friends, lazily imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from search_helpers import random_best
from shared_runs import contract_run, shared_run

import tunedp
from tunedp.ledger.sqlite import PrivacyLedger


def test_import_tunedp_pulls_in_neither_torch_nor_ray_nor_mlflow() -> None:
    code = (
        "import sys, json, tunedp; tunedp.plan_search; tunedp.load_config; "
        "print(json.dumps([m in sys.modules for m in ('torch', 'ray', 'mlflow')]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [False, False, False]


@pytest.mark.slow
@shared_run("random/best")
def test_tunedp_search_is_callable_and_runs_a_search(
    ray_session: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = random_best(expected_trials=3.0)
    # The search-mode contract's random/best run, which calls tunedp.search(config, ...).
    run = contract_run(config, tmp_path_factory)
    assert run.outcome.best is not None
    assert PrivacyLedger.open(run.ledger_path).spent_epsilon() == pytest.approx(
        tunedp.plan_search(config).search_epsilon, rel=1e-9
    )
    # The package's search is the driver's function (no callable module).
    from tunedp.run.driver import search as search_function

    assert tunedp.search is search_function
