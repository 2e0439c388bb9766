"""Record ``tunedp plan --json --no-preflight`` of every shipped config into tests/golden/plan/.

Run before a change that must not alter any plan (a refactor), commit the
files, and ``tests/integration/planning/test_plan_golden.py`` then compares every later plan with
them byte for byte. Re-record only for a change that is *meant* to alter
plans, and say so in the commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from integration.planning.test_plan_golden import GOLDEN, plan_json, shipped_configs  # noqa: E402


def main() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for config in shipped_configs():
        (GOLDEN / f"{config.stem}.json").write_text(plan_json(config), encoding="utf-8")
        print(f"recorded {config.stem}")


if __name__ == "__main__":
    main()
