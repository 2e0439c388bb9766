"""The one-run audit end to end on digits: the shipped DP-SGD passes, broken ones are caught.

Every run goes through ``run_trial`` (Poisson sampling, per-example gradients,
clipping, noise) with white-box gradient canaries. Seeded for
reproducibility (tests only; a seeded run is not private). The claimed ε is
recomputed here by hand from q, σ and the steps with dp_accounting. Broken:
noise σ/10; no clipping (caught by the ε bound since the canaries' raw
gradient is 10·C, not 2·C); a clip at 2·C (caught by the clip check).

The CLI: ``tunedp audit`` goes through a search's pre-charge checks (the
ledger of the workload's dataset, pre-flight, the data fingerprint) and
charges the ledger (the trial's event, at the ledger's δ) before training;
``--public`` is for a workload declared public only and charges nothing; a
bad option or a refused check is one line, exit 2, and nothing charged.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant
from search_helpers import digits_table_search

from tunedp.accounting.calibration import calibrate_noise_multiplier
from tunedp.accounting.epsilon import RDP_ORDERS
from tunedp.accounting.schedule import NoiseSegment
from tunedp.accounting.trial_event import TrialPlan, steps_event
from tunedp.audit.run import AuditResult, AuditSpec, run_audit
from tunedp.ledger.binding import create_ledger
from tunedp.ledger.sqlite import PrivacyLedger

REPO = Path(__file__).resolve().parents[2]
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


def _audit(
    plan: TrialPlan,
    noise_divisor: float = 1.0,
    *,
    clip_multiplier: float = 1.0,
    canaries: int = CANARIES,
    references: int = 0,
    guesses: tuple[tuple[int, int], ...] | None = GUESSES,
) -> AuditResult:
    return run_audit(
        AuditSpec(
            workload="digits",
            optimizer="dp_sgd",
            hyperparameters={"lr": 0.5, "clip_norm": 1.0, "momentum": 0.0},
            plan=plan,
            delta=DELTA,
            canaries=canaries,
            references=references,
            guess_counts=guesses,
            noise_divisor=noise_divisor,
            clip_multiplier=clip_multiplier,
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


def test_no_clipping_is_caught_by_the_epsilon_bound(plan: TrialPlan) -> None:
    """Canaries at 10·C: unclipped, one moves the model ten times what the noise is calibrated to."""
    result = _audit(plan, clip_multiplier=math.inf)
    assert result.claimed_epsilon == pytest.approx(_by_hand(plan.segments[0].noise_multiplier), rel=1e-12)
    assert result.empirical_epsilon > result.claimed_epsilon
    assert result.epsilon_violated and result.violates_claim
    assert result.to_json()["mechanism"] == "broken: no clipping"


#: Enough canaries of both kinds that a clip at 2·C stands out of the noise by several standard errors.
CLIP_CANARIES = 2000


def test_a_clip_at_two_c_is_caught_by_the_clip_check(plan: TrialPlan) -> None:
    """Sensitivity off by 2: the ε bound stays under the claim, the clip check measures ≈ 2·C and rejects."""
    shipped = _audit(plan, canaries=CLIP_CANARIES, references=CLIP_CANARIES, guesses=None)
    broken = _audit(plan, clip_multiplier=2.0, canaries=CLIP_CANARIES, references=CLIP_CANARIES, guesses=None)
    for result in (shipped, broken):
        assert result.clip_check is not None and result.clip_check.confidence == pytest.approx(0.975)
        assert result.counts.confidence == pytest.approx(0.975) and result.confidence == 0.95  # β split in two
        assert result.claimed_epsilon == pytest.approx(_by_hand(plan.segments[0].noise_multiplier), rel=1e-12)
    assert shipped.clip_check is not None and broken.clip_check is not None
    assert not shipped.violates_claim and not shipped.clip_check.rejected
    assert 0.7 < shipped.clip_check.contribution < 1.3
    assert broken.clip_check.rejected and broken.clip_violated and broken.violates_claim
    assert 1.6 < broken.clip_check.contribution < 2.4
    assert broken.to_json()["mechanism"] == "broken: clip at 2·C"


def test_the_clip_check_is_refused_where_it_cannot_hold(plan: TrialPlan) -> None:
    with pytest.raises(ValueError, match="references: the clip check needs an update rule linear"):
        AuditSpec(
            workload="digits",
            optimizer="dp_adam",
            hyperparameters={"lr": 0.01, "clip_norm": 1.0},
            plan=plan,
            delta=DELTA,
            canaries=400,
            references=400,
        )
    with pytest.raises(ValueError, match="at least 200 canaries"):
        AuditSpec(
            workload="digits",
            optimizer="dp_sgd",
            hyperparameters={"clip_norm": 1.0},
            plan=plan,
            delta=DELTA,
            canaries=100,
            references=100,
        )


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


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _refused(done: subprocess.CompletedProcess[str], *names: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    for name in names:
        assert name in done.stderr, done.stderr


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    """A tunedp home with digits' ledger, bound to the rows the digits workload reads."""
    folder = tmp_path / "home"
    folder.mkdir()
    create_ledger(folder / "ledgers" / "digits.sqlite", dataset="digits", epsilon=5.0, delta=1e-5)
    return folder


def test_cli_audit_is_charged_like_one_trial_before_training(home: Path, config_file: Path) -> None:
    done = _tunedp(home, "audit", "--config", str(config_file), "--canaries", "200", "--json")
    assert done.returncode == 0, done.stderr
    assert "charged" in done.stderr and "before training" in done.stderr
    report = json.loads(done.stdout)
    ledger = PrivacyLedger.open(home / "ledgers" / "digits.sqlite", dataset="digits")
    (charge,) = ledger.charges()
    assert charge.mode == "audit" and charge.status == "completed"
    assert charge.epsilon == pytest.approx(report["claimed_epsilon"], rel=1e-9)
    assert ledger.spent_epsilon() == pytest.approx(report["claimed_epsilon"], rel=1e-9)
    assert report["steps"] == 4 and report["canaries"] == 200 and not report["seeded"]
    assert report["clip_check"]["references"] == 200  # DP-SGD: the clip check ran beside the ε bound


def test_cli_public_on_a_protected_workload_is_refused_and_charges_nothing(home: Path, config_file: Path) -> None:
    """Issue 23, MEDIUM 4: `--public` used to train on digits (which has a ledger) for free."""
    before = _snapshot(home)
    done = _tunedp(home, "audit", "--config", str(config_file), "--public", "--canaries", "50")
    _refused(done, "--public", "'digits' is not declared public", "mnist_public")
    assert _snapshot(home) == before
    assert PrivacyLedger.open(home / "ledgers" / "digits.sqlite", dataset="digits").charges() == []


def test_cli_public_audit_of_a_declared_public_workload_charges_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "public.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "workload": "mnist_public"}), encoding="utf-8")
    done = _tunedp(home, "audit", "--config", str(config), "--public", "--canaries", "50", "--json")
    assert done.returncode == 0, done.stderr
    assert "nothing is charged" in done.stderr and "declared public" in done.stderr
    assert json.loads(done.stdout)["workload"] == "mnist_public"
    assert not (home / "ledgers").exists()


def test_cli_audit_refuses_another_table_under_digits_name(home: Path, tmp_path: Path) -> None:
    """Issue 23, MEDIUM 5: a csv workload over other rows declaring `dataset: digits` is refused as by search."""
    data = digits_table_search(tmp_path / "project")
    data["workload"]["dataset"] = "digits"  # the same name as the protected digits; other rows
    config = tmp_path / "project" / "table.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    before = _snapshot(home)
    done = _tunedp(home, "audit", "--config", str(config), "--canaries", "50")
    _refused(done, "fingerprint mismatch", "nothing charged")
    assert _snapshot(home) == before
    assert PrivacyLedger.open(home / "ledgers" / "digits.sqlite", dataset="digits").charges() == []


def test_cli_audit_runs_the_preflight_before_charging(home: Path, tmp_path: Path) -> None:
    """A model variant the workload does not have: the search's pre-flight refuses it, nothing charged."""
    config = tmp_path / "variant.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "model": "no_such_variant"}), encoding="utf-8")
    before = _snapshot(home)
    _refused(_tunedp(home, "audit", "--config", str(config), "--canaries", "50"), "model", "no_such_variant")
    assert _snapshot(home) == before


def test_cli_bad_canary_count_is_one_line_and_charges_nothing(home: Path, config_file: Path) -> None:
    done = _tunedp(home, "audit", "--config", str(config_file), "--canaries", "1")
    _refused(done, "--canaries")
    assert PrivacyLedger.open(home / "ledgers" / "digits.sqlite", dataset="digits").charges() == []
