"""One audit run: canaries in, one DP-SGD trial through :func:`tunedp.trial_runner.run_trial`, a bound out.

The claimed ε is that of the trial's own DpEvent (what actually ran) at the
given δ, from dp_accounting via :mod:`tunedp.accounting`; the empirical ε is
the one-run lower bound of :mod:`tunedp.audit.bound` on the canaries'
guesses. A correct mechanism gives empirical ≤ claimed except with
probability ≤ 1 − confidence.

``noise_divisor > 1`` is the deliberately *broken* mechanism the audit must
catch: it trains with σ_t / divisor while claiming the event of σ_t — the bug
of a noise scale applied twice, or to the wrong quantity.

An audit releases no validation score (its plan has no evaluation steps), so
the trial's event is exactly the training steps the canaries probe.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dp_accounting import dp_event

from tunedp.accounting.epsilon import rdp_epsilon
from tunedp.accounting.schedule import NoiseSegment
from tunedp.accounting.trial_event import TrialPlan
from tunedp.audit.bound import DEFAULT_CONFIDENCE, AuditCounts, best_lower_bound
from tunedp.workloads.registry import WorkloadReference

__all__ = ["AuditResult", "AuditSpec", "audit_trial_plan", "default_guess_counts", "run_audit"]


def default_guess_counts(canaries: int) -> tuple[tuple[int, int], ...]:
    """(k₊, k₋) fixed before any score is seen: ¼·m highest guessed in and ¼·m lowest guessed out.

    Half the canaries are in on average, so with a perfect signal all m/2
    guesses are right; one pair means no multiple-testing correction.
    """
    k = max(1, canaries // 4)
    return ((k, k),)


def audit_trial_plan(plan: TrialPlan) -> TrialPlan:
    """``plan`` without validation-score releases: what an audit trains (same q, N, σ_t, steps)."""
    return dataclasses.replace(plan, evaluation_steps=(), score_noise_multiplier=None)


@dataclass(frozen=True, kw_only=True)
class AuditSpec:
    """What to audit: a trial (workload, optimizer, hyperparameters, plan) and how.

    ``plan`` is the *claimed* mechanism; its score releases are dropped
    (:func:`audit_trial_plan`). ``seed`` makes the canaries, batches and noise
    reproducible — tests only: a seeded run is not private.
    """

    workload: WorkloadReference
    optimizer: str
    hyperparameters: Mapping[str, float]
    plan: TrialPlan
    delta: float
    canaries: int = 1000
    guess_counts: tuple[tuple[int, int], ...] | None = None
    confidence: float = DEFAULT_CONFIDENCE
    noise_divisor: float = 1.0
    model: str | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.canaries, bool) or not isinstance(self.canaries, int) or self.canaries < 2:
            raise ValueError(f"canaries: {self.canaries!r} must be an integer >= 2")
        if not (math.isfinite(self.noise_divisor) and self.noise_divisor >= 1):
            raise ValueError(f"noise_divisor: {self.noise_divisor} must be >= 1 (1 = the correct mechanism)")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence: {self.confidence} must be in (0, 1)")
        if "clip_norm" not in self.hyperparameters:
            raise ValueError("hyperparameters: clip_norm is required (gradient canaries are sized by it)")

    @property
    def claimed_plan(self) -> TrialPlan:
        return audit_trial_plan(self.plan)

    @property
    def trained_plan(self) -> TrialPlan:
        """What trains: the claimed plan, or with σ_t / ``noise_divisor`` for the broken mechanism."""
        claimed = self.claimed_plan
        if self.noise_divisor == 1:
            return claimed
        segments = tuple(
            NoiseSegment(noise_multiplier=s.noise_multiplier / self.noise_divisor, steps=s.steps)
            for s in claimed.segments
        )
        return TrialPlan(
            dataset_size=claimed.dataset_size,
            sampling_rate=claimed.sampling_rate,
            steps=claimed.steps,
            segments=segments,
            evaluation_steps=(),
            score_noise_multiplier=None,
        )

    @property
    def broken_mechanism(self) -> bool:
        return self.noise_divisor != 1

    @property
    def claimed_event(self) -> dp_event.DpEvent:
        return self.claimed_plan.dp_event()


@dataclass(frozen=True, kw_only=True)
class AuditResult:
    """Claimed ε (of the trial's DpEvent at δ) next to the empirical lower bound and its counts."""

    workload: WorkloadReference
    optimizer: str
    claimed_epsilon: float
    counts: AuditCounts
    noise_multiplier: float
    noise_divisor: float
    sampling_rate: float
    steps: int
    canary_kind: str
    seeded: bool
    train_seconds: float

    @property
    def empirical_epsilon(self) -> float:
        return self.counts.epsilon_lower_bound

    @property
    def broken(self) -> bool:
        return self.noise_divisor != 1

    @property
    def violates_claim(self) -> bool:
        """The audit rejects the claim: the lower bound exceeds the claimed ε."""
        return self.empirical_epsilon > self.claimed_epsilon

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "mechanism": f"broken: noise / {self.noise_divisor:g}" if self.broken else f"{self.optimizer} (as shipped)",
            "claimed_epsilon": self.claimed_epsilon,
            "empirical_epsilon_lower_bound": self.empirical_epsilon,
            "violates_claim": self.violates_claim,
            "delta": self.counts.delta,
            "confidence": self.counts.confidence,
            "canaries": self.counts.canaries,
            "canaries_included": self.counts.included,
            "guesses_in": self.counts.guesses_in,
            "guesses_out": self.counts.guesses_out,
            "correct_guesses": self.counts.correct,
            "canary_kind": self.canary_kind,
            "noise_multiplier_claimed": self.noise_multiplier,
            "sampling_rate": self.sampling_rate,
            "steps": self.steps,
            "seeded": self.seeded,
            "train_seconds": self.train_seconds,
        }


def run_audit(spec: AuditSpec) -> AuditResult:
    """Insert white-box gradient canaries, train once through ``run_trial``, and bound ε from their scores."""
    from tunedp.audit.canaries import GradientCanaries
    from tunedp.trial_runner import TrialSettings, run_trial
    from tunedp.workloads import resolve_workload

    workload = resolve_workload(spec.workload)
    canaries = GradientCanaries(
        canaries=spec.canaries,
        classes=workload.sizes.classes,
        clip_norm=float(spec.hyperparameters["clip_norm"]),
        seed=spec.seed,
    )
    settings = TrialSettings(
        workload=spec.workload,
        optimizer=spec.optimizer,
        hyperparameters=dict(spec.hyperparameters),
        plan=spec.trained_plan,
        model=spec.model,
        seed=None if spec.seed is None else spec.seed + 7,
    )
    started = time.perf_counter()
    result = run_trial(settings, evaluate_test=False, training_set_hook=canaries)
    elapsed = time.perf_counter() - started
    # The claim: the correct mechanism's event is what ran; the broken one claims the plan it was given.
    claimed_event = result.dp_event if not spec.broken_mechanism else spec.claimed_event
    claimed = rdp_epsilon(claimed_event, spec.delta)
    counts = best_lower_bound(
        canaries.scores(result.model_state),
        canaries.included,
        guess_counts=_guess_counts(spec.guess_counts, spec.canaries),
        delta=spec.delta,
        confidence=spec.confidence,
    )
    return AuditResult(
        workload=spec.workload,
        optimizer=spec.optimizer,
        claimed_epsilon=claimed,
        counts=counts,
        noise_multiplier=spec.claimed_plan.segments[0].noise_multiplier,
        noise_divisor=spec.noise_divisor,
        sampling_rate=spec.plan.sampling_rate,
        steps=result.steps,
        canary_kind="white-box gradient (Dirac on an unused coordinate)",
        seeded=spec.seed is not None,
        train_seconds=elapsed,
    )


def _guess_counts(given: Sequence[tuple[int, int]] | None, canaries: int) -> tuple[tuple[int, int], ...]:
    return tuple(given) if given is not None else default_guess_counts(canaries)
