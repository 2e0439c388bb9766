"""Empirical privacy auditing: the one-run audit of Steinke, Nasr & Jagielski (NeurIPS 2023).

* :mod:`tunedp.audit.bound` — the arithmetic: guesses → ε lower bound (no torch).
* :mod:`tunedp.audit.clip_check` — the clip check: one example's clipped contribution vs C (no torch).
* :mod:`tunedp.audit.canaries` — white-box gradient canaries (audit and reference) and black-box mislabelled ones.
* :mod:`tunedp.audit.run` — one audited trial through the trial runner: claimed vs empirical ε, and the clip check.
* :mod:`tunedp.audit.command` — ``tunedp audit``: from a config, checked and charged as a search is.

An audit trains on the protected data, so unless its workload is declared
public it goes through a search's pre-charge checks and is charged to the
dataset's ledger like one trial, before it starts.
"""
