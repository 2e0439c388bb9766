"""Fixtures shared by the accounting tests: a quiet dp_accounting and a place for ledgers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

# dp_accounting logs through absl when it drops a Rényi order whose series does
# not converge (the order is excluded, so ε can only go up); that is noise here.
logging.getLogger("absl").setLevel(logging.ERROR)


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    """Where a test's ledger lives; the file does not exist yet."""
    return tmp_path / "ledgers" / "fashion_mnist.sqlite"
