"""Tests of the MLflow observer (tunedp/observe/mlflow_*.py, dashboard.py) and the figures it logs (plots.py).

Fast tests pin the disclosure rule as tracking applies it, the store
defaults, the figures and the one-line failure. The slow ones run real
searches on the digits workload against a real ``mlflow server`` and read
everything back through MLflow's REST API: what a dashboard user (or a
script) would see.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import requests
import yaml
from dp_accounting import dp_event
from tracking_fixtures import (
    ADAPTIVE,
    ON_SHARED_SERVER,
    RANDOM_BEST,
    MlflowServer,
    Run,
    config_dict,
    free_port,
    shared_mlflow_server,
    small_config,
)

from tunedp.accounting.epsilon import rdp_epsilon
from tunedp.accounting.search_event import draw_trial_count
from tunedp.config import SearchConfig
from tunedp.ledger.binding import create_ledger
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.observe import dashboard, mlflow_records, mlflow_store, plots
from tunedp.observe.mlflow_records import trial_logs
from tunedp.observe.mlflow_tracker import MlflowTracker
from tunedp.observe.protocol import SearchOutcome
from tunedp.planning import plan_search
from tunedp.release.disclosure import TrialRecord, disclosure_for
from tunedp.run.driver import search

TUNEDP = str(Path(sys.executable).with_name("tunedp"))
PNG = b"\x89PNG\r\n\x1a\n"
#: Every metric a tunedp run may carry; anything else (a loss, an exact accuracy) is a leak.
PARENT_METRICS = {
    "noise_multiplier", "planned_epsilon", "charged_epsilon", "budget_epsilon", "naive_epsilon", "delta",
    "ledger_global_epsilon", "ledger_delta", "ledger_spent_before", "ledger_spent_after",
    "ledger_remaining_before", "ledger_remaining_after", "best_released_score", "best_test_metric",
    "trials_done", "trials_disclosed", "trials_failed",
}  # fmt: skip
TRIAL_METRICS = {"released_score", "trial_epsilon", "test_metric"}


def _record(score: float | None, status: str = "completed", lr: float = 0.1, **extra: Any) -> TrialRecord:
    return TrialRecord(
        point={"lr": lr, "clip_norm": 1.0},
        hyperparameters={"lr": lr, "clip_norm": 1.0},
        status=status,  # type: ignore[arg-type]
        released_scores=[] if score is None else [score - 0.1, score],
        **extra,
    )


# ---------------------------------------------------------------------------- the rule, as tracking applies it


def test_release_best_logs_only_the_best_trial_without_status_index_or_epsilon() -> None:
    failed = _record(None, status="failed", lr=0.3, error="RuntimeError: boom")
    best = _record(0.9, lr=0.2, test_metric=0.88)
    other = _record(0.7, lr=0.1)
    logs = trial_logs([other, best, failed], best, mode="random", release="best", trial_epsilon=1.5)
    assert len(logs) == 1
    (only,) = logs
    assert only.run_name == "best"  # no index: the best's position would bound the secret K
    assert only.params == {"lr": "0.2", "clip_norm": "1.0"}
    assert only.metrics == [("released_score", 0.8, 0), ("released_score", 0.9, 1), ("test_metric", 0.88, 0)]
    assert "trial_epsilon" not in only.metric_keys()
    assert mlflow_records.TAG_STATUS not in only.tags and mlflow_records.TAG_ERROR not in only.tags
    assert only.tags[mlflow_records.TAG_BEST] == "true"
    assert trial_logs([other, failed], None, mode="random", release="best", trial_epsilon=1.5) == []


@pytest.mark.parametrize(("mode", "release"), [("adaptive", "all"), ("grid", "all"), ("random", "all")])
def test_modes_that_release_every_trial_log_status_scores_and_epsilon(mode: str, release: str) -> None:
    failed = _record(None, status="failed", lr=0.3, error="RuntimeError: boom\nsecond line")
    best = _record(0.9, lr=0.2, test_metric=0.88)
    stopped = _record(0.5, status="stopped", lr=0.1)
    logs = trial_logs([stopped, best, failed], best, mode=mode, release=release, trial_epsilon=1.5)
    assert [t.run_name for t in logs] == ["trial-001", "trial-002", "trial-003"]
    assert [t.tags[mlflow_records.TAG_STATUS] for t in logs] == ["stopped", "completed", "failed"]
    assert [t.tags[mlflow_records.TAG_BEST] for t in logs] == ["false", "true", "false"]
    assert [t.status for t in logs] == ["FINISHED", "FINISHED", "FAILED"]
    assert logs[2].tags[mlflow_records.TAG_ERROR] == "RuntimeError: boom second line"
    for log in logs:
        assert ("trial_epsilon", 1.5, 0) in log.metrics
        assert log.metric_keys() <= TRIAL_METRICS
    assert [(v, s) for k, v, s in logs[0].metrics if k == "released_score"] == [(0.4, 0), (0.5, 1)]
    assert "released_score" not in logs[2].metric_keys()
    assert "test_metric" in logs[1].metric_keys() and "test_metric" not in logs[0].metric_keys()


@pytest.mark.parametrize(("mode", "release"), [("random", "best"), ("random", "all"), ("adaptive", "all")])
def test_tracking_logs_exactly_the_trials_the_disclosure_module_allows(mode: str, release: str) -> None:
    records = [_record(0.5 + i / 10, lr=0.1 * (i + 1)) for i in range(4)]
    best = records[2]
    allowed = disclosure_for(mode, release).trials(records, best)
    logs = trial_logs(records, best, mode=mode, release=release, trial_epsilon=1.0)
    assert [t.params["lr"] for t in logs] == [repr(r.point["lr"]) for r in allowed]


def test_config_is_flattened_into_params() -> None:
    flat = mlflow_records.flatten_config(small_config().model_dump(mode="json"))
    assert flat["config.budget.epsilon"] == "8.0"
    assert flat["config.search.mode"] == "random"
    assert flat["config.space.params.momentum.value"] == "0.9"
    assert flat["config.training.steps"] == "20"
    assert all(len(value) < 6000 for value in flat.values())
    assert "config.training.epochs" not in flat  # unset fields are left out


# ---------------------------------------------------------------------------- where


def test_default_store_is_an_absolute_sqlite_uri_under_mlflow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(mlflow_store.MLFLOW_DIR_ENV, raising=False)
    repo = Path(mlflow_store.__file__).resolve().parents[2]
    assert mlflow_store.default_tracking_uri() == f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}"
    assert mlflow_store.default_artifact_root() == repo / "mlflow" / "artifacts"
    monkeypatch.setenv(mlflow_store.MLFLOW_DIR_ENV, str(tmp_path / "store"))
    assert mlflow_store.default_tracking_uri() == f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    assert MlflowTracker().artifact_root == tmp_path / "store" / "artifacts"
    assert MlflowTracker("http://127.0.0.1:1").artifact_root is None  # a server decides its own


def test_server_command_is_the_documented_one(tmp_path: Path) -> None:
    command = dashboard.server_command(directory=tmp_path, host="127.0.0.1", port=5123)
    assert command[1:4] == ["-m", "mlflow", "server"]
    joined = " ".join(command)
    assert f"--backend-store-uri sqlite:///{tmp_path.resolve()}/mlflow.db" in joined
    assert f"--default-artifact-root {tmp_path.resolve()}/artifacts" in joined
    assert "--host 127.0.0.1 --port 5123 --workers 1" in joined
    assert dashboard.server_environment({})["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


# ---------------------------------------------------------------------------- figures


def _charge(ledger: PrivacyLedger, sigma: float, label: str) -> None:
    event = dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(0.05, dp_event.GaussianDpEvent(sigma)), 50)
    ledger.charge(event, config_hash="0" * 64, mode="grid/all", label=label)


def test_burn_down_recomposes_the_ledger_events_in_order(tmp_path: Path) -> None:
    ledger = PrivacyLedger.create(tmp_path / "d.sqlite", dataset="d", epsilon=10.0, delta=1e-5)
    for i, sigma in enumerate([1.0, 2.0, 1.5]):
        _charge(ledger, sigma, f"search {i}")
    events = [c.event for c in ledger.charges()]
    spent = plots.cumulative_spent_epsilon(events, ledger.delta)
    prefixes = [rdp_epsilon(dp_event.ComposedDpEvent(events[: i + 1]), ledger.delta) for i in range(len(events))]
    assert spent == pytest.approx(prefixes, rel=1e-12)
    assert spent[-1] == pytest.approx(ledger.spent_epsilon(), rel=1e-12)
    assert spent == sorted(spent)
    path = plots.save_figure(
        plots.budget_burndown(spent, global_epsilon=10.0, dataset="d", labels=["a", "b", "c"], highlight=1),
        tmp_path / "burn.png",
    )
    assert path.read_bytes().startswith(PNG)


def test_every_figure_renders_headless(tmp_path: Path) -> None:
    best = _record(0.9)
    figures = {
        "scores": plots.scores_by_trial([_record(0.5), best, _record(None, status="failed")], best=best),
        "curve": plots.learning_curve([0.5, 0.7, 0.9]),
        "utility": plots.privacy_utility(
            [
                plots.SearchPoint(charged_epsilon=1.0, best_score=0.7, label="a"),
                plots.SearchPoint(charged_epsilon=2.0, best_score=0.9, label="b", current=True),
            ],
            dataset="d",
        ),
        "empty_utility": plots.privacy_utility([], dataset="d"),
    }
    for name, figure in figures.items():
        assert plots.save_figure(figure, tmp_path / f"{name}.png").read_bytes().startswith(PNG)


# ---------------------------------------------------------------------------- failure: one line, fast


@pytest.mark.parametrize("uri", ["closed-port", "file:///nonexistent/mlruns", "nonsense://x"])
def test_a_tracking_failure_is_one_warning_line_naming_the_output_folder(
    uri: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri = f"http://127.0.0.1:{free_port()}" if uri == "closed-port" else uri
    tracker = MlflowTracker(uri)
    plan = SimpleNamespace(shape=SimpleNamespace(mode="grid", release="all"), config=SimpleNamespace(workload="w"))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        tracker.on_charged(plan, SimpleNamespace(search_id="s"), SimpleNamespace(dataset="d"))  # type: ignore[arg-type]
        tracker.on_trial_done(_record(0.5), 1, 2)
        tracker.on_finished(SimpleNamespace(output_dir=tmp_path / "out"))  # type: ignore[arg-type]
    assert time.monotonic() - started < 10
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert "\n" not in message and str((tmp_path / "out").resolve()) in message
    assert message.startswith("MLflow tracking to ") and "results are in" in message


# ---------------------------------------------------------------------------- real searches, real server


@dataclass
class Tracked:
    server: MlflowServer
    ledger_path: Path
    random_best: SearchOutcome
    adaptive: SearchOutcome
    random_trials: int

    def runs_of(self, outcome: SearchOutcome) -> tuple[Run, list[Run]]:
        experiment = self.server.experiment_id("tunedp-digits")
        runs = self.server.search_runs(experiment, f"tags.`tunedp.search_id` = '{outcome.search_id}'")
        parents = [r for r in runs if r.tags.get("tunedp.role") == "search"]
        assert len(parents) == 1, runs
        return parents[0], [r for r in runs if r.tags.get("tunedp.role") == "trial"]


def _seed_with_trials(config: SearchConfig, low: int, high: int) -> tuple[int, int]:
    """A seed whose secret draw of K lies in [low, high] (the driver draws K first from this seed)."""
    shape = plan_search(config).shape
    for seed in range(1000):
        count = draw_trial_count(shape, np.random.default_rng(seed))
        if low <= count <= high:
            return seed, count
    raise AssertionError("no seed found")


@pytest.fixture(scope="module")
def tracked(
    ray_session: str, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Tracked]:
    server = shared_mlflow_server(tmp_path_factory, pytestconfig)
    folder = tmp_path_factory.mktemp("tracked")
    ledger_path = folder / "digits.sqlite"
    create_ledger(ledger_path, dataset="digits", epsilon=100.0, delta=1e-5)
    config = small_config(**RANDOM_BEST)
    seed, count = _seed_with_trials(config, 2, 3)  # several trials, so there is something to hide
    best_only = search(
        config, ledger_path=ledger_path, observers=[MlflowTracker(server.url)], seed=seed, output_dir=folder / "rb"
    )
    adaptive = search(
        small_config(**ADAPTIVE),
        ledger_path=ledger_path,
        observers=[MlflowTracker(server.url)],
        seed=1,
        output_dir=folder / "ad",
    )
    yield Tracked(server, ledger_path, best_only, adaptive, count)


def _assert_parent(tracked: Tracked, parent: Run, outcome: SearchOutcome) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((outcome.output_dir / "report.json").read_text())
    privacy, ledger = report["privacy"], report["ledger"]
    assert parent.status == "FINISHED"
    assert parent.tags["tunedp.dataset"] == "digits" and parent.tags["tunedp.search_id"] == outcome.search_id
    assert parent.tags["tunedp.mode"] == privacy["mode"]
    assert parent.params["mode"] == privacy["mode"] and parent.params["release"] == privacy["release"]
    assert parent.params["config.budget.epsilon"] == "8.0" and parent.params["config.workload"] == "digits"
    assert parent.metrics["charged_epsilon"] == pytest.approx(privacy["charged_epsilon"])
    assert parent.metrics["planned_epsilon"] == pytest.approx(privacy["search_epsilon"])
    assert parent.metrics["noise_multiplier"] == pytest.approx(privacy["noise_multiplier"])
    assert parent.metrics["delta"] == pytest.approx(1e-5)
    assert parent.metrics["ledger_spent_before"] == pytest.approx(ledger["spent_before"])
    assert parent.metrics["ledger_spent_after"] == pytest.approx(ledger["spent_after"])
    assert parent.metrics["ledger_remaining_before"] == pytest.approx(100.0 - ledger["spent_before"])
    assert parent.metrics["ledger_remaining_after"] == pytest.approx(ledger["remaining"])
    assert parent.metrics["best_released_score"] == pytest.approx(report["best"]["final_score"])
    assert parent.metrics["best_test_metric"] == pytest.approx(report["best"]["test_metric"])
    for name, value in report["best"]["hyperparameters"].items():
        assert float(parent.params[f"best.{name}"]) == pytest.approx(value)
    assert set(parent.metrics) <= PARENT_METRICS, set(parent.metrics) - PARENT_METRICS
    files = tracked.server.artifacts(parent.run_id)
    assert {"report.json", "report.txt", "best_model.pt", "config.yaml", "config.json", "plots"} <= files
    assert (
        tracked.server.artifact_bytes(parent.run_id, "report.json") == (outcome.output_dir / "report.json").read_bytes()
    )
    assert yaml.safe_load(tracked.server.artifact_bytes(parent.run_id, "config.yaml"))["budget"]["epsilon"] == 8.0
    for png in tracked.server.artifacts(parent.run_id, "plots"):
        assert tracked.server.artifact_bytes(parent.run_id, png).startswith(PNG)
    print(f"parent {parent.name}: params={len(parent.params)} metrics={dict(sorted(parent.metrics.items()))}")
    print(f"  artifacts: {sorted(files)} plots: {sorted(tracked.server.artifacts(parent.run_id, 'plots'))}")
    return report


@pytest.mark.slow
@ON_SHARED_SERVER
def test_random_best_search_logs_its_parent_and_only_the_best_trial(tracked: Tracked) -> None:
    outcome = tracked.random_best
    parent, trials = tracked.runs_of(outcome)
    report = _assert_parent(tracked, parent, outcome)
    assert tracked.random_trials >= 2  # there were non-best trials ...
    assert len(trials) == 1  # ... and none of them has a run
    (best,) = trials
    assert best.name == "best" and best.status == "FINISHED"
    assert best.tags[mlflow_records.TAG_PARENT] == parent.run_id and best.tags["tunedp.best"] == "true"
    for name, value in report["best"]["hyperparameters"].items():
        assert float(best.params[name]) == pytest.approx(value)
    assert set(best.metrics) == {"released_score", "test_metric"}  # no status, no per-trial ε, no loss
    assert mlflow_records.TAG_STATUS not in best.tags
    history = tracked.server.metric_history(best.run_id, "released_score")
    assert [step for step, _ in history] == list(range(len(report["best"]["released_scores"])))
    assert [value for _, value in history] == pytest.approx(report["best"]["released_scores"])
    # Nothing on the parent reveals the number of trials either.
    assert not {"trials_done", "trials_disclosed", "trials_failed"} & set(parent.metrics)
    plots_logged = tracked.server.artifacts(parent.run_id, "plots")
    assert plots_logged == {"plots/budget_burndown.png", "plots/learning_curve_best.png", "plots/privacy_utility.png"}
    print(f"best trial run {best.name}: params={best.params} metrics={best.metrics}")


@pytest.mark.slow
@ON_SHARED_SERVER
def test_adaptive_search_logs_every_trial_with_its_released_scores(tracked: Tracked) -> None:
    outcome = tracked.adaptive
    parent, trials = tracked.runs_of(outcome)
    report = _assert_parent(tracked, parent, outcome)
    assert len(trials) == len(report["trials"]) == int(parent.metrics["trials_disclosed"]) == 3
    assert sorted(t.name for t in trials) == ["trial-001", "trial-002", "trial-003"]
    assert sum(t.tags["tunedp.best"] == "true" for t in trials) == 1
    by_name = {t.name: t for t in sorted(trials, key=lambda t: t.name)}
    for index, disclosed in enumerate(report["trials"]):
        run = by_name[f"trial-{index + 1:03d}"]
        assert run.tags[mlflow_records.TAG_PARENT] == parent.run_id
        assert run.tags["tunedp.status"] == disclosed["status"]
        assert run.metrics["trial_epsilon"] == pytest.approx(report["privacy"]["trial_epsilon"])
        assert set(run.metrics) <= TRIAL_METRICS
        history = tracked.server.metric_history(run.run_id, "released_score")
        assert [step for step, _ in history] == list(range(len(disclosed["released_scores"])))
        assert [value for _, value in history] == pytest.approx(disclosed["released_scores"])
        assert len(history) == 2  # both evaluations, step = evaluation index
        for name, value in disclosed["hyperparameters"].items():
            assert float(run.params[name]) == pytest.approx(value)
        print(f"trial run {run.name}: status={run.tags['tunedp.status']} best={run.tags['tunedp.best']} "
              f"released_score history={history} trial_epsilon={run.metrics['trial_epsilon']:.4f}")  # fmt: skip
    assert "plots/scores_by_trial.png" in tracked.server.artifacts(parent.run_id, "plots")


@pytest.mark.slow
@ON_SHARED_SERVER
def test_searches_on_one_ledger_are_found_by_their_dataset_tag(tracked: Tracked) -> None:
    experiment = tracked.server.experiment_id("tunedp-digits")
    ours = {tracked.random_best.search_id, tracked.adaptive.search_id}
    parents = [
        run
        for run in tracked.server.search_runs(
            experiment, "tags.`tunedp.dataset` = 'digits' AND tags.`tunedp.role` = 'search'"
        )
        if run.tags["tunedp.search_id"] in ours
    ]
    assert len(parents) == 2
    assert all(math.isfinite(p.metrics["charged_epsilon"]) and "best_released_score" in p.metrics for p in parents)
    # The second search's ledger figures continue where the first left off.
    first, second = sorted(parents, key=lambda p: p.metrics["ledger_spent_before"])
    assert second.metrics["ledger_spent_before"] == pytest.approx(first.metrics["ledger_spent_after"])


@pytest.mark.slow
def test_an_unreachable_server_costs_one_warning_line_and_loses_nothing(ray_session: str, tmp_path: Path) -> None:
    config_path = tmp_path / "search.yaml"
    config_path.write_text(yaml.safe_dump(config_dict(**RANDOM_BEST)))
    ledger_path = tmp_path / "digits.sqlite"
    create_ledger(ledger_path, dataset="digits", epsilon=100.0, delta=1e-5)
    seed, _ = _seed_with_trials(small_config(**RANDOM_BEST), 1, 2)
    closed = f"http://127.0.0.1:{free_port()}"
    output = tmp_path / "out"
    done = subprocess.run(
        [TUNEDP, "search", "--config", str(config_path), "--ledger", str(ledger_path), "--tracking-uri", closed,
         "--ray-address", ray_session, "--seed", str(seed), "--output", str(output)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((output / "report.json").read_text())["best"] is not None
    assert (output / "best_model.pt").is_file()
    # The model line's load hint names mlflow.pyfunc; every other line naming MLflow is the warning.
    said = (done.stdout + done.stderr).splitlines()
    lines = [line for line in said if "mlflow" in line.lower() and not line.startswith("model: ")]
    assert len(lines) == 1, lines
    assert closed in lines[0] and str(output.resolve()) in lines[0]
    print(f"warning line: {lines[0]}")


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    queue = [pid]
    while queue:
        current = queue.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    queue.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@ON_SHARED_SERVER
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to follow the server's processes")
def test_tunedp_ui_serves_the_store_and_stops_cleanly_on_ctrl_c(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> None:
    # An existing store (the shared server's): the usual case, and a start without migrations.
    store = shared_mlflow_server(tmp_path_factory, pytestconfig).directory
    port = free_port()
    env = {**os.environ, mlflow_store.MLFLOW_DIR_ENV: str(store)}
    process = subprocess.Popen(
        [TUNEDP, "ui", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        else:
            pytest.fail("tunedp ui did not come up")
        servers = _descendants(process.pid)
        assert servers, "mlflow server should run as a child of tunedp ui"
        experiments = requests.get(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search", params={"max_results": 10}, timeout=10
        ).json()
        assert experiments.get("experiments"), experiments  # it serves the existing store
        process.send_signal(signal.SIGINT)  # what Ctrl-C does
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert f"http://127.0.0.1:{port}" in output and "stopped" in output
    assert not any(_alive(pid) for pid in servers)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)


@pytest.mark.slow
@ON_SHARED_SERVER
def test_the_released_model_is_an_mlflow_pyfunc_that_loads_and_registers(tracked: Tracked) -> None:
    """A pyfunc (raw input in, label and probabilities out) with signature and a data-free example; the
    registry serves it back."""
    import mlflow.pyfunc
    import torch
    from sklearn.datasets import load_digits

    import mlflow
    from tunedp.workloads import resolve_workload
    from tunedp.workloads.digits_torch import split_indices

    outcome = tracked.random_best
    parent, _ = tracked.runs_of(outcome)
    report = json.loads((outcome.output_dir / "report.json").read_text())
    assert float(parent.tags["tunedp.epsilon"]) == pytest.approx(report["privacy"]["charged_epsilon"], rel=1e-12)
    assert float(parent.tags["tunedp.delta"]) == report["privacy"]["delta"] == 1e-5
    assert parent.tags["tunedp.ledger"] == str(tracked.ledger_path) == report["ledger"]["path"]
    assert parent.tags["tunedp.ledger_fingerprint"] == PrivacyLedger.open(tracked.ledger_path).fingerprint
    assert parent.tags["tunedp.accountant"] == "rdp (dp_accounting)" == report["privacy"]["accountant"]

    experiment = tracked.server.experiment_id("tunedp-digits")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracked.server.url)
    try:
        # release: best — one model, the released one, as the parent run's artifacts (no LoggedModel:
        # its times are the server's clock at the search's end); no trial run carries one.
        assert not mlflow.search_logged_models(experiment_ids=[experiment], output_format="list")
        uri = f"runs:/{parent.run_id}/model"
        info = mlflow.models.get_model_info(uri)
        assert "python_function" in info.flavors and info.signature is not None
        assert [list(spec.shape) for spec in info.signature.inputs.inputs] == [[-1, 8, 8]]  # raw 8×8 images
        example = mlflow.models.Model.load(uri).load_input_example(mlflow.artifacts.download_artifacts(uri))
        assert isinstance(example, np.ndarray) and example.shape == (1, 8, 8) and not example.any()

        # The logged model is the released weights: the softmax of best_model.pt's network on real test rows.
        workload = resolve_workload("digits")
        reference = workload.build_model(small_config(**RANDOM_BEST).model)
        reference.load_state_dict(torch.load(outcome.output_dir / "best_model.pt", weights_only=True))
        reference.eval()
        rows = workload.load().test.inputs[:16]
        with torch.no_grad():
            expected = torch.softmax(reference(rows).double(), dim=1).numpy()
        # The model takes the raw images (values 0..16, as load_digits holds them) and scales them itself.
        raw = load_digits().images[split_indices()["test"][:16]].astype(np.float32)
        columns = [f"probability_{k}" for k in range(10)]
        scored = mlflow.pyfunc.load_model(uri).predict(raw)
        np.testing.assert_allclose(scored[columns].to_numpy(), expected, rtol=1e-6, atol=1e-9)
        assert scored["label"].tolist() == [str(k) for k in expected.argmax(axis=1)]

        # The Model Registry takes it and serves it back by name and version.
        version = mlflow.register_model(uri, f"tunedp-digits-{outcome.search_id[:8]}")
        served = mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}")
        np.testing.assert_allclose(served.predict(raw)[columns].to_numpy(), expected, rtol=1e-6, atol=1e-9)
        print(f"model {uri}, registered {version.name} v{version.version}")
    finally:
        mlflow.set_tracking_uri(previous)
