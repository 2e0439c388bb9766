"""The pre-flight: every mistake that does not depend on the private data is refused before the charge.

The catalogue runs the real ``tunedp search`` (in-process, for speed) against
a real sqlite ledger: each case must exit 2 with one line on stderr that names
the field, leave the ledger byte-identical and create no output folder. No
case needs Ray: each is refused before Ray would start (the unreachable
``--ray-address`` by a TCP probe).
"""

from __future__ import annotations

import copy
import math
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from golden_refusals import check_golden_refusals
from search_helpers import example_dict, small_config

from tunedp.cli import main
from tunedp.config import parse_config
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.planning import plan_search
from tunedp.run.preflight import (
    MAX_CORNERS,
    SEARCH_OVERHEAD_S,
    TRIAL_OVERHEAD_S,
    PreflightError,
    check_output,
    estimate_wall_seconds,
    hyperparameter_corners,
    run_preflight,
    score_noise_std,
    score_noise_warning,
)


def _config(**overrides: Any) -> dict[str, Any]:
    """The shipped digits example with tiny trials; ``overrides`` replace top-level sections."""
    data = example_dict()
    data["budget"] = {"epsilon": 4.0, "delta": 1e-5}
    data["training"] = {"steps": 10, "expected_batch_size": 120, "evaluations": 1}
    for key, value in overrides.items():
        data[key] = copy.deepcopy(value)
    return data


def _space(coupling: str = "lr_clip", **params: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "step_size": {"distribution": "log_uniform", "low": 0.1, "high": 2.0},
        "clip_norm": {"distribution": "fixed", "value": 1.0},
    }
    return {"coupling": coupling, "params": {**base, **params}}


def _adam(**params: dict[str, Any]) -> dict[str, Any]:
    return {
        "optimizer": "dp_adam",
        "training": {"steps": 10, "expected_batch_size": 120, "evaluations": 1, "clip_norm": 1.0},
        "space": {
            "coupling": "fixed_clip",
            "params": {"lr": {"distribution": "log_uniform", "low": 1e-3, "high": 1e-1}, **params},
        },
    }


def _fashion() -> dict[str, Any]:
    data = _config(workload="fashion_mnist", model="cnn")
    data["budget"] = {"epsilon": 4.0, "delta": 1e-6}
    return data


def _adult() -> dict[str, Any]:
    data = _config(workload="adult", model="logreg")
    data["budget"] = {"epsilon": 4.0, "delta": 1e-6}
    return data


@dataclass
class Refusal:
    """One mistake: the config, extra CLI arguments, environment, the words the error line must hold."""

    config: dict[str, Any]
    names: list[str]
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    dataset: str = "digits"


def _nonempty_output(home: Path) -> None:
    (home / "out").mkdir()
    (home / "out" / "report.json").write_text("{}")


def _output_is_a_file(home: Path) -> None:
    (home / "out").write_text("not a folder")


CATALOGUE: dict[str, Refusal] = {
    "unknown model variant": Refusal(_config(model="resnet"), ["model:", "resnet", "mlp"]),
    "fixed momentum out of range": Refusal(
        _config(space=_space(momentum={"distribution": "fixed", "value": 1.5})),
        ["space.params.momentum", "1.5"],
    ),
    "searched momentum range past 1": Refusal(
        _config(space=_space(momentum={"distribution": "uniform", "low": 0.5, "high": 1.5})),
        ["space.params.momentum", "1.5"],
    ),
    "grid momentum choice past 1": Refusal(
        _config(
            search={"mode": "grid"},
            space=_space(
                step_size={"distribution": "choice", "values": [1.0]},
                momentum={"distribution": "choice", "values": [0.5, 1.5]},
            ),
        ),
        ["space.params.momentum", "1.5"],
    ),
    "negative step size range": Refusal(
        _config(space=_space(step_size={"distribution": "uniform", "low": -1.0, "high": 1.0})),
        ["space.params.step_size"],
    ),
    "negative weight decay": Refusal(
        _config(space=_space(weight_decay={"distribution": "fixed", "value": -0.1})),
        ["space.params.weight_decay"],
    ),
    "beta1 given to dp_sgd": Refusal(
        _config(space=_space(beta1={"distribution": "fixed", "value": 0.9})),
        ["space.params.beta1", "dp_sgd"],
    ),
    "dp_adam beta2 of 1": Refusal(
        _config(**_adam(beta2={"distribution": "fixed", "value": 1.0})), ["space.params.beta2"]
    ),
    "dp_adam beta1 range past 1": Refusal(
        _config(**_adam(beta1={"distribution": "log_uniform", "low": 0.5, "high": 2.0})), ["space.params.beta1"]
    ),
    "unreachable ray address": Refusal(
        _config(), ["--ray-address", "127.0.0.1:1"], args=["--ray-address", "127.0.0.1:1"]
    ),
    "output folder holds an earlier run": Refusal(_config(), ["--output", "--force"], setup=_nonempty_output),
    "output is a file": Refusal(_config(), ["--output"], setup=_output_is_a_file),
    "fashion_mnist files missing": Refusal(
        _fashion(),
        ["workload:", "Fashion-MNIST"],
        env={"TUNEDP_FASHION_MNIST_DIR": "/nonexistent"},
        dataset="fashion_mnist",
    ),
    "adult files missing": Refusal(
        _adult(), ["workload:", "Adult"], env={"TUNEDP_ADULT_DIR": "/nonexistent"}, dataset="adult"
    ),
    "budget the ledger cannot admit": Refusal(_config(budget={"epsilon": 50.0, "delta": 1e-5}), ["budget"]),
}


def test_catalogue_has_at_least_ten_refusals() -> None:
    assert len(CATALOGUE) >= 10


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_search_refused_before_the_charge(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CATALOGUE[name]
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    ledger = tmp_path / "ledger.sqlite"
    PrivacyLedger.create(ledger, dataset=case.dataset, epsilon=10.0, delta=1e-5 if case.dataset == "digits" else 1e-6)
    before = ledger.read_bytes()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(case.config))
    if case.setup is not None:
        case.setup(tmp_path)
    output_before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = _run_cli(
        ["search", "--config", str(config), "--ledger", str(ledger), "--output", str(tmp_path / "out"), *case.args],
        capsys,
    )
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in case.names:
        assert word in lines[0], lines[0]
    assert "charged" not in out
    assert ledger.read_bytes() == before  # nothing charged, not even a status row
    assert sorted(p.name for p in tmp_path.iterdir()) == output_before  # no output folder made
    # Byte for byte as recorded before issue 24's redesign (tests/golden_refusals.py).
    check_golden_refusals(
        "preflight", {name: {"exit": code, "stderr": err.replace(str(tmp_path), "<HOME>")}}, partial=True
    )


def test_plan_runs_the_same_preflight_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_config(model="resnet")))
    code, _, err = _run_cli(["plan", "--config", str(config)], capsys)
    assert code == 2 and err.count("\n") == 1 and "model: " in err and "resnet" in err
    # --no-preflight skips the model part: the plan itself is fine.
    code, out, err = _run_cli(["plan", "--config", str(config), "--no-preflight", "--json"], capsys)
    assert code == 0, err
    assert '"preflight": null' in out


def test_plan_exits_1_when_the_ledger_cannot_admit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "l.sqlite"
    PrivacyLedger.create(ledger, dataset="digits", epsilon=1.0, delta=1e-5)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_config()))
    code, out, err = _run_cli(["plan", "--config", str(config), "--ledger", str(ledger), "--no-preflight"], capsys)
    assert code == 1 and "NOT admissible" in out and "budget:" in err


def test_plan_shows_score_noise_and_warns_when_it_swamps_the_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``score_noise_multiplier: 1000`` on 297 validation rows: std ≈ 3.4 in accuracy units."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_config(validation={"policy": "private", "score_noise_multiplier": 1000.0})))
    code, out, err = _run_cli(["plan", "--config", str(config), "--no-preflight"], capsys)
    assert code == 0, err
    assert "score noise" in out and "3.37" in out
    assert err.startswith("warning: validation.score_noise_multiplier") and "3.37" in err
    plan = plan_search(parse_config(_config(validation={"policy": "private", "score_noise_multiplier": 1000.0})))
    assert score_noise_std(plan) == pytest.approx(1000.0 / 297)
    # The shipped example (σ_score = 5) is well below the threshold: no warning.
    assert score_noise_warning(plan_search(small_config())) is None


def test_plan_estimates_the_wall_time_from_a_timed_synthetic_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _config(search={"mode": "random", "expected_trials": 500, "shape": 1.0, "release": "best"})
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    code, out, err = _run_cli(["plan", "--config", str(config), "--json", "--max-concurrent", "2"], capsys)
    assert code == 0, err
    import json

    figures = json.loads(out)
    assert figures["preflight"] == "passed" and figures["step_seconds"] > 0
    plan = plan_search(parse_config(data))
    # What a user waits for: the measured fixed costs, then 500 expected trials in waves of 2.
    per_trial = TRIAL_OVERHEAD_S + figures["step_seconds"] * plan.trial.steps
    assert figures["estimated_wall_s"] == pytest.approx(SEARCH_OVERHEAD_S + per_trial * 500 / 2)
    shape = plan.shape  # and at K's median and 90th percentile
    assert figures["estimated_wall_s_median"] == pytest.approx(
        SEARCH_OVERHEAD_S + per_trial * math.ceil(shape.trial_count_quantile(0.5) / 2)
    )
    assert figures["estimated_wall_s_median"] < figures["estimated_wall_s_p90"]


def test_corners_cover_every_fixed_value_and_range_end() -> None:
    config = parse_config(
        _config(
            space=_space(
                momentum={"distribution": "uniform", "low": 0.0, "high": 0.9},
                weight_decay={"distribution": "choice", "values": [0.0, 1e-4, 1e-3]},
            )
        )
    )
    corners = hyperparameter_corners(config)
    assert len(corners) == 2 * 1 * 2 * 3  # step_size ends × clip fixed × momentum ends × 3 choices
    assert {c["step_size"] for c in corners} == {0.1, 2.0}
    assert {c["momentum"] for c in corners} == {0.0, 0.9}
    assert {c["weight_decay"] for c in corners} == {0.0, 1e-4, 1e-3}
    assert all(c["clip_norm"] == 1.0 for c in corners)
    wide = parse_config(
        _config(
            space=_space(
                **{n: {"distribution": "choice", "values": [0.0, 0.1, 0.2, 0.3]} for n in ("momentum", "weight_decay")}
            )
        )
    )
    assert len(hyperparameter_corners(wide)) <= MAX_CORNERS + 1


def test_output_check(tmp_path: Path) -> None:
    check_output(tmp_path / "new", force=False)
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty", force=False)
    _nonempty_output(tmp_path)
    with pytest.raises(PreflightError, match="--output"):
        check_output(tmp_path / "out", force=False)
    check_output(tmp_path / "out", force=True)


def test_preflight_reads_no_private_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model check runs on synthetic data: the workload's loader is never called."""
    from tunedp.workloads import digits, digits_torch

    calls: list[int] = []
    original = digits_torch.load

    def counting() -> Any:
        calls.append(1)
        return original()

    monkeypatch.setattr(digits_torch, "load", counting)
    loader = digits.WORKLOAD.loader
    object.__setattr__(digits.WORKLOAD, "loader", counting)
    try:
        result = run_preflight(plan_search(small_config()))
    finally:
        object.__setattr__(digits.WORKLOAD, "loader", loader)
    assert calls == []
    assert result.corners >= 1 and result.step_seconds is not None and result.step_seconds > 0


def test_wall_estimate_is_step_times_steps_times_trials_over_concurrency() -> None:
    search = {"mode": "random", "expected_trials": 6, "shape": 1.0, "release": "all", "max_trials": 7}
    plan = plan_search(small_config(search=search))
    # Trials with a known count run in waves of `concurrency`: 6 expected at 2 at once → 3 waves,
    # each a trial's overhead and steps, after the search's own fixed costs.
    expected = SEARCH_OVERHEAD_S + 3 * (TRIAL_OVERHEAD_S + 0.01 * plan.trial.steps)
    assert estimate_wall_seconds(plan, 0.01, 2) == pytest.approx(expected)


def test_a_busy_port_makes_ui_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = _run_cli(["ui", "--port", str(port)], capsys)
    assert code == 2 and err.count("\n") == 1 and "--port" in err and str(port) in err
    assert "http://" not in out  # no URL announced for a server that cannot start
