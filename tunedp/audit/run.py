"""One audit run: canaries in, one DP-SGD trial through :func:`tunedp.run.trial.run_trial`, a bound out.

The claimed ε is that of the trial's own DpEvent (what actually ran) at the
given δ, from dp_accounting via :mod:`tunedp.accounting`; the empirical ε is
the one-run lower bound of :mod:`tunedp.audit.bound` on the canaries'
guesses. A correct mechanism gives empirical ≤ claimed except with
probability ≤ 1 − confidence.

With ``references`` > 0 and a linear update rule (DP-SGD) the audit also
runs the clip check (:mod:`tunedp.audit.clip_check`): does one example move
the model by more than C? The claim is then rejected when either test
rejects, each at half of β, so the verdict keeps its confidence.

The deliberately *broken* mechanisms the audit must catch, each claiming the
event of the correct one:

* ``noise_divisor`` = d > 1: trains with σ_t / d — a noise scale applied
  twice, or to the wrong quantity;
* ``clip_multiplier`` = k > 1: clips at k·C while the noise stays σ_t·C — a
  sensitivity off by k (trained as clip k·C with σ_t / k);
  ``math.inf``: no clipping at all (a clip at 10⁶·C, which no gradient
  here reaches, with σ_t / 10⁶).

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
from tunedp.audit.clip_check import LINEAR_RULES, MIN_CANARIES, ClipCheck, clip_check
from tunedp.workloads.registry import WorkloadReference, reference_label

__all__ = ["NO_CLIP_FACTOR", "AuditResult", "AuditSpec", "audit_trial_plan", "default_guess_counts", "run_audit"]

#: "No clipping" (``clip_multiplier=math.inf``) trains with a clip at this many times C:
#: no gradient of these workloads or canaries comes near it, so nothing is clipped.
NO_CLIP_FACTOR = 1e6


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


def mechanism_label(optimizer: str, noise_divisor: float, clip_multiplier: float) -> str:
    """The mechanism that trained, in words: ``"dp_sgd (as shipped)"`` or ``"broken: <the bugs>"``."""
    bugs = []
    if noise_divisor != 1:
        bugs.append(f"noise / {noise_divisor:g}")
    if math.isinf(clip_multiplier):
        bugs.append("no clipping")
    elif clip_multiplier != 1:
        bugs.append(f"clip at {clip_multiplier:g}·C")
    return f"broken: {', '.join(bugs)}" if bugs else f"{optimizer} (as shipped)"


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
    #: Reference canaries for the clip check (:mod:`tunedp.audit.clip_check`); 0: no clip check.
    references: int = 0
    guess_counts: tuple[tuple[int, int], ...] | None = None
    confidence: float = DEFAULT_CONFIDENCE
    noise_divisor: float = 1.0
    clip_multiplier: float = 1.0
    model: str | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.canaries, bool) or not isinstance(self.canaries, int) or self.canaries < 2:
            raise ValueError(f"canaries: {self.canaries!r} must be an integer >= 2")
        if isinstance(self.references, bool) or not isinstance(self.references, int) or self.references < 0:
            raise ValueError(f"references: {self.references!r} must be an integer >= 0")
        if self.references and min(self.references, self.canaries) < MIN_CANARIES:
            raise ValueError(
                f"references: the clip check needs at least {MIN_CANARIES} canaries and {MIN_CANARIES} references "
                f"(got {self.canaries} and {self.references}); raise them or use references=0"
            )
        if self.references and self.optimizer not in LINEAR_RULES:
            raise ValueError(
                f"references: the clip check needs an update rule linear in the privatized gradient "
                f"({', '.join(sorted(LINEAR_RULES))}), not {self.optimizer!r}; use references=0"
            )
        if not (math.isfinite(self.noise_divisor) and self.noise_divisor >= 1):
            raise ValueError(f"noise_divisor: {self.noise_divisor} must be >= 1 (1 = the correct mechanism)")
        if not self.clip_multiplier >= 1:  # math.inf (no clipping) is allowed
            raise ValueError(f"clip_multiplier: {self.clip_multiplier} must be >= 1 (1 = the correct mechanism)")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence: {self.confidence} must be in (0, 1)")
        if "clip_norm" not in self.hyperparameters:
            raise ValueError("hyperparameters: clip_norm is required (gradient canaries are sized by it)")

    @property
    def claimed_plan(self) -> TrialPlan:
        return audit_trial_plan(self.plan)

    @property
    def clip_factor(self) -> float:
        """The trained clip over the claimed C (``NO_CLIP_FACTOR`` for "no clipping")."""
        return NO_CLIP_FACTOR if math.isinf(self.clip_multiplier) else self.clip_multiplier

    @property
    def trained_hyperparameters(self) -> dict[str, float]:
        """What trains: the claimed hyperparameters, with the clip at k·C for a broken clip."""
        trained = dict(self.hyperparameters)
        trained["clip_norm"] = float(self.hyperparameters["clip_norm"]) * self.clip_factor
        return trained

    @property
    def trained_plan(self) -> TrialPlan:
        """What trains: the claimed plan, or with σ_t / (divisor·k) for a broken mechanism (noise std σ_t·C / d)."""
        claimed = self.claimed_plan
        scale = self.noise_divisor * self.clip_factor
        if scale == 1:
            return claimed
        segments = tuple(
            NoiseSegment(noise_multiplier=s.noise_multiplier / scale, steps=s.steps) for s in claimed.segments
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
        return self.noise_divisor != 1 or self.clip_multiplier != 1

    @property
    def mechanism(self) -> str:
        """What trained, in words: the shipped mechanism or which bug."""
        return mechanism_label(self.optimizer, self.noise_divisor, self.clip_multiplier)

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
    clip_multiplier: float
    #: The verdict's confidence (the ε test and the clip check share its β).
    confidence: float
    clip_check: ClipCheck | None
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
        return self.noise_divisor != 1 or self.clip_multiplier != 1

    @property
    def epsilon_violated(self) -> bool:
        """The ε lower bound exceeds the claimed ε."""
        return self.empirical_epsilon > self.claimed_epsilon

    @property
    def clip_violated(self) -> bool:
        """The clip check measured a contribution above C (False where it did not run)."""
        return self.clip_check is not None and self.clip_check.rejected

    @property
    def violates_claim(self) -> bool:
        """The audit rejects the claim: the lower bound exceeds the claimed ε, or the clip check rejects."""
        return self.epsilon_violated or self.clip_violated

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": reference_label(self.workload),
            "mechanism": mechanism_label(self.optimizer, self.noise_divisor, self.clip_multiplier),
            "claimed_epsilon": self.claimed_epsilon,
            "empirical_epsilon_lower_bound": self.empirical_epsilon,
            "violates_claim": self.violates_claim,
            "epsilon_violated": self.epsilon_violated,
            "clip_violated": self.clip_violated,
            "clip_check": None if self.clip_check is None else self.clip_check.to_json(),
            "delta": self.counts.delta,
            "confidence": self.confidence,
            "epsilon_test_confidence": self.counts.confidence,
            "canaries": self.counts.canaries,
            "canaries_included": self.counts.included,
            "guesses_in": self.counts.guesses_in,
            "guesses_out": self.counts.guesses_out,
            "correct_guesses": self.counts.correct,
            "canary_kind": self.canary_kind,
            "noise_multiplier_claimed": self.noise_multiplier,
            "noise_divisor": self.noise_divisor,
            "clip_multiplier": self.clip_multiplier,
            "sampling_rate": self.sampling_rate,
            "steps": self.steps,
            "seeded": self.seeded,
            "train_seconds": self.train_seconds,
        }


def run_audit(spec: AuditSpec) -> AuditResult:
    """Insert white-box gradient canaries, train once through ``run_trial``, and bound ε from their scores."""
    from tunedp.audit.canaries import CANARY_GRADIENT_FACTOR, REFERENCE_GRADIENT_FACTOR, GradientCanaries
    from tunedp.run.trial import TrialSettings, run_trial
    from tunedp.workloads import resolve_workload

    workload = resolve_workload(spec.workload)
    canaries = GradientCanaries(
        canaries=spec.canaries,
        references=spec.references,
        classes=workload.sizes.classes,
        clip_norm=float(spec.hyperparameters["clip_norm"]),  # the claimed C, whatever trains
        seed=spec.seed,
    )
    settings = TrialSettings(
        workload=spec.workload,
        optimizer=spec.optimizer,
        hyperparameters=spec.trained_hyperparameters,
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
    scores, included, m = canaries.scores(result.model_state), canaries.included, spec.canaries
    # Two tests of one claim: each at β/2 (union bound), so the verdict keeps confidence 1 − β.
    per_test = spec.confidence if spec.references == 0 else 1.0 - (1.0 - spec.confidence) / 2.0
    counts = best_lower_bound(
        scores[:m],
        included[:m],
        guess_counts=_guess_counts(spec.guess_counts, m),
        delta=spec.delta,
        confidence=per_test,
    )
    check = None
    if spec.references:
        check = clip_check(
            scores[:m],
            included[:m],
            scores[m:],
            included[m:],
            reference_factor=REFERENCE_GRADIENT_FACTOR,
            confidence=per_test,
        )
    return AuditResult(
        workload=spec.workload,
        optimizer=spec.optimizer,
        claimed_epsilon=claimed,
        counts=counts,
        noise_multiplier=spec.claimed_plan.segments[0].noise_multiplier,
        noise_divisor=spec.noise_divisor,
        clip_multiplier=spec.clip_multiplier,
        confidence=spec.confidence,
        clip_check=check,
        sampling_rate=spec.plan.sampling_rate,
        steps=result.steps,
        canary_kind=f"white-box gradient (Dirac of norm {CANARY_GRADIENT_FACTOR:g}·C on an unused coordinate)",
        seeded=spec.seed is not None,
        train_seconds=elapsed,
    )


def _guess_counts(given: Sequence[tuple[int, int]] | None, canaries: int) -> tuple[tuple[int, int], ...]:
    return tuple(given) if given is not None else default_guess_counts(canaries)
