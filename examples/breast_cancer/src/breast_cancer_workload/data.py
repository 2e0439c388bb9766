"""Loader and models (imports torch): a few lines each."""

from functools import lru_cache

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from torch import nn

from tunedp import Split, Splits, carve


@lru_cache(maxsize=1)  # every trial in a worker calls load(): read once
def load() -> Splits:
    bunch = load_breast_cancer()
    # A fixed function of each value (no statistic of the rows): log1p, then a fixed scale.
    inputs = torch.from_numpy((np.log1p(np.clip(bunch.data, 0, None)) / 4.0 - 1.0).astype(np.float32))
    targets = torch.from_numpy(bunch.target.astype(np.int64))
    blocks = carve({"train": 400, "validation": 69, "test": 100}, seed=569)  # depends on the count only
    return Splits(**{name: Split(inputs[rows], targets[rows]) for name, rows in blocks.items()})


def build_model(variant: str) -> nn.Module:
    if variant == "linear":
        return nn.Linear(30, 2)
    if variant == "mlp":
        return nn.Sequential(nn.Linear(30, 16), nn.Tanh(), nn.Linear(16, 2))
    raise ValueError(f"breast_cancer has no model variant {variant!r}; known: linear, mlp")
