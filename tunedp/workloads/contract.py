"""The workload contract: what a trial trains on, with which model, judged by which count.

A :class:`Workload` is a *declaration* first: the protected dataset it reads
(whose ledger a search charges), the split sizes the accounting uses before
any data is read, the input shape, the model variants, where each split
comes from (the protected data, or a separate public source) and,
optionally, the raw input a user of the released model holds with the
per-example preprocessing that turns it into the network's input. Building
one imports nothing heavy — its torch parts (loader, model factory, loss,
count, preprocessing) are callables or ``"module:attribute"`` strings resolved on first use — so
``tunedp plan`` resolves a workload without loading torch.

Two rules every workload keeps, because the privacy guarantee depends on them:

* the splits are a fixed function of the row count (a fixed-seed permutation,
  :func:`tunedp.workloads.splits.carve`), never of the rows' content, and the
  loaded sizes equal the declared ones (checked on every :meth:`Workload.load`);
* preprocessing is a fixed function of each row (declared ranges, published
  vocabularies and constants), never a statistic computed from the protected
  rows; a declared ``preprocess`` is the function the loader applies, not a
  copy of it, so the released model prepares raw inputs exactly as training did.

Models contain no BatchNorm (it mixes examples, so per-example gradients are
undefined for it). ``tunedp.testing.WorkloadContract`` checks all of this on
real data; every built-in passes it.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tunedp.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "TEST_OUTSIDE_GUARANTEE",
    "DatasetSizes",
    "Deferred",
    "Split",
    "SplitSource",
    "Splits",
    "Workload",
    "check_delta",
    "require_rows",
]

SplitSource = Literal["protected", "public"]
"""Where a split's rows come from: the protected dataset (the ledger's), or a separate public source."""

TEST_OUTSIDE_GUARANTEE = "exact, outside the ε guarantee"
"""How an exact metric on a test split carved from the protected data is labelled wherever it appears."""


def check_delta_range(delta: float, *, field: str, error: type[Exception] = ConfigError) -> None:
    """0 < δ < 1 (finite), raised as ``error`` naming ``field``: the one place this range is checked."""
    if not (math.isfinite(delta) and 0 < delta < 1):
        raise error(f"{field}: {delta} must be in (0, 1)")


def check_delta(delta: float, protected: int, *, field: str, dataset: str) -> None:
    """δ ≤ 1/n, with n the protected examples the trials touch: the one place this rule lives.

    A δ above 1/n admits mechanisms that release one example in the clear
    with probability δ·n ≥ 1 — no guarantee at all.
    """
    if protected < 1:
        raise ConfigError(f"{field}: dataset {dataset!r} declares no protected examples")
    if delta > 1.0 / protected:
        raise ConfigError(
            f"{field}={delta:g} exceeds 1/n = {1.0 / protected:.3g} for {protected} protected examples "
            f"of dataset {dataset!r}; lower {field}"
        )


@dataclass(frozen=True, kw_only=True)
class DatasetSizes:
    """The declared sizes of a workload's data: all the accounting may know before reading it.

    ``train`` is N of Poisson sampling (q = expected batch / N); ``protected``
    (train + validation) is the n of the δ ≤ 1/n check. A loader whose data
    differs from these numbers is refused on load, never trained on.
    """

    dataset: str
    train: int
    validation: int
    test: int
    classes: int

    def __post_init__(self) -> None:
        if not self.dataset:
            raise ValueError("DatasetSizes.dataset must name the protected dataset")
        for name in ("train", "validation", "test"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DatasetSizes.{name}={value!r} must be an integer >= 1")
        if isinstance(self.classes, bool) or not isinstance(self.classes, int) or self.classes < 2:
            raise ValueError(f"DatasetSizes.classes={self.classes!r} must be an integer >= 2")

    @property
    def protected(self) -> int:
        """Examples the trials touch (train + validation): the n of the δ ≤ 1/n check."""
        return self.train + self.validation

    def training_rows(self, *, on_validation: bool) -> int:
        """N of Poisson sampling: ``train``, plus ``validation`` for a run that trains on it too
        (``training.train_on_validation``). The planner and the trial runner both count N here."""
        return self.train + (self.validation if on_validation else 0)

    def check_delta(self, delta: float, *, field: str = "budget.delta") -> None:
        check_delta(delta, self.protected, field=field, dataset=self.dataset)


@dataclass(frozen=True)
class Split:
    """One split: float32 inputs (first axis = examples) and int64 class labels."""

    inputs: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return int(self.targets.shape[0])


@dataclass(frozen=True, kw_only=True)
class Splits:
    """The three splits of a workload. ``train`` is what Poisson sampling runs over."""

    train: Split
    validation: Split
    test: Split


def require_rows(name: str, source: str, found: int, expected: int) -> None:
    """Refuse a data file whose row count differs from what the declared sizes assume."""
    if found != expected:
        raise ValueError(
            f"workload {name!r}: {source} holds {found} rows but the workload declares {expected}; "
            "the data files differ from the expected release"
        )


def _resolve(reference: Callable[..., Any] | str, what: str) -> Callable[..., Any]:
    """A callable, or the callable a ``"module:attribute"`` string names (imported now)."""
    if not isinstance(reference, str):
        return reference
    module_name, _, attribute = reference.partition(":")
    target = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(target):
        raise TypeError(f"{what} {reference!r} does not name a callable")
    return target  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Deferred:
    """``"module:function"`` with leading arguments bound, imported on the first call.

    Lets a torch-free declaration name a torch function that needs arguments
    known at declaration time (the ``csv`` workload binds its spec).
    """

    reference: str
    args: tuple[Any, ...] = ()

    def __call__(self, *more: Any) -> Any:
        return _resolve(self.reference, "deferred call")(*self.args, *more)


@dataclass(frozen=True, kw_only=True)
class Workload:
    """One trainable task, declared without importing torch.

    ``loader`` returns the splits (cache them per process: every trial of a
    worker calls it); ``model_factory`` builds a freshly initialised model for
    a variant name (the first of ``variants`` is the default); ``loss_fn``
    gives per-example losses (what DP-SGD clips); ``correct_fn`` counts right
    predictions (sensitivity 1: what a private score release noises). Each
    may be a callable or a ``"module:attribute"`` string, imported on first
    use. ``validation_source``/``test_source`` say whether those splits are
    carved from the protected data (the default, and the conservative
    answer) or come from a separate public source; only a public validation
    source admits ``validation: {policy: public}``. ``fingerprint_workload``
    names the workload whose rows identify this one's data (see the field).
    """

    name: str
    sizes: DatasetSizes
    input_shape: tuple[int, ...]
    variants: tuple[str, ...]
    loader: Callable[[], Splits] | str
    model_factory: Callable[[str], nn.Module] | str
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | str = (
        "tunedp.workloads.metrics:cross_entropy_per_example"
    )
    correct_fn: Callable[[torch.Tensor, torch.Tensor], int] | str = "tunedp.workloads.metrics:correct_count"
    validation_source: SplitSource = "protected"
    test_source: SplitSource = "public"
    fingerprint_workload: str | None = None
    """Name of a workload whose protected rows this one's are a fixed per-row function of, or ``None``.

    The ledger fingerprints the data a budget protects. A workload that
    trains on a deterministic, data-independent transform of another's rows
    (ScatterNet features of the Fashion-MNIST images) is fingerprinted by
    *that* workload's rows, so both charge one ledger bound to the same
    fingerprint. It must declare the same dataset and sizes (checked when
    fingerprinting)."""
    data_files: Callable[[], tuple[Path, ...]] | None = None
    """Locates the files ``loader`` reads, without reading them, or ``None`` (nothing to locate).

    A missing file raises ``FileNotFoundError`` (e.g.
    :class:`tunedp.workloads.files.DatasetNotFoundError`) with one line that says how
    to install it. The pre-flight calls it before the charge, and a public
    proxy's files are compared with the protected workload's by these paths."""
    public_source: str | None = None
    """Where a PUBLIC workload's data comes from (shown to users), or ``None``: protected (the default).

    Only a workload declaring a public source may be a ``public_proxy``'s
    stage 1 or take ``tunedp audit --public``: reading it charges nothing."""
    raw_input_shape: tuple[int, ...] | None = None
    """Per-example shape of the raw input a user of the released model holds, or ``None``.

    ``None`` (the default): the released model takes the network's own input
    (``input_shape``). Declared with ``raw_input_range`` and ``preprocess``
    (all three or none): the released model takes raw examples of this shape
    (Fashion-MNIST: 28 × 28 pixels as the IDX files store them) and applies
    ``preprocess`` itself, so a user needs neither the training's scaling nor
    its feature transform."""
    raw_input_range: tuple[float, float] | None = None
    """The declared ``(low, high)`` of raw values (pixels as stored: 0..255); the released model refuses others."""
    preprocess: Callable[[torch.Tensor], torch.Tensor] | str | None = None
    """The per-example map from raw inputs to network inputs: the very function ``loader`` applies, or ``None``.

    Takes a float32 tensor ``(n, *raw_input_shape)`` of values in
    ``raw_input_range`` and returns float32 ``(n, *input_shape)``, row by
    row. It must be a fixed function of one example (declared constants,
    public figures, a fixed transform), never a statistic of the protected
    rows: the released model ships it, and a neighbouring dataset must get
    the same map (docs/architecture.md §4.4)."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("Workload.name must not be empty")
        if not self.variants or len(set(self.variants)) != len(self.variants):
            raise ValueError(f"workload {self.name!r} must declare distinct model variants")
        if not self.input_shape or any(not isinstance(d, int) or d < 1 for d in self.input_shape):
            raise ValueError(f"workload {self.name!r}: input_shape={self.input_shape!r} must be positive integers")
        for field, value in (("validation_source", self.validation_source), ("test_source", self.test_source)):
            if value not in ("protected", "public"):
                raise ValueError(f"workload {self.name!r}: {field}={value!r} must be 'protected' or 'public'")
        self._check_raw_input()

    def _check_raw_input(self) -> None:
        declared = (self.raw_input_shape, self.raw_input_range, self.preprocess)
        if all(value is None for value in declared):
            return
        if any(value is None for value in declared):
            raise ValueError(
                f"workload {self.name!r}: declare raw_input_shape, raw_input_range and preprocess together, or none"
            )
        shape, bounds = self.raw_input_shape or (), self.raw_input_range or (0.0, 0.0)
        if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
            raise ValueError(f"workload {self.name!r}: raw_input_shape={shape!r} must be positive integers")
        if len(bounds) != 2 or not all(math.isfinite(b) for b in bounds) or not bounds[0] < bounds[1]:
            raise ValueError(
                f"workload {self.name!r}: raw_input_range={bounds!r} must be finite (low, high), low < high"
            )

    @property
    def dataset(self) -> str:
        """The protected dataset whose ledger a search on this workload charges."""
        return self.sizes.dataset

    @property
    def default_variant(self) -> str:
        return self.variants[0]

    @property
    def test_label(self) -> str:
        """What the exact test metric is, in words shown next to it."""
        return TEST_OUTSIDE_GUARANTEE if self.test_source == "protected" else "public test split"

    def load(self) -> Splits:
        """The train/validation/test tensors, checked against the declared sizes.

        Loaders cache per process, so the tensors are shared between calls:
        do not modify them in place.
        """
        return self.check(_resolve(self.loader, f"workload {self.name!r}: loader")())

    def check(self, splits: Splits) -> Splits:
        """Refuse data whose split sizes, dtypes or shapes differ from the declaration."""
        import torch

        for split_name in ("train", "validation", "test"):
            split: Split = getattr(splits, split_name)
            want = getattr(self.sizes, split_name)
            if split.inputs.shape[0] != want or split.targets.shape[0] != want:
                raise ValueError(
                    f"workload {self.name!r}: loaded {split_name} split has {split.targets.shape[0]} examples "
                    f"but the workload declares {want}; the data files differ from the expected release"
                )
            if split.inputs.dtype != torch.float32 or split.targets.dtype != torch.int64:
                raise TypeError(f"workload {self.name!r}: {split_name} must be float32 inputs and int64 targets")
            if tuple(split.inputs.shape[1:]) != self.input_shape:
                raise ValueError(
                    f"workload {self.name!r}: {split_name} inputs have shape {tuple(split.inputs.shape[1:])} "
                    f"per example but the workload declares input_shape {self.input_shape}"
                )
        return splits

    def build_model(self, variant: str | None = None) -> nn.Module:
        """A freshly initialised model; ``None`` picks the default variant."""
        chosen = self.default_variant if variant is None else variant
        if chosen not in self.variants:
            raise ValueError(
                f"workload {self.name!r} has no model variant {chosen!r}; known: {', '.join(self.variants)}"
            )
        model: nn.Module = _resolve(self.model_factory, f"workload {self.name!r}: model_factory")(chosen)
        return model

    def preprocessed(self, raw: torch.Tensor) -> torch.Tensor:
        """The network's inputs for raw examples ``(n, *raw_input_shape)``: the declared ``preprocess``, checked."""
        if self.preprocess is None:
            raise ValueError(f"workload {self.name!r} declares no preprocess: its raw input is the network's input")
        inputs: torch.Tensor = _resolve(self.preprocess, f"workload {self.name!r}: preprocess")(raw)
        if tuple(inputs.shape) != (raw.shape[0], *self.input_shape):
            raise ValueError(
                f"workload {self.name!r}: preprocess turned {tuple(raw.shape)} into {tuple(inputs.shape)}, "
                f"not (n, *input_shape) with input_shape {self.input_shape}"
            )
        return inputs

    def per_example_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-example losses, shape ``(batch,)``: what the private optimizer differentiates and clips."""
        losses: torch.Tensor = _resolve(self.loss_fn, f"workload {self.name!r}: loss_fn")(outputs, targets)
        return losses

    def correct(self, outputs: torch.Tensor, targets: torch.Tensor) -> int:
        """Number of correct predictions (what a private validation release adds noise to)."""
        return int(_resolve(self.correct_fn, f"workload {self.name!r}: correct_fn")(outputs, targets))

    def metric(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        """The reported score: the fraction of correct predictions (higher is better)."""
        if targets.shape[0] == 0:
            raise ValueError("accuracy of an empty split is undefined")
        return self.correct(outputs, targets) / int(targets.shape[0])

    @staticmethod
    def predict(model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 4096) -> torch.Tensor:
        """Model outputs on ``inputs`` in eval mode without gradients, in bounded-memory chunks."""
        import torch

        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                chunks = [model(inputs[i : i + batch_size]) for i in range(0, inputs.shape[0], batch_size)]
        finally:
            model.train(was_training)
        return torch.cat(chunks) if chunks else torch.empty(0)

    def evaluate(self, model: nn.Module, split: Split, *, batch_size: int = 4096) -> float:
        """The metric of ``model`` on one split."""
        return self.metric(self.predict(model, split.inputs, batch_size=batch_size), split.targets)
