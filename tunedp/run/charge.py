"""The charge: the search's one event written to the dataset's ledger, before any trial reads a row.

:func:`charge_search` is the driver's second step (after the pre-flight,
before the trials). It refuses — charging nothing — data that is not the
data the ledger protects (keyed fingerprint; on an external cluster, every
node's copy), then charges the plan's event in one committed transaction.
A crash or a killed driver after it leaves the search charged; a resumed
search was charged by its first run and is only checked against it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tunedp.ledger.binding import verify_cluster_copies, verify_search_data
from tunedp.ledger.sqlite import SEEDED_MARK, Charge, PrivacyLedger
from tunedp.planning.single_stage import SearchPlan
from tunedp.release.disclosure import Disclosure
from tunedp.run.options import RunOptions
from tunedp.run.resume import ResumeState, charged_search

__all__ = ["ChargedSearch", "charge_search"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ChargedSearch:
    """A search the ledger has charged: its charge, and the ledger's spent ε around it (public)."""

    search_id: str
    charge: Charge
    #: Spent before this search's charge (a resumed search: as its first run recorded it).
    spent_before: float
    spent_after: float


def charge_search(
    plan: SearchPlan,
    ledger: PrivacyLedger,
    *,
    search_id: str,
    options: RunOptions,
    disclosure: Disclosure,
    resume: ResumeState | None = None,
) -> ChargedSearch:
    """Verify the data, then charge ``plan.event`` (``resume``: check the first run's charge instead).

    Raises, charging nothing, when the data is not the ledger's or the
    ledger cannot admit the search (the charge re-checks the budget atomically).
    """
    config = plan.config
    # The data about to be read must be the data this ledger protects (keyed
    # fingerprint); otherwise refuse here, before anything is charged.
    verify_search_data(ledger, config.workload)
    if options.ray_address is not None:  # an external cluster: every node reads its own copy; check each one
        from tunedp.run.ray_backend import node_fingerprints

        verify_cluster_copies(config.workload, lambda nonce: node_fingerprints(config.workload, nonce))
    spent_before = ledger.spent_epsilon()
    if options.ray_address is not None and not disclosure.shows_trial_count:
        log.warning(
            "release: best on an external Ray cluster (--ray-address): its own logs (worker logs, "
            "Tune's trial lines) are outside tunedp's control and record how many trials ran and their "
            "hyperparameters; protect or delete them, or the charge's repeat-and-select bound does not hold"
        )
    # The charge: before any data is read. A resumed search was charged by its first run: never again.
    if resume is None:
        charge = ledger.charge(
            plan.event,
            config_hash=config.fingerprint(),
            # A seeded search is deterministic given a known integer: it spends
            # the budget (it read the data) but its ε is no guarantee; say so
            # wherever the charge appears.
            mode=f"{plan.shape.mode}/{plan.shape.release}" + (SEEDED_MARK if options.seed is not None else ""),
            label=config.name or config.workload_label,
            search_id=search_id,
        )
    else:
        charge = charged_search(ledger, plan, search_id)
        if resume.spent_before is not None:
            spent_before = resume.spent_before
    return ChargedSearch(
        search_id=search_id, charge=charge, spent_before=spent_before, spent_after=ledger.spent_epsilon()
    )
