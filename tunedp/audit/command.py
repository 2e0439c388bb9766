"""``tunedp audit``: audit one trial of a search config, charged to the ledger like one trial.

An audit *trains on the protected data*, and its output (the lower bound,
the guess counts) is computed from the trained model: it is a release like
any trial's, so it is charged to the dataset's ledger — the trial's DpEvent
at the ledger's δ — **before** any data is read, and the charge stays even
if the audit fails. It goes through the checks a search makes before its
charge, by calling them (:func:`tunedp.run.driver.open_checked_ledger`): the
ledger of the workload's declared dataset (no aliases), the budget, the
pre-flight, and the keyed fingerprint of the rows the workload reads — so
a workload that declares another dataset's name is refused as a search is.

``public=True`` charges nothing, and is accepted only for a workload
*declared* public (:data:`tunedp.workloads.public.PUBLIC_WORKLOADS`): the
audit then trains on that workload's own public rows. Any other workload is
refused in one line before anything runs: its data may have a ledger, and a
"public" audit of it would be a free training run on protected rows.

With DP-SGD and at least 200 canaries, as many reference canaries train
beside them for the clip check (:mod:`tunedp.audit.clip_check`).

The trial audited is the config's planned trial at a data-independent point
of its space (the centre of every range; the first value of a choice), with
no validation-score releases: the hyperparameters only scale the canaries'
scores, the guarantee under audit is that of q, σ_t, C and the step count.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tunedp.audit.run import AuditResult, AuditSpec, audit_trial_plan
from tunedp.config import ChoiceParam, FixedParam, LogUniformParam, SearchConfig, UniformParam
from tunedp.errors import UserFacingError

if TYPE_CHECKING:
    from tunedp.planning.single_stage import SearchPlan

__all__ = [
    "AUDIT_MODE",
    "AuditError",
    "audit_point",
    "build_spec",
    "check_public",
    "clip_references",
    "run_config_audit",
]

#: The ledger row's mode for an audit (shown by ``budget show``).
AUDIT_MODE = "audit"


class AuditError(UserFacingError):
    """A bad audit request (one line naming the option and the fix); nothing is charged."""


def audit_point(config: SearchConfig) -> dict[str, float]:
    """The point of the search space an audit trains at: fixed before any data is read.

    Centre of each range (geometric for log-uniform), first value of a choice.
    """
    point: dict[str, float] = {}
    for name, param in config.space.params.items():
        if isinstance(param, FixedParam):
            continue  # passed through by optimizer_hyperparameters
        if isinstance(param, LogUniformParam):
            point[name] = math.sqrt(param.low * param.high)
        elif isinstance(param, UniformParam):
            point[name] = (param.low + param.high) / 2.0
        elif isinstance(param, ChoiceParam):
            point[name] = float(param.values[0])
    return point


def check_public(config: SearchConfig) -> str:
    """The workload's public source, or a one-line refusal: ``--public`` only for a workload declared public."""
    from tunedp.workloads import reference_label
    from tunedp.workloads.public import PUBLIC_WORKLOADS, public_source

    workload = config.workload
    source = public_source(workload)
    if source is not None:
        return source
    known = ", ".join(sorted(PUBLIC_WORKLOADS))
    raise AuditError(
        f"--public: workload {reference_label(workload)!r} is not declared public (public workloads: {known}); "
        f"its data may have a ledger, so drop --public to audit it charged to the {config.dataset_name!r} ledger"
    )


def clip_references(optimizer: str, canaries: int) -> int:
    """Reference canaries for the clip check: as many as audit canaries, where the check applies (else 0)."""
    from tunedp.audit.clip_check import LINEAR_RULES, MIN_CANARIES

    return canaries if optimizer in LINEAR_RULES and canaries >= MIN_CANARIES else 0


def build_spec(config: SearchConfig, plan: SearchPlan, *, canaries: int, delta: float) -> AuditSpec:
    """The audit of ``plan``'s trial (reads no data): the same q, σ_t and steps, at :func:`audit_point`."""
    from tunedp.config.space import optimizer_hyperparameters
    from tunedp.run.trial import TrialError, TrialSettings, check_settings

    trial = audit_trial_plan(plan.trial)
    hyperparameters = optimizer_hyperparameters(audit_point(config), config)
    if isinstance(canaries, bool) or canaries < 2:
        raise AuditError(f"--canaries: {canaries} must be an integer >= 2")
    try:
        check_settings(
            TrialSettings(
                workload=config.workload, optimizer=config.optimizer, hyperparameters=hyperparameters, plan=trial
            )
        )
        return AuditSpec(
            workload=config.workload,
            optimizer=config.optimizer,
            hyperparameters=hyperparameters,
            plan=trial,
            delta=delta,
            canaries=canaries,
            references=clip_references(config.optimizer, canaries),
            model=config.model,
        )
    except (TrialError, ValueError) as error:
        raise AuditError(str(error)) from None


def run_config_audit(
    config: SearchConfig,
    *,
    public: bool,
    canaries: int = 5000,
    ledger_path: Path | str | None = None,
    announce: Callable[[str], None] = print,
) -> AuditResult:
    """Check and charge as a search does (unless ``public``), then run the audit; claimed vs empirical ε."""
    from tunedp.accounting.epsilon import rdp_epsilon
    from tunedp.audit.run import run_audit
    from tunedp.planning import plan_single_stage
    from tunedp.run.driver import open_checked_ledger
    from tunedp.run.preflight import run_preflight

    source = check_public(config) if public else None  # first: a refused --public starts nothing
    plan = plan_single_stage(config)  # one trial's plan; a staged config is refused there
    spec = build_spec(config, plan, canaries=canaries, delta=config.budget.delta)
    if source is not None:
        run_preflight(plan)  # the search's pre-flight; nothing to charge
        announce(f"public audit on {config.workload} ({source}, declared public): nothing is charged")
        return run_audit(spec)
    event = spec.claimed_event
    ledger = open_checked_ledger(plan, ledger_path, event=event)  # every pre-charge check of a search
    spec = dataclasses.replace(spec, delta=ledger.delta)
    charge = ledger.charge(
        event, config_hash=config.fingerprint(), mode=AUDIT_MODE, label=f"audit: {config.name or config.workload_label}"
    )
    announce(
        f"charged ε = {charge.epsilon:.4f} (δ = {ledger.delta:g}) to the {ledger.dataset!r} ledger at {ledger.path} "
        "before training: an audit is a training run on the protected data, charged like one trial"
    )
    ledger.set_status(charge.search_id, "running")
    status = "failed"
    try:
        result = run_audit(spec)
        # What ran must be what was charged (the correct mechanism's event is the trial's own).
        if not math.isclose(result.claimed_epsilon, rdp_epsilon(event, ledger.delta), rel_tol=1e-9):
            raise RuntimeError("the audited trial's event differs from the charged one")
        status = "completed"
        return result
    finally:
        ledger.set_status(charge.search_id, status)
