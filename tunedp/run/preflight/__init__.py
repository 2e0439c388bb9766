"""Pre-flight: every failure that does not depend on the private data, found before the ledger is charged.

A privacy budget is not refundable. A typo that only shows once a trial
starts (an unknown model variant, a momentum of 1.5, a cluster address where
nothing listens, an output folder holding an earlier paid-for result) would
otherwise cost the whole charge. So before :meth:`PrivacyLedger.charge` the
driver — and ``tunedp plan`` — run these checks, each of which reads *no
private row*:

* the ledger would admit the search (a dry run; the charge re-checks
  atomically) — :mod:`~tunedp.run.preflight.checks`;
* the output folder is new or empty (or ``--force``);
* the workload's data files exist (their paths only; no content is read);
* the model variant builds, and the update rule constructs with every fixed
  value and with the corners of every searched range; one
  forward/backward/clip/noise step runs on a *synthetic* batch of the
  workload's declared ``input_shape`` at each corner —
  :mod:`~tunedp.run.preflight.model`;
* Ray answers at ``--ray-address`` within a timeout
  (:func:`~tunedp.run.preflight.checks.check_ray_address`); the driver then
  connects (:mod:`tunedp.run.ray_backend.cluster`, which checks the cluster can
  run a trial) and reuses that connection for the trials.

Everything raised is a :class:`PreflightError`: one line naming the field and
the fix, exit code 2, nothing charged. The synthetic step is also timed, which
is where ``tunedp plan``'s wall-time estimate comes from
(:mod:`~tunedp.run.preflight.estimate`).

This package imports torch only inside the functions that need it, and
never Ray, so the command line stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tunedp.run.preflight.checks import (
    RAY_CONNECT_TIMEOUT_S,
    PreflightError,
    check_admissible,
    check_data_files,
    check_ledger_delta,
    check_output,
    check_ray_address,
)
from tunedp.run.preflight.estimate import (
    SCORE_NOISE_WARNING_STD,
    SEARCH_OVERHEAD_S,
    TRIAL_OVERHEAD_S,
    concurrency,
    estimate_wall_seconds,
    learning_noise_warning,
    score_noise_std,
    score_noise_warning,
)
from tunedp.run.preflight.model import MAX_CORNERS, check_model_and_optimizer, hyperparameter_corners

if TYPE_CHECKING:
    from tunedp.planning.single_stage import SearchPlan

__all__ = [
    "MAX_CORNERS",
    "RAY_CONNECT_TIMEOUT_S",
    "SCORE_NOISE_WARNING_STD",
    "SEARCH_OVERHEAD_S",
    "TRIAL_OVERHEAD_S",
    "PreflightError",
    "PreflightResult",
    "check_admissible",
    "check_data_files",
    "check_ledger_delta",
    "check_model_and_optimizer",
    "check_output",
    "check_ray_address",
    "estimate_wall_seconds",
    "hyperparameter_corners",
    "learning_noise_warning",
    "run_preflight",
    "score_noise_std",
    "score_noise_warning",
]


@dataclass(frozen=True, kw_only=True)
class PreflightResult:
    """What the pre-flight measured (nothing in it depends on private data)."""

    #: Seconds of one private step on a synthetic batch of the planned expected size; None if skipped.
    step_seconds: float | None
    corners: int
    concurrency: int
    estimated_wall_s: float | None
    #: The same at the median and the 90th percentile of K (a random K; equal to the mean's otherwise).
    estimated_wall_s_median: float | None = None
    estimated_wall_s_p90: float | None = None
    warnings: tuple[str, ...]


def run_preflight(
    plan: SearchPlan,
    *,
    model: bool = True,
    max_concurrent: int | None = None,
    output: Path | None = None,
    force: bool = False,
) -> PreflightResult:
    """The checks ``tunedp plan`` and the driver share (Ray and the ledger are the driver's own)."""
    check_output(output, force=force)
    check_data_files(plan.config.workload)
    slots = concurrency(plan, max_concurrent)
    corners, seconds = check_model_and_optimizer(plan, concurrency=slots) if model else (0, None)
    warnings = tuple(warning for warning in (score_noise_warning(plan), learning_noise_warning(plan)) if warning)

    def wall(quantile: float | None) -> float | None:
        return None if seconds is None else estimate_wall_seconds(plan, seconds, slots, quantile=quantile)

    return PreflightResult(
        step_seconds=seconds,
        corners=corners,
        concurrency=slots,
        estimated_wall_s=wall(None),
        estimated_wall_s_median=wall(0.5),
        estimated_wall_s_p90=wall(0.9),
        warnings=warnings,
    )
