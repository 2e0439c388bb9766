"""The torch half of the ``csv`` workload (see :mod:`tunedp.workloads.csv_table`)."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from tunedp.workloads.contract import Split, Splits
from tunedp.workloads.csv_table import CsvWorkloadSpec, encode_table, split_indices
from tunedp.workloads.mlp import TanhMlp

__all__ = ["build_model", "load"]


@lru_cache(maxsize=4)
def load(spec_json: str) -> Splits:
    """The encoded table as tensors, carved by the fixed permutation of its row count (cached per process)."""
    spec = CsvWorkloadSpec.model_validate_json(spec_json)
    table = encode_table(spec)
    features, labels = torch.from_numpy(table.features), torch.from_numpy(table.labels)
    blocks = {name: torch.from_numpy(rows) for name, rows in split_indices(spec, int(labels.shape[0])).items()}
    return Splits(
        train=Split(features[blocks["train"]], labels[blocks["train"]]),
        validation=Split(features[blocks["validation"]], labels[blocks["validation"]]),
        test=Split(features[blocks["test"]], labels[blocks["test"]]),
    )


def build_model(spec_json: str, variant: str) -> nn.Module:
    """``"logreg"``: one linear layer; ``"mlp"``: ``hidden`` tanh units."""
    spec = CsvWorkloadSpec.model_validate_json(spec_json)
    classes = len(spec.classes)
    if variant == "logreg":
        return nn.Linear(spec.feature_width, classes)
    if variant == "mlp":
        return TanhMlp(spec.feature_width, spec.hidden, classes)
    raise ValueError(f"csv has no model variant {variant!r}; known: logreg, mlp")
