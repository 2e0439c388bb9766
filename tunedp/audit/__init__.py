"""Empirical privacy auditing: the one-run audit of Steinke, Nasr & Jagielski (NeurIPS 2023).

* :mod:`tunedp.audit.bound` — the arithmetic: guesses → ε lower bound (no torch).
* :mod:`tunedp.audit.canaries` — white-box gradient canaries and black-box mislabelled ones.
* :mod:`tunedp.audit.run` — one audited trial through the trial runner: claimed vs empirical ε.
* :mod:`tunedp.audit.command` — ``tunedp audit``: from a config, charged to the ledger first.

An audit trains on the protected data, so unless it runs on public data it
is charged to the dataset's ledger like one trial, before it starts.
"""
