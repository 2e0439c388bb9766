"""Write the UCI Adult rows as one headed CSV, for the ``csv`` workload demo (search_spaces/adult_csv.yaml).

The same 48842 rows the built-in ``adult`` workload reads (``adult.data``
then ``adult.test``, located by :func:`tunedp.workloads.files.adult_files`), with a
header row, surrounding spaces trimmed and ``adult.test``'s trailing ``.``
dropped from the label. No other change: the ``csv`` workload's own
declared preprocessing does the rest.

    python scripts/adult_csv.py data/adult.csv
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from tunedp.workloads.adult import COLUMNS
from tunedp.workloads.adult_torch import read_rows
from tunedp.workloads.files import adult_files


def write_adult_csv(target: Path) -> int:
    """Write the CSV; returns the number of data rows."""
    files = adult_files()
    rows = read_rows(files.train) + read_rows(files.test)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in rows:
            cells = [cell.strip() for cell in row]
            cells[-1] = cells[-1].rstrip(".")
            writer.writerow(cells)
    return len(rows)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "data/adult.csv")
    print(f"{write_adult_csv(out)} rows written to {out}")
