"""``tunedp audit``: audit one trial of a search config, charged to the ledger like one trial.

An audit *trains on the protected data*, and its output (the lower bound,
the guess counts) is computed from the trained model: it is a release like
any trial's, so it is charged to the dataset's ledger — the trial's DpEvent
at the ledger's δ — **before** any data is read, and the charge stays even
if the audit fails. ``public=True`` runs the same mechanism (same q, σ_t,
steps, optimizer, hyperparameters) on scikit-learn's digits, treated as
public data, and charges nothing.

The trial audited is the config's planned trial at a data-independent point
of its space (the centre of every range; the first value of a choice), with
no validation-score releases: the hyperparameters only scale the canaries'
scores, the guarantee under audit is that of q, σ_t, C and the step count.
Every check that does not need data runs before the charge.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tunedp.audit.run import AuditResult, AuditSpec, audit_trial_plan
from tunedp.config import ChoiceParam, FixedParam, LogUniformParam, SearchConfig, UniformParam
from tunedp.errors import UserFacingError

__all__ = ["PUBLIC_WORKLOAD", "AuditError", "audit_point", "run_config_audit"]

#: The public stand-in for ``--public``: scikit-learn's digits (bundled, public).
PUBLIC_WORKLOAD = "digits"
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


def build_spec(config: SearchConfig, *, public: bool, canaries: int, delta: float) -> AuditSpec:
    """The audit of ``config``'s planned trial (reads no data): the same q, σ_t and steps."""
    from tunedp.plan import plan_search
    from tunedp.space import optimizer_hyperparameters
    from tunedp.trial_runner import TrialError, TrialSettings, check_settings
    from tunedp.workloads import resolve_workload

    plan = audit_trial_plan(plan_search(config).trial)
    workload = config.workload
    model = config.model
    if public:
        # The same mechanism on public rows: q, σ_t and steps are what the event depends on.
        workload, model = PUBLIC_WORKLOAD, None
        plan = replace(plan, dataset_size=resolve_workload(PUBLIC_WORKLOAD).sizes.train)
    hyperparameters = optimizer_hyperparameters(audit_point(config), config)
    if isinstance(canaries, bool) or canaries < 2:
        raise AuditError(f"--canaries: {canaries} must be an integer >= 2")
    try:
        check_settings(
            TrialSettings(workload=workload, optimizer=config.optimizer, hyperparameters=hyperparameters, plan=plan)
        )
        return AuditSpec(
            workload=workload,
            optimizer=config.optimizer,
            hyperparameters=hyperparameters,
            plan=plan,
            delta=delta,
            canaries=canaries,
            model=model,
        )
    except (TrialError, ValueError) as error:
        raise AuditError(str(error)) from None


def run_config_audit(
    config: SearchConfig,
    *,
    public: bool,
    canaries: int = 1000,
    ledger_path: Path | None = None,
    announce: Callable[[str], None] = print,
) -> AuditResult:
    """Charge (unless ``public``), then run the audit; returns claimed vs empirical ε."""
    from tunedp.accounting.epsilon import rdp_epsilon
    from tunedp.accounting.ledger import PrivacyLedger, default_ledger_path
    from tunedp.audit.run import run_audit

    if public:
        spec = build_spec(config, public=True, canaries=canaries, delta=config.budget.delta)
        announce(f"public audit on {PUBLIC_WORKLOAD} (scikit-learn, treated as public): nothing is charged")
        return run_audit(spec)
    path = ledger_path or default_ledger_path(config.dataset_name)
    ledger = PrivacyLedger.open(path, dataset=config.dataset_name)
    spec = build_spec(config, public=False, canaries=canaries, delta=ledger.delta)
    event = spec.claimed_event
    charge = ledger.charge(
        event, config_hash=config.fingerprint(), mode=AUDIT_MODE, label=f"audit: {config.name or config.workload}"
    )
    announce(
        f"charged ε = {charge.epsilon:.4f} (δ = {ledger.delta:g}) to the {config.dataset_name!r} ledger at {path} "
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
