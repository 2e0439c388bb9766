"""Child process of the K-leak test: one seeded release: best search through the CLI's code path.

Run as ``python leak_child.py CONFIG LEDGER OUTPUT TRACKING_URI SECRET_FILE``.
It spies on selection (inside the driver, trusted) and writes every trial's
hyperparameters and K to SECRET_FILE, which the test keeps outside the
folders it then searches for those values.
"""

from __future__ import annotations

import json
import sys

import tunedp.run.driver as driver
from tunedp.cli import main

config, ledger, output, tracking_uri, secret = sys.argv[1:6]
original = driver.select_best
seen: list[dict[str, object]] = []


def spy(records):  # type: ignore[no-untyped-def]
    seen.extend({"point": r.point, "hyperparameters": r.hyperparameters} for r in records)
    best = original(records)
    with open(secret, "w", encoding="utf-8") as handle:
        json.dump({"trials": seen, "best": best.point if best else None}, handle)
    return best


driver.select_best = spy
main(
    [
        "search",
        "--config",
        config,
        "--ledger",
        ledger,
        "--output",
        output,
        "--tracking-uri",
        tracking_uri,
        "--seed",
        sys.argv[6],
    ]
)
