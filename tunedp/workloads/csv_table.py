"""The ``csv`` workload: a table tuned without writing Python, with data-independent preprocessing.

A config declares everything the encoding needs::

    workload:
      kind: csv
      dataset: patients            # the ledger this table charges
      path: data/patients.csv      # relative to the config file
      label: outcome
      classes: [healthy, sick]     # label values, in class-index order
      columns:
        age: {type: numeric, range: [0, 120]}
        income: {type: numeric, range: [0, 1000000], log1p: true}
        ward: {type: categorical, categories: [A, B, C]}
      split: {validation: 0.1, test: 0.2, seed: 7}

* numeric columns are clipped to the declared range and scaled by it to
  [-1, 1] (after ``log1p`` when asked) — never by statistics of the rows;
* categorical columns one-hot encode the declared categories, and any other
  value (a typo, a missing value, a category the schema did not list) goes
  to one extra "other" column;
* the split is a fixed-seed permutation of the row *count*: validation and
  test are counts (integers) or fractions of the rows, the rest is train.
  Validation and test rows are carved from the same protected file, so the
  exact test metric is labelled "exact, outside the ε guarantee".

What is read before the charge, and why that is allowed: planning needs the
training-split size N (q = batch / N) and the δ ≤ 1/n check needs n, so the
file's *row count* is read when the workload is resolved — it is treated as
public, exactly like the sizes a built-in workload declares. The same pass
checks every row (a missing column, a non-numeric value in a numeric column,
a label outside ``classes``, an empty file) so bad input is refused with one
line *before* anything is charged. Such an error names the column and the
row but never echoes the value, which belongs to a protected row.

Models: ``logreg`` (one linear layer) and ``mlp`` (one hidden tanh layer of
``hidden`` units). This module imports pydantic and numpy, never torch.
"""

from __future__ import annotations

import csv
import functools
import math
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from tunedp.errors import ConfigError
from tunedp.workloads.columns import one_hot, scale_by_range
from tunedp.workloads.contract import DatasetSizes, Deferred, Workload
from tunedp.workloads.splits import carve

__all__ = ["CategoricalColumn", "CsvSplit", "CsvWorkloadSpec", "EncodedTable", "NumericColumn", "csv_workload"]

_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)


class NumericColumn(BaseModel):
    """A number, clipped to ``range`` and scaled by it (``log1p`` first for heavy tails)."""

    model_config = _STRICT
    type: Literal["numeric"] = "numeric"
    range: tuple[float, float]
    log1p: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> NumericColumn:
        low, high = self.range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"range [{low}, {high}] must be finite with low < high")
        if self.log1p and low <= -1:
            raise ValueError(f"log1p needs range above -1, got low={low}")
        return self

    @property
    def width(self) -> int:
        return 1


class CategoricalColumn(BaseModel):
    """One-hot over the declared ``categories`` plus one "other" column for anything else."""

    model_config = _STRICT
    type: Literal["categorical"] = "categorical"
    categories: tuple[str, ...] = Field(min_length=1)

    @field_validator("categories")
    @classmethod
    def _distinct(cls, categories: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(categories)) != len(categories):
            raise ValueError("categories must be distinct")
        return categories

    @property
    def width(self) -> int:
        return len(self.categories) + 1


Column = Annotated[NumericColumn | CategoricalColumn, Field(discriminator="type")]


class CsvSplit(BaseModel):
    """Validation and test sizes (an integer count, or a fraction of the rows) and the permutation seed."""

    model_config = _STRICT
    validation: int | float
    test: int | float
    seed: int = Field(ge=0)

    @field_validator("validation", "test")
    @classmethod
    def _size(cls, value: float) -> float:
        if isinstance(value, bool):
            raise ValueError("expected a count or a fraction, got a boolean")
        if isinstance(value, int) and value < 1:
            raise ValueError(f"{value} must be a count >= 1 or a fraction in (0, 1)")
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError(f"{value} must be a count >= 1 or a fraction in (0, 1)")
        return value

    def counts(self, rows: int) -> tuple[int, int, int]:
        """(train, validation, test) for a file of ``rows`` rows: a function of the count only."""
        sizes = [v if isinstance(v, int) else max(1, round(v * rows)) for v in (self.validation, self.test)]
        return rows - sizes[0] - sizes[1], sizes[0], sizes[1]


class CsvWorkloadSpec(BaseModel):
    """``workload: {kind: csv, ...}`` in a search config (see the module docstring)."""

    model_config = _STRICT
    kind: Literal["csv"] = "csv"
    dataset: str = Field(min_length=1)
    path: str = Field(min_length=1)
    label: str = Field(min_length=1)
    classes: tuple[str, ...] = Field(min_length=2)
    columns: dict[str, Column] = Field(min_length=1)
    split: CsvSplit
    hidden: int = Field(default=64, ge=1, le=4096)
    delimiter: str = Field(default=",", min_length=1, max_length=1)

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str, info: ValidationInfo) -> str:
        """Relative to the config file's folder (or the working directory), made absolute once here
        so that every Ray worker, whatever its working directory, reads the same file."""
        base = Path((info.context or {}).get("base_dir") or Path.cwd())
        return str((base / Path(path).expanduser()).resolve())

    @field_validator("classes")
    @classmethod
    def _distinct(cls, classes: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(classes)) != len(classes):
            raise ValueError("classes must be distinct")
        return classes

    @model_validator(mode="after")
    def _label_not_a_feature(self) -> CsvWorkloadSpec:
        if self.label in self.columns:
            raise ValueError(f"label column {self.label!r} is also listed in columns; remove it from columns")
        return self

    @property
    def feature_width(self) -> int:
        return sum(column.width for column in self.columns.values())

    def label_text(self) -> str:
        return f"csv:{Path(self.path).name}"


class EncodedTable(BaseModel):
    """A checked, encoded table (numpy; the torch half turns it into tensors)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    features: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]


def _fail(spec: CsvWorkloadSpec, message: str) -> ConfigError:
    return ConfigError(f"workload.path: {spec.path}: {message}")


def encode_table(spec: CsvWorkloadSpec) -> EncodedTable:
    """Read, check and encode every row; bad input is a one-line ConfigError naming column and row."""
    return _encode_cached(spec.model_dump_json())


@functools.lru_cache(maxsize=4)
def _encode_cached(spec_json: str) -> EncodedTable:
    spec = CsvWorkloadSpec.model_validate_json(spec_json)
    try:
        handle = open(spec.path, newline="", encoding="utf-8")  # noqa: SIM115
    except OSError as error:
        raise _fail(spec, f"cannot read the file ({error.strerror}); check workload.path") from None
    with handle:
        reader = csv.reader(handle, delimiter=spec.delimiter)
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise _fail(spec, "the file is empty; it needs a header row naming the columns, then data rows")
        names = [cell.strip() for cell in header]
        index = {name: i for i, name in enumerate(names)}
        for needed in (*spec.columns, spec.label):
            if needed not in index:
                field = "workload.label" if needed == spec.label else f"workload.columns.{needed}"
                raise ConfigError(f"{field}: column {needed!r} is missing from the header of {spec.path}")
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    if not rows:
        raise _fail(spec, "the file has a header but no data rows")
    for number, row in enumerate(rows, start=1):
        if len(row) != len(names):
            raise _fail(spec, f"row {number} has {len(row)} fields but the header names {len(names)}")
    class_index = {name: k for k, name in enumerate(spec.classes)}
    labels = np.empty(len(rows), dtype=np.int64)
    label_at = index[spec.label]
    for number, row in enumerate(rows, start=1):
        k = class_index.get(row[label_at].strip())
        if k is None:
            raise ConfigError(
                f"workload.classes: row {number}, column {spec.label!r}: the label is not one of the declared "
                "classes; add it to workload.classes or fix the row"
            )
        labels[number - 1] = k
    parts: list[npt.NDArray[np.float64]] = []
    for name, column in spec.columns.items():
        cells = [row[index[name]].strip() for row in rows]
        if isinstance(column, NumericColumn):
            values = np.empty(len(rows), dtype=np.float64)
            for number, cell in enumerate(cells, start=1):
                try:
                    value = float(cell)
                except ValueError:
                    value = math.nan
                if not math.isfinite(value):
                    raise ConfigError(
                        f"workload.columns.{name}: row {number}, column {name!r}: not a finite number; "
                        "fix the row or declare the column categorical"
                    ) from None
                values[number - 1] = value
            low, high = column.range
            parts.append(scale_by_range(values, low, high, log1p=column.log1p)[:, None])
        else:
            parts.append(one_hot(cells, column.categories, other=True))
    features = np.concatenate(parts, axis=1).astype(np.float32)
    return EncodedTable(features=features, labels=labels)


def csv_workload(spec: CsvWorkloadSpec) -> Workload:
    """The workload a ``kind: csv`` config declares (reads and checks the file; see the module docstring)."""
    table = encode_table(spec)
    rows = int(table.labels.shape[0])
    train, validation, test = spec.split.counts(rows)
    if train < 1:
        raise ConfigError(
            f"workload.split: validation {validation} + test {test} leave no training rows of {rows}; lower them"
        )
    spec_json = spec.model_dump_json()
    return Workload(
        name="csv",
        sizes=DatasetSizes(
            dataset=spec.dataset, train=train, validation=validation, test=test, classes=len(spec.classes)
        ),
        input_shape=(spec.feature_width,),
        variants=("logreg", "mlp"),
        loader=Deferred("tunedp.workloads.csv_table_torch:load", (spec_json,)),
        model_factory=Deferred("tunedp.workloads.csv_table_torch:build_model", (spec_json,)),
        validation_source="protected",
        test_source="protected",
    )


def split_indices(spec: CsvWorkloadSpec, rows: int) -> dict[str, npt.NDArray[np.int64]]:
    train, validation, test = spec.split.counts(rows)
    return carve({"train": train, "validation": validation, "test": test}, spec.split.seed)
