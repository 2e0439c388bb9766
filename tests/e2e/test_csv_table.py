"""The ``csv`` workload: the contract on a real table, Adult equivalence, bad input refused before any charge."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.datasets import load_digits

from tunedp.config import ConfigError, load_config, parse_config
from tunedp.ledger.binding import create_ledger
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.testing import WorkloadContract
from tunedp.workloads import TEST_OUTSIDE_GUARANTEE, CsvWorkloadSpec, resolve_workload
from tunedp.workloads.csv_table import encode_table
from tunedp.workloads.files import DatasetNotFoundError

REPO = Path(__file__).resolve().parents[2]
PIXELS = [f"p{i}" for i in range(64)]


def _write_digits_csv(path: Path) -> Path:
    """scikit-learn's real 1797 digits as a headed CSV: 64 pixel columns (0..16) and a label."""
    bunch = load_digits()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*PIXELS, "digit"])
        for pixels, label in zip(bunch.data, bunch.target, strict=True):
            writer.writerow([*(int(v) for v in pixels), int(label)])
    return path


def _spec(path: Path, **changes: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "kind": "csv",
        "dataset": "digits_table",
        "path": str(path),
        "label": "digit",
        "classes": [str(k) for k in range(10)],
        "columns": {name: {"type": "numeric", "range": [0, 16]} for name in PIXELS},
        "split": {"validation": 297, "test": 0.1669, "seed": 3},
    }
    spec.update(changes)
    return spec


DIGITS_CSV = _write_digits_csv(Path(tempfile.mkdtemp(prefix="tunedp-csv-")) / "digits.csv")


class TestCsvDigits(WorkloadContract):
    reference = CsvWorkloadSpec.model_validate(_spec(DIGITS_CSV), strict=False)


def test_sizes_follow_the_declared_rule_on_the_row_count() -> None:
    workload = resolve_workload(TestCsvDigits.reference)
    assert (workload.sizes.train, workload.sizes.validation, workload.sizes.test) == (1200, 297, 300)
    assert workload.input_shape == (64,) and workload.sizes.classes == 10
    assert workload.test_source == "protected" and workload.test_label == TEST_OUTSIDE_GUARANTEE
    assert workload.validation_source == "protected"


def test_numeric_columns_are_clipped_and_scaled_by_the_declared_range(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("x,kind,y\n-5,a,yes\n0,b,no\n5,zzz,no\n10,,yes\n99,a,no\n")
    spec = {
        "kind": "csv",
        "dataset": "t",
        "path": str(path),
        "label": "y",
        "classes": ["no", "yes"],
        "columns": {
            "x": {"type": "numeric", "range": [0, 10]},
            "kind": {"type": "categorical", "categories": ["a", "b"]},
        },
        "split": {"validation": 1, "test": 1, "seed": 0},
    }
    table = encode_table(CsvWorkloadSpec.model_validate(spec, strict=False))
    assert table.features[:, 0].tolist() == [-1.0, -1.0, 0.0, 1.0, 1.0]
    # a, b, then "other" for an undeclared value and for an empty cell
    assert table.features[:, 1:].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [1, 0, 0]]
    assert table.labels.tolist() == [1, 0, 0, 1, 0]


BAD: dict[str, tuple[str, str]] = {
    "missing column": ("p0,digit\n1,3\n", "workload.columns.p1: column 'p1' is missing from the header"),
    "non-numeric value": (None, "workload.columns.p5: row 7, column 'p5': not a finite number"),
    "undeclared class": (None, "workload.classes: row 4, column 'digit': the label is not one of the declared"),
    "empty file": ("", "the file is empty"),
    "header only": (",".join([*PIXELS, "digit"]) + "\n", "the file has a header but no data rows"),
}


def _bad_csv(case: str, path: Path) -> Path:
    text, _ = BAD[case]
    if text is not None:
        path.write_text(text)
        return path
    lines = DIGITS_CSV.read_text().splitlines()
    cells = lines[7].split(",")
    if case == "non-numeric value":
        cells[5] = "seven"
    else:
        lines[4] = ",".join([*lines[4].split(",")[:-1], "ten"])
    lines[7] = ",".join(cells) if case == "non-numeric value" else lines[7]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("case", list(BAD))
def test_bad_csv_is_one_line_naming_column_and_row_and_charges_nothing(case: str, tmp_path: Path) -> None:
    from tunedp.run.driver import search

    path = _bad_csv(case, tmp_path / "bad.csv")
    config = _search_config(_spec(path))
    ledger = tmp_path / "ledger.sqlite"
    PrivacyLedger.create(ledger, dataset="digits_table", epsilon=10.0, delta=1e-5)
    before = ledger.read_bytes()
    with pytest.raises(ConfigError) as error:
        search(config, ledger_path=ledger)
    message = str(error.value)
    assert "\n" not in message and BAD[case][1] in message
    assert "seven" not in message and "ten" not in message  # a protected row's value is never echoed
    assert ledger.read_bytes() == before


def test_the_command_line_refuses_bad_csv_with_exit_2(tmp_path: Path) -> None:
    path = _bad_csv("non-numeric value", tmp_path / "bad.csv")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_search_dict(_spec(Path("bad.csv")))))  # relative to the config file
    done = subprocess.run(
        [sys.executable, "-m", "tunedp.cli", "plan", "--config", str(config)], capture_output=True, text=True, cwd="/"
    )
    assert done.returncode == 2, done.stderr
    assert "workload.columns.p5: row 7, column 'p5': not a finite number" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert path.exists()


def test_csv_adult_encodes_exactly_the_rows_of_the_adult_workload(tmp_path: Path) -> None:
    """The shipped search_spaces/adult_csv.yaml on the real files: the same 48842 rows, the same features."""
    from tunedp.workloads import adult_torch
    from tunedp.workloads.files import adult_files

    try:
        files = adult_files()
    except DatasetNotFoundError as error:
        pytest.skip(str(error))
    script = importlib.util.spec_from_file_location("adult_csv", REPO / "scripts" / "adult_csv.py")
    assert script is not None and script.loader is not None
    module = importlib.util.module_from_spec(script)
    script.loader.exec_module(module)
    assert module.write_adult_csv(tmp_path / "data" / "adult.csv") == 48842
    shipped = yaml.safe_load((REPO / "search_spaces" / "adult_csv.yaml").read_text())
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "adult_csv.yaml").write_text(yaml.safe_dump(shipped, sort_keys=False))
    config = load_config(tmp_path / "configs" / "adult_csv.yaml")
    table = encode_table(config.workload)
    rows = adult_torch.read_rows(files.train) + adult_torch.read_rows(files.test)
    features, labels = adult_torch.encode_rows(rows)
    assert np.array_equal(table.labels, labels.numpy())
    np.testing.assert_allclose(table.features, features.numpy(), atol=1e-6)
    workload = resolve_workload(config.workload)
    assert workload.dataset == "adult"  # the same people: the same ledger
    assert (workload.sizes.train, workload.sizes.validation, workload.sizes.test) == (29561, 3000, 16281)


def _search_dict(workload: dict[str, object]) -> dict[str, object]:
    data = yaml.safe_load((REPO / "search_spaces" / "example.yaml").read_text())
    data["workload"] = workload
    data["model"] = "logreg"
    data["training"] = {"steps": 5, "expected_batch_size": 120, "evaluations": 1}
    data["budget"] = {"epsilon": 8.0, "delta": 1e-5}
    return data


def _search_config(workload: dict[str, object]):
    return parse_config(_search_dict(workload))


@pytest.mark.slow
def test_a_search_on_a_csv_table_runs_in_ray_workers(ray_session: str, tmp_path: Path) -> None:
    """The spec travels to every worker inside the config; each resolves the same table.

    On the session's Ray (started once for every test that needs one), not a Ray of its own.
    """
    from tunedp.run.driver import search

    data = _search_dict(_spec(DIGITS_CSV))
    data["search"] = {"mode": "grid"}
    data["space"] = {
        "coupling": "lr_clip",
        "params": {
            "step_size": {"distribution": "choice", "values": [1.0, 3.0]},
            "clip_norm": {"distribution": "fixed", "value": 1.0},
        },
    }
    data["training"] = {"epochs": 5, "expected_batch_size": 120, "evaluations": 1}
    ledger = tmp_path / "ledger.sqlite"
    config = parse_config(data)
    # The ledger is bound to this table's rows (a csv workload is named, not looked up by dataset).
    create_ledger(ledger, dataset="digits_table", epsilon=10.0, delta=1e-5, workload=config.workload)
    outcome = search(config, ledger_path=ledger, output_dir=tmp_path / "out", max_concurrent=2)
    report = outcome.report
    assert report.status == "completed" and report.ledger.dataset == "digits_table"
    assert report.trials is not None and len(report.trials) == 2
    assert report.best is not None and report.best.test_metric is not None and report.best.test_metric > 0.5
    assert report.best.test_label == TEST_OUTSIDE_GUARANTEE
