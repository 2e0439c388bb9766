"""What a search releases and how: the disclosure rule, selection, trial records, the report and the model.

:mod:`~tunedp.release.disclosure` is the one rule every output channel obeys
(what may leave the driver, docs/architecture.md §4); :mod:`~tunedp.release.selection`
picks the released trial by released scores only; :mod:`~tunedp.release.records`
holds what the driver knows of a trial; :mod:`~tunedp.release.report` writes the
output folder's report; :mod:`~tunedp.release.model` and :mod:`~tunedp.release.predict`
package and serve the released model.

May import: ``tunedp.planning``, ``tunedp.config``, ``tunedp.accounting``, ``tunedp.workloads``,
``tunedp.errors``; never ``tunedp.run`` nor ``tunedp.observe``. Loads neither Ray nor torch on import.
"""
