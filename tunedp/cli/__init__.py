"""The ``tunedp`` command line: plan, init, search, predict, report, audit, ui, and the budget and ledger groups.

This package is the top of the stack (docs/architecture.md §2): it may
import every stage below it (config, planning, run, ledger, release,
observe, audit, workloads), and nothing in tunedp imports it. Heavy
libraries (torch, Ray, MLflow) are imported inside the commands that need
them, so that loading the command line, ``plan`` and ``budget`` stay
instant.

Its modules: ``app`` (the command tree, ``--version``, ``main``), ``output``
(the consoles, ``UserError``), ``options`` (shared options and their
checks), ``ledger_access`` (which ledger, opened how), and one module per
command family: ``plan`` (with ``plan_table``), ``search``,
``budget_setup``, ``budget_views``, ``ledger_admin``, ``results`` (report,
predict), ``audit``, ``ui``, ``starters`` (init). The ``tunedp`` script is
``tunedp.cli:main``.
"""

from tunedp.cli.app import app, main
from tunedp.cli.output import console

__all__ = ["app", "console", "main"]
