"""The workload contract: what a trial trains on, with which model, judged by which metric.

A :class:`Workload` bundles a protected dataset (whose privacy ledger a search
charges), its declared split sizes (read from :mod:`trials.sizes`, the numbers
the accounting uses before any data is read), a loader that returns tensors,
a model factory with named variants, the per-example loss DP-SGD clips, and
the metric a trial reports. The search driver and the optimizers only ever see
this object, so adding a workload means writing one file in ``trials/`` and
one line in the registry — never touching the driver.

Two rules every workload keeps, because the privacy guarantee depends on them:

* the train/validation/test split is a fixed-seed permutation — it depends on
  the number of rows only, never on their content — and the loaded sizes must
  equal the declared ones (:func:`check_sizes`);
* preprocessing uses fixed constants (no statistic is computed from the
  private data at run time), so it is the same function on neighbouring
  datasets.

Models contain no BatchNorm (it mixes examples, so per-example gradients are
undefined for it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from trials.sizes import DECLARED_SIZES, DeclaredSizes

__all__ = [
    "Split",
    "Splits",
    "Workload",
    "accuracy",
    "carve",
    "check_sizes",
    "correct_count",
    "cross_entropy_per_example",
    "fixed_permutation",
    "require_rows",
]


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


def cross_entropy_per_example(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example cross entropy (``reduction="none"``): DP-SGD clips each example's gradient."""
    return F.cross_entropy(outputs, targets, reduction="none")


def correct_count(outputs: torch.Tensor, targets: torch.Tensor) -> int:
    """How many argmax predictions are right: the sensitivity-1 count a private score release noises."""
    return int((outputs.argmax(dim=-1) == targets).sum().item())


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of correct argmax predictions."""
    if targets.numel() == 0:
        raise ValueError("accuracy of an empty split is undefined")
    return correct_count(outputs, targets) / int(targets.numel())


def fixed_permutation(n: int, seed: int) -> npt.NDArray[np.int64]:
    """A permutation of ``range(n)`` that depends on ``n`` and ``seed`` only (never on the data)."""
    return np.random.default_rng(seed).permutation(n).astype(np.int64)


def carve(sizes: dict[str, int], seed: int) -> dict[str, npt.NDArray[np.int64]]:
    """Row indices of each named split: consecutive blocks of one fixed-seed permutation, each sorted.

    The rows a file holds must number exactly ``sum(sizes.values())`` (see
    :func:`require_rows`), so the split is a function of the declared sizes and
    the seed alone.
    """
    order = fixed_permutation(sum(sizes.values()), seed)
    blocks: dict[str, npt.NDArray[np.int64]] = {}
    start = 0
    for name, size in sizes.items():
        blocks[name] = np.sort(order[start : start + size])
        start += size
    return blocks


def require_rows(name: str, source: str, found: int, expected: int) -> None:
    """Refuse a data file whose row count differs from what the declared sizes assume."""
    if found != expected:
        raise ValueError(
            f"workload {name!r}: {source} holds {found} rows but trials/sizes.py assumes {expected}; "
            "the data files differ from the expected release"
        )


def check_sizes(name: str, splits: Splits) -> Splits:
    """Refuse data whose split sizes differ from the declared ones the accounting already used."""
    declared = DECLARED_SIZES[name]
    for split_name in ("train", "validation", "test"):
        split: Split = getattr(splits, split_name)
        want = declared[split_name]
        if split.inputs.shape[0] != want or split.targets.shape[0] != want:
            raise ValueError(
                f"workload {name!r}: loaded {split_name} split has {split.targets.shape[0]} examples "
                f"but trials/sizes.py declares {want}; the data files differ from the expected release"
            )
        if split.inputs.dtype != torch.float32 or split.targets.dtype != torch.int64:
            raise TypeError(f"workload {name!r}: {split_name} must be float32 inputs and int64 targets")
    return splits


@dataclass(frozen=True, kw_only=True)
class Workload:
    """One trainable task. Construct one per module in ``trials/`` as ``WORKLOAD``.

    ``loader`` returns the (cached) splits; ``model_factory`` builds a freshly
    initialised model for a variant name (the first entry of ``variants`` is the
    default). Seed torch before :meth:`build_model` for reproducible weights.
    """

    name: str
    dataset: str
    variants: tuple[str, ...]
    loader: Callable[[], Splits]
    model_factory: Callable[[str], nn.Module]
    metric_name: str = "accuracy"
    #: Shape of one example's input (no batch axis), declared so that a search's
    #: pre-flight can run a step on a synthetic batch without reading any row.
    input_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.name not in DECLARED_SIZES:
            raise ValueError(f"workload {self.name!r} has no entry in trials/sizes.py DECLARED_SIZES")
        if DECLARED_SIZES[self.name]["dataset"] != self.dataset:
            raise ValueError(f"workload {self.name!r}: dataset differs from trials/sizes.py")
        if not self.variants:
            raise ValueError(f"workload {self.name!r} declares no model variants")

    @property
    def sizes(self) -> DeclaredSizes:
        """The declared sizes (known without reading data)."""
        return DECLARED_SIZES[self.name]

    @property
    def train_size(self) -> int:
        """N of the training split: the population Poisson sampling runs over."""
        return self.sizes["train"]

    @property
    def validation_size(self) -> int:
        return self.sizes["validation"]

    @property
    def test_size(self) -> int:
        return self.sizes["test"]

    @property
    def num_classes(self) -> int:
        return self.sizes["classes"]

    @property
    def default_variant(self) -> str:
        return self.variants[0]

    def load(self) -> Splits:
        """The train/validation/test tensors, checked against the declared sizes.

        Loaders cache per process, so the tensors are shared between calls:
        do not modify them in place.
        """
        return check_sizes(self.name, self.loader())

    def build_model(self, variant: str | None = None) -> nn.Module:
        """A freshly initialised model; ``None`` picks the default variant."""
        chosen = self.default_variant if variant is None else variant
        if chosen not in self.variants:
            raise ValueError(
                f"workload {self.name!r} has no model variant {chosen!r}; known: {', '.join(self.variants)}"
            )
        return self.model_factory(chosen)

    @staticmethod
    def per_example_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-example losses, shape ``(batch,)``: what the private optimizer differentiates and clips."""
        return cross_entropy_per_example(outputs, targets)

    @staticmethod
    def metric(outputs: torch.Tensor, targets: torch.Tensor) -> float:
        """The reported score (accuracy; higher is better)."""
        return accuracy(outputs, targets)

    @staticmethod
    def correct(outputs: torch.Tensor, targets: torch.Tensor) -> int:
        """Number of correct predictions (what a private validation release adds noise to)."""
        return correct_count(outputs, targets)

    @staticmethod
    def predict(model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 4096) -> torch.Tensor:
        """Model outputs on ``inputs`` in eval mode without gradients, in bounded-memory chunks."""
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
