"""``tunedp predict``: the released model of an output folder, on raw rows, without MLflow.

A search's output folder holds everything a prediction needs: ``report.json``
(the workload's declaration, the released model's variant) and
``best_model.pt`` (its weights). :func:`predict_file` rebuilds the model with
:class:`tunedp.release.model.ReleasedModel` — the same code the MLflow pyfunc
runs — reads the rows and writes one line per row: ``label`` and each
class's ``probability_<class>``.

Rows are read as the training read them: a table workload's CSV by its
header (the declared columns by name, every other column ignored, the cells
as text; the workload's own delimiter), and any other workload's input as an
array — a ``.npy`` file or an idx file, gzipped or plain (the format
Fashion-MNIST and MNIST ship: ``t10k-images-idx3-ubyte.gz`` is scored as it
is). An image workload's array is its raw images (pixels 0..255 as stored);
the model preprocesses them as the training did.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from tunedp.errors import UserFacingError

__all__ = ["PredictInputError", "predict_file", "released_model_of"]


class PredictInputError(UserFacingError):
    """The output folder or the rows cannot be used (one line naming the argument and the fix)."""


def released_model_of(report_dir: Path) -> Any:
    """The :class:`~tunedp.release.model.ReleasedModel` a search's output folder released."""
    from tunedp.release.model import ReleasedModel, workload_of

    report_file = report_dir / "report.json"
    weights = report_dir / "best_model.pt"
    if not report_file.is_file():
        raise PredictInputError(f"--report: no report.json in {report_dir}; give a search's output folder")
    try:
        report = json.loads(report_file.read_text(encoding="utf-8"))
        config, best = report["config"], report.get("best")
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise PredictInputError(f"--report: {report_file} is not a tunedp report ({type(error).__name__})") from None
    if best is None or not weights.is_file():
        raise PredictInputError(f"--report: the search in {report_dir} released no model (status {report['status']})")
    variant = best.get("variant") or config.get("model")
    return ReleasedModel.load(workload_of(config["workload"]), variant, weights)


def _read_table(path: Path, delimiter: str) -> dict[str, list[str]]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as error:
        raise PredictInputError(f"ROWS: cannot read {path} ({error.strerror})") from None
    with handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = [cell.strip() for cell in next(reader, [])]
        if not any(header):
            raise PredictInputError(f"ROWS: {path} is empty; it needs a header row naming the columns, then rows")
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    for number, row in enumerate(rows, start=1):
        if len(row) != len(header):
            raise PredictInputError(
                f"ROWS: {path}: row {number} has {len(row)} fields but the header names {len(header)}"
            )
    return {name: [row[i] for row in rows] for i, name in enumerate(header)}


def _read_array(path: Path, shape: tuple[int, ...]) -> Any:
    """A ``.npy`` array, else an idx file (gzipped when its name ends in ``.gz``), as stored."""
    import numpy as np

    from tunedp.workloads.files import read_idx

    if not path.is_file():
        raise PredictInputError(f"ROWS: no file {path}")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        return read_idx(path)
    except (OSError, ValueError, EOFError) as error:
        kind = "a .npy array" if path.suffix == ".npy" else "an idx file (e.g. t10k-images-idx3-ubyte.gz)"
        raise PredictInputError(
            f"ROWS: cannot read {path} as {kind} ({type(error).__name__}); the model takes examples of shape "
            f"{shape}: give a .npy array or an idx file of them"
        ) from None


def predict_file(report_dir: Path, rows: Path, output: Path | None = None) -> int:
    """Predictions for ``rows`` by ``report_dir``'s released model, to ``output`` (else stdout); returns the count."""
    from tunedp.release.model import TableInput
    from tunedp.workloads import CsvWorkloadSpec

    model = released_model_of(report_dir)
    inputs: Any
    if isinstance(model.raw_input, TableInput):
        delimiter = model.workload.delimiter if isinstance(model.workload, CsvWorkloadSpec) else ","
        inputs = _read_table(rows, delimiter)
    else:
        inputs = _read_array(rows, model.raw_input.shape)
    table = model.predict(inputs).columns()
    count = len(table["label"])
    handle = sys.stdout if output is None else output.open("w", newline="", encoding="utf-8")
    try:
        writer = csv.writer(handle)
        writer.writerow(list(table))
        writer.writerows(zip(*(_cells(values) for values in table.values()), strict=True))
    finally:
        if output is not None:
            handle.close()
    return count


def _cells(values: list[Any]) -> list[str]:
    return [repr(v) if isinstance(v, float) else str(v) for v in values]
