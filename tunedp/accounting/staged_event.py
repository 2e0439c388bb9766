"""The DpEvent of a staged search, its two-step calibration, and the hyperparameter transfer rule.

A staged search selects hyperparameters in a first stage and trains ONE final
model with them in a second:

- ``two_stage``: stage 1 is a private search of short trials (repeat-and-select
  or an adaptive composition) on the protected data; stage 2 is one
  full-length run on the same data. The charge is ONE event,
  ``ComposedDpEvent([stage-1 search event, stage-2 run event])``: the stage-2
  run is a mechanism that takes the stage-1 output (the selected
  hyperparameters) as its input, which is exactly adaptive composition —
  the RDP accountant composes it soundly whatever stage 1 selected.
- ``public_proxy``: stage 1 reads only a declared public workload, so it is
  a data-independent choice of hyperparameters as far as the protected data
  is concerned (post-processing of public data); the charge is the stage-2
  run's event alone.

Calibration (:func:`calibrate_stages`): σ₁ first, so that stage 1 *alone*
costs at most ``share · ε``; then σ₂, so that the *composition* costs at most
ε. Both σ come from :func:`~tunedp.accounting.calibration.calibrate_noise_multiplier`,
which answers only with a σ it priced within its target, so neither step
overshoots; what stage 1 leaves unspent (it lands within 1 % below its share)
goes to stage 2.

Transfer (:func:`linear_radius_factor`): Panda, Tang, Mahloujifar, Sehwag &
Mittal, "A New Linear Scaling Rule for Private Adaptive Hyperparameter
Optimization" (ICML 2024). They reduce DP-SGD's tuning to one scalar, the
*radius* r = η·T (learning rate times steps), and observe that the best r
grows linearly with the privacy budget ε of the run; they fit r(ε) from runs
at cheap ε and extrapolate it to the final ε. With one cheap point ε₁ we use
the line through the origin, r(ε) = (r₁/ε₁)·ε, so

    η₂ = η₁ · (T₁ / T₂) · (ε₂ / ε₁),

with T₁, ε₁ the steps and ε of ONE stage-1 trial and T₂, ε₂ those of the
stage-2 run; ε here is the RDP ε at the search's δ of the training steps
alone (score releases are not part of the optimisation the rule is about).
For public proxy, stage-1 trials run at the final run's σ and expected batch
size (the same noise per update) for T₁ steps; ε₁ is what such a trial would
cost on the protected data — T₁ steps at the final run's σ and sampling rate —
so a proxy with ``stage1_training_fraction: 1`` transfers η unchanged. All four numbers are
known when the plan is made, so the factor is a plan figure, fixed before any
data is read. It is a utility heuristic: it never changes what is charged.

A measured caveat (``benchmarks/README.md``, "Learning-rate schedule"): the
line through the origin ignores the intercept Panda et al. fit from two cheap
points, so when ε₂/ε₁ is large it can move η the wrong way. On the
Fashion-MNIST CNN a 5-epoch stage-1 trial at σ₁ = 6.3 is best at η·C ≈ 0.6–1.0
and the 40-epoch final run at η·C ≈ 0.6, while the rule multiplies by 1.29.

Horizon transfer (:func:`horizon_factor`): η₂ = η₁ · (T₁/T₂)^α with
0 ≤ α ≤ 1, the ε-blind rule "a longer run wants a smaller step". The
bracket is standard: a short run's best step carried over as it is (α = 0,
``transfer: none``) over-steps a longer one, and the optimal fixed step of
SGD on a convex Lipschitz objective over a horizon T is ∝ 1/√T (α = ½);
deep nets with a decaying schedule shift by less (Bjorck et al., "Scaling
Optimal LR Across Token Horizons", ICLR 2025, fit a power law of the
horizon). The default α = ¼ sits inside the bracket; on the Fashion-MNIST
CNN it moves the 5-epoch optimum (≈ 0.8) onto the 40-epoch one (≈ 0.5)
(``benchmarks/README.md``). ``transfer: none`` keeps the selected η;
which rule is best depends on the workload, which is why it is a config
field and all three are benchmarked.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dp_accounting import dp_event

from tunedp.accounting.calibration import Calibration, calibrate_noise_multiplier
from tunedp.accounting.calibration_memo import CalibrationMemo
from tunedp.errors import CalibrationError

__all__ = [
    "LEARNING_RATE_KEYS",
    "StagedCalibration",
    "calibrate_stages",
    "horizon_factor",
    "linear_radius_factor",
    "staged_event",
    "transfer_point",
]

#: The searched coordinates that are learning rates (``step_size`` is η·C with C
#: kept, so scaling it scales η): what the transfer rule rescales.
LEARNING_RATE_KEYS: tuple[str, ...] = ("step_size", "lr", "lr_2")


def staged_event(stage1: dp_event.DpEvent | None, stage2: dp_event.DpEvent) -> dp_event.DpEvent:
    """The one event a staged search is charged: the composition of its stages.

    ``stage1`` is ``None`` when the first stage read no protected row (public proxy).
    """
    if stage1 is None:
        return stage2
    return dp_event.ComposedDpEvent([stage1, stage2])


@dataclass(frozen=True, kw_only=True)
class StagedCalibration:
    """σ₁ (stage 1 alone within its share) and σ₂ (the composition within the budget)."""

    stage1: Calibration | None
    stage2: Calibration

    @property
    def epsilon(self) -> float:
        """ε of the whole staged search (the composition)."""
        return self.stage2.epsilon


def calibrate_stages(
    *,
    stage1_event: Callable[[float], dp_event.DpEvent] | None,
    stage2_event: Callable[[float], dp_event.DpEvent],
    target_epsilon: float,
    stage1_share: float,
    delta: float,
    memo: CalibrationMemo | None = None,
) -> StagedCalibration:
    """Calibrate σ₁ for ``share · ε`` and then σ₂ for the composition at ε (never overshooting).

    With ``stage1_event=None`` (public proxy) only σ₂ is calibrated, for the
    stage-2 run alone at the whole ε.
    """
    if stage1_event is None:
        return StagedCalibration(
            stage1=None,
            stage2=calibrate_noise_multiplier(stage2_event, target_epsilon=target_epsilon, delta=delta, memo=memo),
        )
    if not 0 < stage1_share < 1:
        raise CalibrationError(f"search.stage1_budget_share={stage1_share} must be in (0, 1)")
    try:
        first = calibrate_noise_multiplier(
            stage1_event, target_epsilon=stage1_share * target_epsilon, delta=delta, memo=memo
        )
    except CalibrationError as error:
        raise CalibrationError(
            f"stage 1 gets search.stage1_budget_share={stage1_share:g} of budget.epsilon={target_epsilon:g}, "
            f"too little: {error}; or raise search.stage1_budget_share"
        ) from None
    settled = stage1_event(first.noise_multiplier)
    try:
        second = calibrate_noise_multiplier(
            lambda sigma: staged_event(settled, stage2_event(sigma)),
            target_epsilon=target_epsilon,
            delta=delta,
            memo=memo,
        )
    except CalibrationError:
        raise CalibrationError(
            f"search.stage1_budget_share={stage1_share:g} leaves too little of budget.epsilon="
            f"{target_epsilon:g} for the final run; lower stage1_budget_share or raise budget.epsilon"
        ) from None
    return StagedCalibration(stage1=first, stage2=second)


def linear_radius_factor(*, steps1: int, steps2: int, epsilon1: float, epsilon2: float) -> float:
    """η₂/η₁ by the linear scaling rule: (T₁/T₂)·(ε₂/ε₁) (see the module docstring)."""
    if steps1 < 1 or steps2 < 1:
        raise ValueError(f"Expected steps1={steps1} >= 1 and steps2={steps2} >= 1")
    if not (epsilon1 > 0 and epsilon2 > 0):
        raise ValueError(f"Expected epsilon1={epsilon1} > 0 and epsilon2={epsilon2} > 0")
    return (steps1 / steps2) * (epsilon2 / epsilon1)


def horizon_factor(*, steps1: int, steps2: int, exponent: float) -> float:
    """η₂/η₁ by the horizon rule: (T₁/T₂)^α (see the module docstring)."""
    if steps1 < 1 or steps2 < 1:
        raise ValueError(f"Expected steps1={steps1} >= 1 and steps2={steps2} >= 1")
    if not 0 <= exponent <= 1:
        raise ValueError(f"Expected 0 <= exponent={exponent} <= 1")
    return float((steps1 / steps2) ** exponent)


def transfer_point(point: dict[str, float], factor: float) -> dict[str, float]:
    """The stage-1 point with every learning-rate coordinate multiplied by ``factor``.

    With ``coupling: lr_clip`` the point holds ``step_size`` = η·C and C:
    scaling ``step_size`` and keeping ``clip_norm`` transfers η and keeps C.
    """
    if not factor > 0:
        raise ValueError(f"Expected factor={factor} > 0")
    return {name: value * factor if name in LEARNING_RATE_KEYS else value for name, value in point.items()}
