"""Observing a search: who hears about it, within the disclosure rule.

The stage after the driver: it is handed only what :mod:`tunedp.release.disclosure`
lets leave the driver. :mod:`~tunedp.observe.protocol` (the ``SearchObserver``
hooks and ``SearchOutcome``), :mod:`~tunedp.observe.console` (the rich progress
display), :mod:`~tunedp.observe.lines` (plain progress lines for logs),
:mod:`~tunedp.observe.tracking` (MLflow), :mod:`~tunedp.observe.plots` and
:mod:`~tunedp.observe.budget_page` (the ledger as a page).

May import: ``tunedp.release``, ``tunedp.planning``, ``tunedp.config``, ``tunedp.accounting``,
``tunedp.ledger``, ``tunedp.errors``; never ``tunedp.run`` (the driver calls observers, not the reverse).
Only :mod:`~tunedp.observe.tracking` loads MLflow.
"""
