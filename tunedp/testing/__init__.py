"""Contract tests: subclass one to check a workload, a ledger backend or a search mode of your own.

- :class:`WorkloadContract` (:mod:`~tunedp.testing.workload`) — a workload's
  declaration against its real data: sizes, shapes, per-example gradients.
- :class:`LedgerContract` (:mod:`~tunedp.testing.ledger`) — a ledger backend:
  the budget under concurrent charges, statuses, binding, day-granular times.
- :class:`SearchModeContract` (:mod:`~tunedp.testing.modes`) — a search mode:
  its plan against its charge, its Tune configuration against K, its
  disclosure rule, and a tiny real search.

Every built-in workload, both ledger backends and every search mode pass
them (``tests/``). tunedp itself never imports this package; importing it
imports pytest and torch, never Ray.
"""

from __future__ import annotations

from tunedp.testing.ledger import LedgerContract
from tunedp.testing.modes import SearchModeContract
from tunedp.testing.workload import WorkloadContract, load_or_skip

__all__ = ["LedgerContract", "SearchModeContract", "WorkloadContract", "load_or_skip"]
