"""examples/breast_cancer: a user's own workload package passes tunedp's workload contract.

Installing it (by its entry point) and searching it from outside the
repository, in a fresh venv with the tunedp wheel, is ``tests/e2e/test_wheel.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tunedp.testing import WorkloadContract

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "breast_cancer"
sys.path.insert(0, str(EXAMPLE / "src"))  # the fast tests use the source folder directly


class TestExampleWorkload(WorkloadContract):
    reference = "breast_cancer_workload.workload:WORKLOAD"
