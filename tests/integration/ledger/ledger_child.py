"""A separate OS process that charges a ledger, for the concurrency and crash tests.

Run by ``test_ledger.py`` as ``python ledger_child.py MODE LEDGER SIGMA ...``
(never collected by pytest). Modes:

- ``race READY GO``: open the ledger, create READY, wait until GO exists (a
  barrier across processes), then charge a Gaussian of std SIGMA and print
  ``admitted`` or ``refused``.
- ``commit-then-hang``: charge, print ``committed``, then open a write
  transaction that inserts a forged row, print ``locked`` and sleep, so the
  parent can SIGKILL it while it holds sqlite's write lock.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

from dp_accounting import dp_event

from tunedp.ledger.sqlite import BudgetExceededError, PrivacyLedger


def main(argv: list[str]) -> int:
    mode, path, sigma = argv[0], Path(argv[1]), float(argv[2])
    ledger = PrivacyLedger.open(path)
    event = dp_event.GaussianDpEvent(sigma)
    if mode == "race":
        ready, go = Path(argv[3]), Path(argv[4])
        ready.touch()
        deadline = time.monotonic() + 60
        while not go.exists():
            if time.monotonic() > deadline:
                print("barrier timeout", flush=True)
                return 3
            time.sleep(0.0005)
        try:
            ledger.charge(event, config_hash="race", mode="grid", label=ready.name)
        except BudgetExceededError:
            print("refused", flush=True)
            return 0
        print("admitted", flush=True)
        return 0
    if mode == "commit-then-hang":
        ledger.charge(event, config_hash="crash", mode="grid", label="killed after commit")
        print("committed", flush=True)
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT INTO charges(search_id, created_at, config_hash, mode, label, epsilon, event_json, "
            "event_sha256, chain_sha256, status, updated_at) "
            "VALUES ('forged', '', '', '', '', 0, '{}', '', '', 'charged', '')"
        )
        print("locked", flush=True)
        time.sleep(120)
        return 0
    print(f"unknown mode {mode}", flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
