"""Workloads for tests only, named by import path (``workload_fixtures:NAME``): ``tests/`` is on sys.path.

``DIGITS_PUBLIC_VALIDATION`` is the real digits data *declared* as if its
validation split came from a separate public source. It exists to test the
mechanics of ``validation: {policy: public}`` (exact scores, nothing charged
for them), which tunedp allows only for such a declaration; it charges a
ledger of its own name so it never touches the digits ledger.
"""

from __future__ import annotations

import dataclasses

from tunedp.workloads import digits

DIGITS_PUBLIC_VALIDATION = dataclasses.replace(
    digits.WORKLOAD,
    name="digits_public_validation",
    sizes=dataclasses.replace(digits.WORKLOAD.sizes, dataset="digits_public_validation"),
    validation_source="public",
)

DIGITS_CLAIMING_ADULT_ROWS = dataclasses.replace(
    digits.WORKLOAD, name="digits_claiming_adult_rows", fingerprint_workload="adult"
)
"""A workload that says it transforms another's rows while declaring other sizes: its fingerprint is refused."""
