"""Small command-line fixes from issue 11: flags shown as flags, --version, bare ``tunedp``, budget init/show."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console

import tunedp
import tunedp.cli.budget_views as cli
from tunedp.cli import main
from tunedp.ledger.sqlite import PrivacyLedger


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def test_json_is_shown_as_a_flag(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["plan"], ["report"], ["budget", "show"]):
        code, out, _ = _run([*command, "--help"], capsys)
        assert code == 0
        line = next(line for line in out.splitlines() if "--json" in line)
        assert "<bool>" not in line and "BOOLEAN" not in line, line


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["--version"], capsys)
    assert (code, out.strip(), err) == (0, f"tunedp {tunedp.__version__}", "")


def test_bare_tunedp_prints_help_without_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run([], capsys)
    assert code == 0 and "Usage" in out and "search" in out
    assert "Error" not in err and "error" not in err


def test_budget_init_checks_epsilon_before_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown dataset needs --size, but a bad ε is the first mistake and is named first."""
    code, _, err = _run(
        ["budget", "init", "--dataset", "mine", "--epsilon", "-1", "--delta", "1e-6", "--ledger", str(tmp_path / "l")],
        capsys,
    )
    assert code == 2 and "--epsilon" in err and "--size" not in err
    assert not (tmp_path / "l").exists()


def test_budget_show_keeps_search_ids_whole_at_80_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dp_accounting import dp_event

    path = tmp_path / "digits.sqlite"
    ledger = PrivacyLedger.create(path, dataset="digits", epsilon=10.0, delta=1e-5)
    event = dp_event.GaussianDpEvent(5.0)
    ids = []
    for i in range(2):
        charge = ledger.charge(event, config_hash="x", mode="random/best", label=f"a rather long search label {i}" * 2)
        ids.append(charge.search_id[:12])
    monkeypatch.setattr(cli, "console", Console(width=80, force_terminal=False, color_system=None))
    code, out, _ = _run(["budget", "show", "--ledger", str(path)], capsys)
    assert code == 0
    # The ledger's path is printed whole (like the ids, it is what a user copies); everything else fits.
    assert max(len(line) for line in out.splitlines() if not line.startswith("ledger: ")) <= 80
    for search_id in ids:
        assert re.search(rf"\b{search_id}\b", out), out


def _report_document(model: str | None) -> dict[str, object]:
    return {
        "search_id": "ab" * 16,
        "name": "x",
        "status": "completed",
        "privacy": {
            "mode": "random", "release": "best", "accountant": "rdp", "charged_epsilon": 1.0, "delta": 1e-5,
            "ledger_delta": 1e-5, "noise_multiplier": 2.0, "trial_epsilon": 0.5, "search_epsilon": 1.0,
            "naive_epsilon": 1.2, "budget_epsilon": 1.0, "event": {}, "plan": {},
        },
        "ledger": {"path": "l", "dataset": "digits", "global_epsilon": 3.0, "spent_before": 0.0, "spent_after": 1.0},
        "best": {
            "point": {"step_size": 1.0}, "hyperparameters": {"lr": 1.0}, "final_score": 0.9,
            "released_scores": [0.9], "test_metric": 0.88, "model": model,
        },
        "config": {"workload": "digits", "model": "cnn"},
    }  # fmt: skip


def test_report_says_where_the_model_is_and_how_to_load_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    model = tmp_path / "best_model.pt"
    (tmp_path / "report.json").write_text(json.dumps(_report_document(str(model))))
    code, out, err = _run(["report", str(tmp_path)], capsys)
    assert code == 0, err
    assert str(model) in out.replace("\n", "")  # rich folds a path longer than the console is wide
    # digits declares the raw 8×8 images a user holds: the hint is the command that scores them.
    flat = out.replace("\n", "")
    assert "predict on raw 8×8 images" in flat and f"tunedp predict --report {tmp_path} images.npy" in flat


def test_report_json_and_trial_record_share_field_names() -> None:
    """The released best and every disclosed trial use TrialRecord's names (final_score, released_scores, …)."""
    import dataclasses

    from tunedp.release.records import TrialRecord
    from tunedp.release.report import BestRelease

    record_names = {f.name for f in dataclasses.fields(TrialRecord)} | {"final_score"}
    # The model file and the test split's label are the report's own (no trial has them).
    best_names = {f.name for f in dataclasses.fields(BestRelease)} - {"model", "test_label"}
    assert best_names <= record_names, best_names - record_names
    record = TrialRecord(point={"a": 1.0}, hyperparameters={"lr": 1.0}, status="completed", released_scores=(0.5,))
    assert set(record.public_view()) <= record_names


def test_a_workload_without_a_raw_input_declaration_gets_the_state_dict_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A custom workload that declares no raw input: the network's own arrays, or load the state dict."""
    import json

    document = _report_document(str(tmp_path / "best_model.pt"))
    document["config"] = {"workload": "workload_fixtures:DIGITS_NO_RAW_INPUT", "model": None}
    (tmp_path / "report.json").write_text(json.dumps(document))
    code, out, err = _run(["report", str(tmp_path)], capsys)
    assert code == 0, err
    flat = out.replace("\n", "")
    assert "inputs.npy" in flat and ".build_model(None)" in flat and "load_state_dict" in flat
