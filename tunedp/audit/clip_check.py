"""The clip check: does one example move the model by at most C, as the noise assumes?

The ε lower bound (:mod:`tunedp.audit.bound`) tests the claim as a whole,
one canary at a time, and that is weak for a sensitivity that is a small
factor off: a clip at 2·C under noise calibrated to C doubles the true ε (2.2
against a claim of 1 on digits) while the one-run bound on that mechanism
stays near 1 even with 30000 canaries. The clip check pools the canaries
instead, to measure the clipped contribution itself.

Two kinds of gradient canaries (:mod:`tunedp.audit.canaries`) train
together: *audit* canaries whose raw gradient is 10·C (a correct clip brings
each to exactly C) and *references* whose raw gradient is ρ·C with ρ = 0.9
(below the clip: untouched by a clip at C or anything above). Every canary
has its own unused coordinate, and with an update rule that is **linear in
the privatized gradient** (DP-SGD: momentum, weight decay and a learning-rate
schedule included) a canary's final coordinate is Σₜ hₜ·(bₜ·s − noiseₜ) for
the same response hₜ, where bₜ says whether step t sampled it and s is its
clipped contribution. So, with D = mean score of the included minus mean
score of the excluded canaries of a kind,

    E[D_audit] / E[D_reference] = s / (ρ·C),

whatever η, qN, momentum, the steps or σ are. The claim says s ≤ C:
H₀: E[D_audit − D_reference/ρ] ≤ 0. The statistic is that difference over
its standard error (Welch: the variances are estimated from the scores, so a
noise scale that is wrong in either direction does not bias the test), and
H₀ is rejected when its normal-approximation p-value is below β. Each D is a
mean over hundreds of independent canaries, so the normal approximation is
good (checked by simulation in tests/unit/audit/test_clip_check.py).

What this does *not* cover: update rules that are not linear in the
privatized gradient (Adam, DP²: the ratio is then not s/ρC), for which the
check is not run and only the ε lower bound speaks. The estimate
``contribution`` (s/C) is reported for reading; the verdict is the test.

Pure numpy + scipy: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["LINEAR_RULES", "MIN_CANARIES", "MIN_PER_GROUP", "ClipCheck", "clip_check"]

#: Update rules whose parameters are a linear function of the privatized gradients.
LINEAR_RULES: frozenset[str] = frozenset({"dp_sgd"})
#: Fewest included (and excluded) canaries of each kind the normal approximation is trusted with.
MIN_PER_GROUP = 30
#: Fewest canaries of each kind a clip check is planned with: fewer than MIN_PER_GROUP
#: of 200 fair coins land in (or out) with probability below 10⁻²⁰.
MIN_CANARIES = 200


@dataclass(frozen=True, kw_only=True)
class ClipCheck:
    """The outcome: the estimated clipped contribution (in units of C) and the one-sided test of ≤ C."""

    contribution: float
    statistic: float
    p_value: float
    confidence: float
    reference_factor: float
    audit_canaries: int
    references: int

    @property
    def rejected(self) -> bool:
        """The test rejects "each example contributes at most C" at ``confidence``."""
        return self.p_value < 1.0 - self.confidence

    def to_json(self) -> dict[str, float | int | bool]:
        return {
            "contribution_over_c": self.contribution,
            "z": self.statistic,
            "p_value": self.p_value,
            "confidence": self.confidence,
            "rejects_clip": self.rejected,
            "reference_factor": self.reference_factor,
            "audit_canaries": self.audit_canaries,
            "references": self.references,
        }


def _gap(scores: np.ndarray, included: np.ndarray) -> tuple[float, float]:
    """Mean(in) − mean(out), and the variance of that difference estimated from the scores."""
    inside, outside = scores[included], scores[~included]
    if min(inside.size, outside.size) < MIN_PER_GROUP:
        raise ValueError(
            f"clip check: {inside.size} included and {outside.size} excluded canaries of a kind; "
            f"at least {MIN_PER_GROUP} of each are needed (use more canaries)"
        )
    variance = float(inside.var(ddof=1) / inside.size + outside.var(ddof=1) / outside.size)
    return float(inside.mean() - outside.mean()), variance


def clip_check(
    audit_scores: Sequence[float] | np.ndarray,
    audit_included: Sequence[bool] | np.ndarray,
    reference_scores: Sequence[float] | np.ndarray,
    reference_included: Sequence[bool] | np.ndarray,
    *,
    reference_factor: float,
    confidence: float,
) -> ClipCheck:
    """Test H₀: an audit canary's clipped contribution is at most C (see the module docstring)."""
    if not 0 < reference_factor < 1:
        raise ValueError(f"Expected reference_factor={reference_factor} in (0, 1): references must be below the clip")
    if not 0 < confidence < 1:
        raise ValueError(f"Expected confidence={confidence} in (0, 1)")
    scores = [np.asarray(audit_scores, dtype=np.float64), np.asarray(reference_scores, dtype=np.float64)]
    members = [np.asarray(audit_included, dtype=bool), np.asarray(reference_included, dtype=bool)]
    for score, member in zip(scores, members, strict=True):
        if score.shape != member.shape or score.ndim != 1:
            raise ValueError(f"scores hold {score.shape} canaries but included {member.shape}; they must match")
        if not np.all(np.isfinite(score)):
            raise ValueError("scores must be finite")
    audit_gap, audit_variance = _gap(scores[0], members[0])
    reference_gap, reference_variance = _gap(scores[1], members[1])
    difference = audit_gap - reference_gap / reference_factor
    error = math.sqrt(audit_variance + reference_variance / reference_factor**2)
    statistic = difference / error if error > 0 else (math.inf if difference > 0 else 0.0)
    contribution = reference_factor * audit_gap / reference_gap if reference_gap > 0 else math.nan
    return ClipCheck(
        contribution=contribution,
        statistic=statistic,
        p_value=float(stats.norm.sf(statistic)),
        confidence=confidence,
        reference_factor=reference_factor,
        audit_canaries=int(members[0].size),
        references=int(members[1].size),
    )
