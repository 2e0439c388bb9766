"""What a search publishes carries no time that depends on K (docs/architecture.md, "What a search publishes").

Under ``release: best`` the number of trials K must stay unseen, and a
search's duration grows with K: a start and an end time anywhere in what the
search publishes would give K to within one. This test runs the same seeded
search twice through the CLI, once with K = 2 and once with K = 14, and reads
back everything it published — every MLflow entity through ``MlflowClient``,
every file's (and folder's) modification time in the output folder and the
MLflow store, every time written inside those files, every ledger column,
every line the CLI printed — and asserts that each time is the start of the
UTC day and that the two searches published the same times under the same
names (so not even the *number* of timestamped things depends on K).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from search_helpers import example_dict

from tunedp.accounting.search_event import draw_trial_count
from tunedp.config import parse_config
from tunedp.ledger.binding import create_ledger
from tunedp.planning import plan_search

TUNEDP = str(Path(sys.executable).with_name("tunedp"))

#: An ISO-like date and time of day (``2026-12-06 21:55:24``, ``2026-12-06T21:55``, ``2026/12/06 21:55:24``).
_DATETIME = re.compile(r"(\d{4})[-/](\d{2})[-/](\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?")
#: A bare time of day in a log line (``21:55:24``).
_CLOCK = re.compile(r"(?<![\d:])(\d{2}):(\d{2}):(\d{2})(?![\d:])")


def _config_dict() -> dict[str, Any]:
    data = example_dict()
    data["budget"] = {"epsilon": 6.0, "delta": 1e-5}
    data["training"] = {"steps": 8, "expected_batch_size": 120, "evaluations": 1}
    data["search"] = {"mode": "random", "expected_trials": 6, "shape": 1.0, "release": "best"}
    return data


def _seed_for(count: int) -> int:
    shape = plan_search(parse_config(_config_dict(), source="test")).shape
    for seed in range(5000):
        if draw_trial_count(shape, np.random.default_rng(seed)) == count:
            return seed
    raise AssertionError(f"no seed draws K = {count}")


def _epoch_s(text: str) -> float:
    moment = datetime.fromisoformat(text.replace("/", "-").replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _search(root: Path, seed: int) -> tuple[Path, str]:
    """Run one seeded search whose every output lives under ``root``; returns the ledger and the console."""
    public = root / "public"
    (public / "home").mkdir(parents=True)
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(_config_dict()))
    ledger = public / "tunedp" / "digits.sqlite"
    ledger.parent.mkdir(parents=True)
    create_ledger(ledger, dataset="digits", epsilon=50.0, delta=1e-5)
    env = {
        **os.environ,
        "HOME": str(public / "home"),
        "TUNEDP_HOME": str(public / "tunedp"),
        "COLUMNS": "200",
    }
    env.pop("TUNEDP_TRACKING", None)
    done = subprocess.run(
        [
            TUNEDP,
            "search",
            "--config",
            str(config),
            "--ledger",
            str(ledger),
            "--output",
            str(public / "out"),
            "--tracking-uri",
            f"sqlite:///{public / 'mlflow' / 'mlflow.db'}",
            "--seed",
            str(seed),
            # A Model Registry version too: created at the charge, so it carries no end time.
            "--register",
            "digits-released",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=public,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return ledger, done.stdout + done.stderr


def _published_times(root: Path, ledger: Path, console: str) -> dict[str, float]:
    """Every time the search published, as seconds since the epoch, keyed by where it was found."""
    from mlflow.tracking import MlflowClient

    public = root / "public"
    times: dict[str, float] = {}
    client = MlflowClient(tracking_uri=f"sqlite:///{public / 'mlflow' / 'mlflow.db'}")
    for experiment in client.search_experiments():
        if experiment.name == "Default":
            continue
        name = f"mlflow:experiment:{experiment.name}"
        times[f"{name}:creation_time"] = experiment.creation_time / 1000
        times[f"{name}:last_update_time"] = experiment.last_update_time / 1000
        runs = sorted(client.search_runs([experiment.experiment_id]), key=lambda r: r.data.tags["tunedp.role"])
        for number, run in enumerate(runs):
            # Keyed by role: the search run's name carries its test metric, which differs between the two.
            key = f"{name}:run{number}:{run.data.tags['tunedp.role']}"
            times[f"{key}:start_time"] = run.info.start_time / 1000
            times[f"{key}:end_time"] = run.info.end_time / 1000
            for metric in run.data.metrics:
                for point in client.get_metric_history(run.info.run_id, metric):
                    times[f"{key}:metric:{metric}:{point.step}"] = point.timestamp / 1000
        for number, model in enumerate(client.search_logged_models(experiment_ids=[experiment.experiment_id])):
            times[f"{name}:model{number}:creation_timestamp"] = model.creation_timestamp / 1000
            times[f"{name}:model{number}:last_updated_timestamp"] = model.last_updated_timestamp / 1000
    # The Model Registry (--register): every registered model and version.
    for model in client.search_registered_models():
        times[f"registry:{model.name}:creation_timestamp"] = model.creation_timestamp / 1000
        times[f"registry:{model.name}:last_updated_timestamp"] = model.last_updated_timestamp / 1000
        for version in client.search_model_versions(f"name = '{model.name}'"):
            key = f"registry:{model.name}:v{version.version}"
            times[f"{key}:creation_timestamp"] = version.creation_timestamp / 1000
            times[f"{key}:last_updated_timestamp"] = version.last_updated_timestamp / 1000

    # Every file and folder the search left (output, MLflow store and artifacts, ledger), and
    # every date-and-time written inside a text file among them (report, MLmodel, YAML, JSON).
    for path in sorted(public.rglob("*")):
        relative = path.relative_to(root)
        if "home" in relative.parts or "code" in relative.parts or path.suffix == ".key":
            # HOME is the user's; `code/` is tunedp's own source shipped with the model; the
            # ledger's key file is the owner's secret, written by `budget init`, never published.
            continue
        # A search id or run id in a path differs between the two searches: key by shape instead.
        shape = re.sub(r"[0-9a-f]{32}", "<id>", str(relative))
        times[f"mtime:{shape}"] = path.stat().st_mtime
        if path.is_file() and path.suffix in {".json", ".txt", ".yaml", ".yml", ""}:
            text = path.read_bytes().decode("latin-1")
            for index, match in enumerate(_DATETIME.finditer(text)):
                times[f"text:{shape}:{index}"] = _epoch_s(match.group(0))

    # Every column of every ledger row that holds a time.
    with sqlite3.connect(ledger) as connection:
        tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = connection.execute(f"SELECT * FROM {table}")
            columns = [d[0] for d in cursor.description]
            for number, row in enumerate(cursor.fetchall()):
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, str) and re.match(r"\d{4}-\d{2}-\d{2}", value):  # a day or finer
                        times[f"ledger:{table}:{number}:{column}"] = _epoch_s(value)

    # Every log line: no time of day in anything the CLI printed.
    for index, match in enumerate(_CLOCK.finditer(console)):
        times[f"console:{index}"] = int(match.group(1)) * 3600 + int(match.group(2)) * 60 + int(match.group(3))
    return times


@pytest.mark.slow
def test_a_release_best_search_publishes_the_same_times_for_k_2_and_k_14(tmp_path: Path) -> None:
    published = {}
    for count in (2, 14):
        root = tmp_path / f"k{count}"
        ledger, console = _search(root, _seed_for(count))
        published[count] = _published_times(root, ledger, console)
    for count, times in published.items():
        assert any(k.startswith("mlflow:") for k in times) and any(k.startswith("ledger:") for k in times)
        assert "registry:digits-released:v1:creation_timestamp" in times, sorted(times)
        assert any(k.startswith("mtime:public/out") for k in times), sorted(times)
        exact = {key: value for key, value in times.items() if value % 86_400 != 0}
        assert not exact, f"K = {count}: times finer than the UTC day were published: {exact}"
    small, large = published[2], published[14]
    assert sorted(small) == sorted(large), set(small) ^ set(large)
    if {*small.values()} == {*large.values()}:  # both on one UTC day: the very same times
        assert small == large
