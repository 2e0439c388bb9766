"""The one-run audit end to end on digits: the shipped DP-SGD passes, a broken one is caught.

Both runs go through ``run_trial`` (Poisson sampling, per-example gradients,
clipping, noise) with white-box gradient canaries. Seeded for
reproducibility (tests only; a seeded run is not private). The claimed ε is
recomputed here by hand from q, σ and the steps with dp_accounting.

The CLI: ``tunedp audit`` charges the dataset's ledger (the trial's event, at
the ledger's δ) before training; ``--public`` charges nothing; a bad option
is one line, exit 2, and nothing charged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant

from tunedp.accounting.calibration import calibrate_noise_multiplier
from tunedp.accounting.epsilon import RDP_ORDERS
from tunedp.accounting.ledger import PrivacyLedger
from tunedp.accounting.schedule import NoiseSegment
from tunedp.accounting.trial_event import TrialPlan, steps_event
from tunedp.audit.run import AuditResult, AuditSpec, run_audit

REPO = Path(__file__).resolve().parents[1]
SAMPLING_RATE = 0.25
STEPS = 10
CLAIMED = 2.0
DELTA = 1e-5
CANARIES = 400
#: 50 highest guessed in, 50 lowest out: with a perfect signal 100/100 right → ε ≥ 3.49.
GUESSES = ((50, 50),)


def _by_hand(sigma: float) -> float:
    step = dp_event.PoissonSampledDpEvent(SAMPLING_RATE, dp_event.GaussianDpEvent(sigma))
    accountant = rdp_privacy_accountant.RdpAccountant(list(RDP_ORDERS))
    return float(accountant.compose(dp_event.SelfComposedDpEvent(step, STEPS)).get_epsilon(DELTA))


@pytest.fixture(scope="module")
def plan() -> TrialPlan:
    sigma = calibrate_noise_multiplier(
        lambda s: steps_event(SAMPLING_RATE, (NoiseSegment(noise_multiplier=s, steps=STEPS),)),
        target_epsilon=CLAIMED,
        delta=DELTA,
    ).noise_multiplier
    return TrialPlan(
        dataset_size=1200,
        sampling_rate=SAMPLING_RATE,
        steps=STEPS,
        segments=(NoiseSegment(noise_multiplier=sigma, steps=STEPS),),
        evaluation_steps=(),
        score_noise_multiplier=None,
    )


def _audit(plan: TrialPlan, noise_divisor: float) -> AuditResult:
    return run_audit(
        AuditSpec(
            workload="digits",
            optimizer="dp_sgd",
            hyperparameters={"lr": 0.5, "clip_norm": 1.0, "momentum": 0.0},
            plan=plan,
            delta=DELTA,
            canaries=CANARIES,
            guess_counts=GUESSES,
            noise_divisor=noise_divisor,
            seed=11,
        )
    )


def test_shipped_dp_sgd_stays_below_its_claim(plan: TrialPlan) -> None:
    result = _audit(plan, noise_divisor=1.0)
    sigma = plan.segments[0].noise_multiplier
    assert result.claimed_epsilon == pytest.approx(_by_hand(sigma), rel=1e-12)
    assert 0.99 * CLAIMED <= result.claimed_epsilon <= CLAIMED
    assert result.steps == STEPS and result.counts.guesses == 100
    assert result.empirical_epsilon <= result.claimed_epsilon
    assert not result.violates_claim


def test_noise_divided_by_ten_is_caught(plan: TrialPlan) -> None:
    result = _audit(plan, noise_divisor=10.0)
    # The broken run claims the σ it was given, not the σ/10 it used.
    assert result.claimed_epsilon == pytest.approx(_by_hand(plan.segments[0].noise_multiplier), rel=1e-12)
    assert result.empirical_epsilon > result.claimed_epsilon
    assert result.violates_claim and result.to_json()["mechanism"] == "broken: noise / 10"


# ----------------------------------------------------------------------------- CLI

CONFIG: dict[str, Any] = {
    "name": "audit-test",
    "workload": "digits",
    "budget": {"epsilon": 3.0, "delta": 1.0e-5},
    "search": {"mode": "random", "expected_trials": 2, "shape": 1.0},
    "training": {"steps": 4, "expected_batch_size": 200, "evaluations": 1},
    "validation": {"policy": "private", "score_noise_multiplier": 20.0},
    "optimizer": "dp_sgd",
    "space": {
        "coupling": "lr_clip",
        "params": {
            "step_size": {"distribution": "log_uniform", "low": 0.5, "high": 2.0},
            "clip_norm": {"distribution": "log_uniform", "low": 0.5, "high": 2.0},
        },
    },
}


def _tunedp(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TUNEDP_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("TUNEDP_LEDGER_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "tunedp.cli", *args], capture_output=True, text=True, env=env, cwd=home, timeout=300
    )


@pytest.fixture()
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    return path


def test_cli_audit_is_charged_like_one_trial_before_training(tmp_path: Path, config_file: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    PrivacyLedger.create(home / "ledgers" / "digits.sqlite", dataset="digits", epsilon=5.0, delta=1e-5)
    done = _tunedp(home, "audit", "--config", str(config_file), "--canaries", "50", "--json")
    assert done.returncode == 0, done.stderr
    assert "charged" in done.stderr and "before training" in done.stderr
    report = json.loads(done.stdout)
    ledger = PrivacyLedger.open(home / "ledgers" / "digits.sqlite", dataset="digits")
    (charge,) = ledger.charges()
    assert charge.mode == "audit" and charge.status == "completed"
    assert charge.epsilon == pytest.approx(report["claimed_epsilon"], rel=1e-9)
    assert ledger.spent_epsilon() == pytest.approx(report["claimed_epsilon"], rel=1e-9)
    assert report["steps"] == 4 and report["canaries"] == 50 and not report["seeded"]


def test_cli_public_audit_charges_nothing(tmp_path: Path, config_file: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = _tunedp(home, "audit", "--config", str(config_file), "--public", "--canaries", "50", "--json")
    assert done.returncode == 0, done.stderr
    assert "nothing is charged" in done.stderr
    assert json.loads(done.stdout)["workload"] == "digits"
    assert not (home / "ledgers").exists()


def test_cli_bad_canary_count_is_one_line_and_charges_nothing(tmp_path: Path, config_file: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    PrivacyLedger.create(home / "ledgers" / "digits.sqlite", dataset="digits", epsilon=5.0, delta=1e-5)
    done = _tunedp(home, "audit", "--config", str(config_file), "--canaries", "1")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--canaries" in done.stderr
    assert PrivacyLedger.open(home / "ledgers" / "digits.sqlite", dataset="digits").charges() == []
