"""The released model as a user scores with it: raw rows in, labels and class probabilities out.

The search releases one state dict (``best_model.pt``) of a network that
takes *encoded* inputs and returns logits. A user holds raw rows — a table's
own columns, or raw images — and wants labels. What turns one into the
other is the workload's **declared** encoding: a table column's declared
range (clip, scale, optional ``log1p``) or declared categories (one-hot),
exactly the functions of :mod:`tunedp.workloads.columns` the training used;
for an image workload its declared ``preprocess``, the very function its
loader applies (pixel scaling, published normalisation constants, the
scattering transform). Nothing here is computed from rows, so the released
model carries no statistic of the protected data beyond its weights.

:class:`ReleasedModel` is that whole path; ``tunedp predict`` runs it on the
output folder, and tracking wraps it in an MLflow pyfunc (the model at
``runs:/<run id>/model``) whose input schema is the raw columns. Both are
rebuilt from a small *recipe* (the workload reference and the model
variant: no code, no pickle) and the state dict, loaded with
``weights_only=True``.

The input example is data-free too: a table row made of each column's
declared lower bound and first category, or an all-zero array. A row of the
protected data would be published with the model, and even a "public" test
row of digits comes from the same collection (issue 10 §6).

Which inputs are raw:

* ``kind: csv`` tables and ``adult``: the declared columns, by name (other
  columns of the row are ignored, the label column among them);
* a workload that declares a raw input (``raw_input_shape``, ``raw_input_range``,
  ``preprocess``; the built-in image workloads): raw examples as the user holds
  them — Fashion-MNIST and MNIST: 28 × 28 pixels 0..255 as stored, digits:
  8 × 8 values 0..16 — which the model preprocesses itself;
* every other workload (custom workloads without that declaration): the
  array the network takes, of the workload's declared ``input_shape``.

Imports torch and numpy (never MLflow, never pandas: :mod:`tunedp.observe.mlflow_model`
adapts this to MLflow's data frames).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from tunedp.errors import UserFacingError
from tunedp.workloads import CsvWorkloadSpec, Workload, WorkloadReference
from tunedp.workloads.columns import one_hot, scale_by_range
from tunedp.workloads.csv_table import NumericColumn

__all__ = [
    "RECIPE_FORMAT",
    "ArrayInput",
    "CategoricalInput",
    "NumericInput",
    "Prediction",
    "PredictionError",
    "RawArrayInput",
    "ReleasedModel",
    "TableInput",
    "probability_column",
]

#: The format of ``recipe.json``, the description a released model is rebuilt from.
RECIPE_FORMAT = "tunedp-released-model/1"

LABEL_COLUMN = "label"


class PredictionError(UserFacingError):
    """Rows the released model cannot score (one line naming the column and the row; never the value)."""


def probability_column(name: str) -> str:
    return f"probability_{name}"


# ---------------------------------------------------------------------------- raw inputs


@dataclass(frozen=True)
class NumericInput:
    """A number, clipped to the declared ``[low, high]`` and scaled by it (``log1p`` first when declared)."""

    name: str
    low: float
    high: float
    log1p: bool = False

    def encode(self, cells: Sequence[Any]) -> npt.NDArray[np.float64]:
        values = np.empty(len(cells), dtype=np.float64)
        for row, cell in enumerate(cells, start=1):
            try:
                value = float(cell.strip() if isinstance(cell, str) else cell)
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value):
                raise PredictionError(f"column {self.name!r}, row {row}: not a finite number; fix the row")
            values[row - 1] = value
        return scale_by_range(values, self.low, self.high, log1p=self.log1p)[:, None]


@dataclass(frozen=True)
class CategoricalInput:
    """One-hot over the declared ``categories``; anything else goes to "other" (``other``) or encodes as zeros."""

    name: str
    categories: tuple[str, ...]
    other: bool

    def encode(self, cells: Sequence[Any]) -> npt.NDArray[np.float64]:
        return one_hot([_text(cell) for cell in cells], self.categories, other=self.other)


def _text(cell: Any) -> str:
    """A cell as the training read it: the file's text, stripped; a missing value is an empty cell."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return ""
    return str(cell).strip()


@dataclass(frozen=True, kw_only=True)
class TableInput:
    """Raw table rows, by column name, encoded column after column in the training's order."""

    columns: tuple[NumericInput | CategoricalInput, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def encode(self, cells: Mapping[str, Sequence[Any]]) -> npt.NDArray[np.float32]:
        """``{column: values}`` → float32 features; a declared column missing from ``cells`` is an error."""
        missing = [name for name in self.names if name not in cells]
        if missing:
            raise PredictionError(
                f"the rows have no column {missing[0]!r}; the model reads the columns {', '.join(self.names)}"
            )
        sizes = {len(cells[name]) for name in self.names}
        if len(sizes) != 1:
            raise PredictionError("the columns hold different numbers of rows")
        parts = [column.encode(cells[column.name]) for column in self.columns]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def example(self) -> dict[str, list[Any]]:
        """One data-free row: each numeric column's declared lower bound, each categorical's first category."""
        return {
            c.name: [c.low] if isinstance(c, NumericInput) else [c.categories[0]]  # declared, not data
            for c in self.columns
        }


@dataclass(frozen=True, kw_only=True)
class ArrayInput:
    """Arrays of the workload's declared per-example shape (the network's own input)."""

    shape: tuple[int, ...]

    def encode(self, array: Any) -> npt.NDArray[np.float32]:
        values = np.asarray(array, dtype=np.float32)
        if values.shape == self.shape:
            values = values[None]
        if tuple(values.shape[1:]) != self.shape:
            raise PredictionError(
                f"inputs have shape {tuple(values.shape[1:])} per example but the model takes {self.shape}"
            )
        return values

    def example(self) -> npt.NDArray[np.float32]:
        return np.zeros((1, *self.shape), dtype=np.float32)


@dataclass(frozen=True, kw_only=True)
class RawArrayInput:
    """Raw examples as a user holds them, turned into the network's input by the workload's declared ``preprocess``.

    Takes ``(n, *shape)`` or one example of ``shape``, of integers (uint8
    pixels as an idx file stores them) or floats, every value within the
    declared ``[low, high]`` — for the 28 × 28 image workloads the pixels as
    stored, 0..255: not scaled to [0, 1], not standardised. A value outside
    the range (or not finite) is refused in one line; a float image already
    scaled to [0, 1] lies inside the range and cannot be told apart, hence
    the statement here. ``preprocess`` runs on ``chunk`` examples at a time
    (the scattering transform needs ≈ 1 MB per image).
    """

    #: A workload that declares ``raw_input_shape``, ``raw_input_range`` and ``preprocess``.
    workload: Workload
    chunk: int = 256

    @property
    def shape(self) -> tuple[int, ...]:
        """The declared per-example raw shape (``raw_input_shape``)."""
        assert self.workload.raw_input_shape is not None  # raw_input_of builds this only for a declaring workload
        return tuple(self.workload.raw_input_shape)

    @property
    def low(self) -> float:
        assert self.workload.raw_input_range is not None
        return float(self.workload.raw_input_range[0])

    @property
    def high(self) -> float:
        assert self.workload.raw_input_range is not None
        return float(self.workload.raw_input_range[1])

    def encode(self, array: Any) -> npt.NDArray[np.float32]:
        values = np.asarray(array)
        if values.dtype.kind not in "uif":
            raise PredictionError(f"inputs are of type {values.dtype}; give numbers (uint8 or float)")
        if values.shape == self.shape:
            values = values[None]
        if values.ndim != len(self.shape) + 1 or tuple(values.shape[1:]) != self.shape:
            raise PredictionError(
                f"inputs have shape {tuple(values.shape)} but the model takes raw examples of shape {self.shape} "
                f"(n × {' × '.join(map(str, self.shape))}, or one of them)"
            )
        raw = values.astype(np.float32)
        if values.size and not (np.isfinite(raw).all() and values.min() >= self.low and values.max() <= self.high):
            raise PredictionError(
                f"inputs hold values outside {self.low:g}..{self.high:g}, the raw range the model takes; "
                "give the raw values as stored (images: the pixels, not rescaled or standardised)"
            )
        parts = [
            self.workload.preprocessed(torch.from_numpy(raw[start : start + self.chunk])).numpy()
            for start in range(0, raw.shape[0], self.chunk)
        ]
        if not parts:
            return np.zeros((0, *self.workload.input_shape), dtype=np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    def example(self) -> npt.NDArray[np.float32]:
        """One all-zero raw example (data-free; inside every declared range that contains 0, else ``low``)."""
        fill = 0.0 if self.low <= 0.0 <= self.high else self.low
        return np.full((1, *self.shape), fill, dtype=np.float32)


RawInput = TableInput | ArrayInput | RawArrayInput


def raw_input_of(workload: WorkloadReference) -> RawInput:
    """What the released model of ``workload`` takes, from the workload's declaration alone (no data read)."""
    if isinstance(workload, CsvWorkloadSpec):
        columns: list[NumericInput | CategoricalInput] = []
        for name, column in workload.columns.items():
            if isinstance(column, NumericColumn):
                low, high = column.range
                columns.append(NumericInput(name, float(low), float(high), column.log1p))
            else:  # tunedp.workloads.csv_table: an undeclared value goes to the extra "other" column
                columns.append(CategoricalInput(name, column.categories, other=True))
        return TableInput(columns=tuple(columns))
    if workload == "adult":
        from tunedp.workloads.adult import CATEGORIES, LOG1P, NUMERIC, NUMERIC_RANGES

        numeric = [NumericInput(name, *NUMERIC_RANGES[name], log1p=name in LOG1P) for name in NUMERIC]
        categorical = [CategoricalInput(name, values, other=False) for name, values in CATEGORIES.items()]
        return TableInput(columns=(*numeric, *categorical))
    from tunedp.workloads import resolve_workload

    declared = resolve_workload(workload)
    if declared.raw_input_shape is None or declared.raw_input_range is None:
        return ArrayInput(shape=tuple(declared.input_shape))
    return RawArrayInput(workload=declared)


def class_names_of(workload: WorkloadReference) -> tuple[str, ...]:
    """The labels the model predicts, in class-index order (a table's declared classes, else the index)."""
    if isinstance(workload, CsvWorkloadSpec):
        return tuple(workload.classes)
    if workload == "adult":
        return ("<=50K", ">50K")  # label 1 is >50K (tunedp.workloads.adult_torch.label_of)
    from tunedp.workloads import resolve_workload

    return tuple(str(k) for k in range(resolve_workload(workload).sizes.classes))


def build_network(workload: WorkloadReference, variant: str) -> nn.Module:
    """A fresh network of ``variant``; for a csv table from its declared spec alone (its file is not read)."""
    if isinstance(workload, CsvWorkloadSpec):
        from tunedp.workloads.csv_table_torch import build_model

        return build_model(workload.model_dump_json(), variant)
    from tunedp.workloads import resolve_workload

    return resolve_workload(workload).build_model(variant)


# ---------------------------------------------------------------------------- the model


@dataclass(frozen=True, kw_only=True)
class Prediction:
    """Predicted labels and every class's probability, one row per input row."""

    classes: tuple[str, ...]
    probabilities: npt.NDArray[np.float64]

    @property
    def labels(self) -> list[str]:
        return [self.classes[k] for k in np.argmax(self.probabilities, axis=1)]

    def columns(self) -> dict[str, list[Any]]:
        """``label`` and ``probability_<class>`` columns (what ``tunedp predict`` writes and the pyfunc returns)."""
        table: dict[str, list[Any]] = {LABEL_COLUMN: self.labels}
        for k, name in enumerate(self.classes):
            table[probability_column(name)] = [float(p) for p in self.probabilities[:, k]]
        return table


@dataclass(frozen=True, kw_only=True)
class ReleasedModel:
    """The released network (eval mode, CPU) with what turns raw inputs into its inputs."""

    workload: WorkloadReference
    variant: str
    network: nn.Module
    raw_input: RawInput
    classes: tuple[str, ...]

    @classmethod
    def load(cls, workload: WorkloadReference, variant: str | None, weights: Path) -> ReleasedModel:
        """``workload``'s network (``variant``; ``None``: the default) with the state dict in ``weights``."""
        if variant is None:
            variant = _default_variant(workload)
        network = build_network(workload, variant)
        network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        network.eval()
        return cls(
            workload=workload,
            variant=variant,
            network=network,
            raw_input=raw_input_of(workload),
            classes=class_names_of(workload),
        )

    @classmethod
    def from_recipe(cls, recipe: Path, weights: Path) -> ReleasedModel:
        """The model a ``recipe.json`` (see :meth:`recipe`) and a state dict describe."""
        document = json.loads(recipe.read_text(encoding="utf-8"))
        if document.get("format") != RECIPE_FORMAT:
            raise PredictionError(f"{recipe} is not a tunedp released-model recipe ({RECIPE_FORMAT})")
        return cls.load(workload_of(document["workload"]), document["variant"], weights)

    def recipe(self) -> dict[str, Any]:
        """What rebuilds this model besides its weights: the workload's declaration and the variant."""
        workload = (
            self.workload.model_dump(mode="json") if isinstance(self.workload, CsvWorkloadSpec) else self.workload
        )
        return {"format": RECIPE_FORMAT, "workload": workload, "variant": self.variant}

    def predict(self, rows: Mapping[str, Sequence[Any]] | Any) -> Prediction:
        """Labels and probabilities of raw ``rows``: ``{column: values}`` for a table, else an array.

        An image workload's array is raw images (see :class:`RawArrayInput`: the 28 × 28 workloads take
        ``(n, 28, 28)`` or one ``(28, 28)`` image of pixels 0..255 as stored, uint8 or float).
        """
        if isinstance(self.raw_input, TableInput):
            if not isinstance(rows, Mapping):
                raise PredictionError(f"the model reads table rows with the columns {', '.join(self.raw_input.names)}")
            features = self.raw_input.encode(rows)
        else:
            features = self.raw_input.encode(rows)
        return Prediction(classes=self.classes, probabilities=self.probabilities(features))

    def probabilities(self, features: npt.NDArray[np.float32], *, batch_size: int = 4096) -> npt.NDArray[np.float64]:
        """Softmax of the network's outputs on encoded ``features`` (eval mode, no gradients, in chunks)."""
        chunks = []
        with torch.no_grad():
            for start in range(0, features.shape[0], batch_size):
                logits = self.network(torch.from_numpy(features[start : start + batch_size]))
                chunks.append(torch.softmax(logits.double(), dim=1).numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.classes)))

    def input_example(self) -> dict[str, list[Any]] | npt.NDArray[np.float32]:
        return self.raw_input.example()


def workload_of(document: str | dict[str, Any]) -> WorkloadReference:
    """A workload reference as a report or recipe stores it (a csv spec's path is absolute there)."""
    if isinstance(document, str):
        return document
    return CsvWorkloadSpec.model_validate(document, strict=False)


def _default_variant(workload: WorkloadReference) -> str:
    if isinstance(workload, CsvWorkloadSpec):
        return "logreg"  # tunedp.workloads.csv_table: variants ("logreg", "mlp"), the first is the default
    from tunedp.workloads import resolve_workload

    return resolve_workload(workload).default_variant
