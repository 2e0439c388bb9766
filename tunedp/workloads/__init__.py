"""Workloads: the contract a trial trains against, the built-ins, the ``csv`` table workload, the registry.

Public names (also re-exported from :mod:`tunedp`)::

    from tunedp.workloads import Workload, DatasetSizes, Split, Splits, carve, resolve_workload

Writing a workload: declare ``WORKLOAD = Workload(name=..., sizes=DatasetSizes(...),
input_shape=..., variants=..., loader=..., model_factory=...)`` in a module,
then name it in a config by import path (``my_pkg.my_module:WORKLOAD``) or
register it as an entry point in the group ``tunedp.workloads``. Run
``tunedp.testing.WorkloadContract`` against it in your own tests. Name the
torch parts as ``"module:function"`` strings to keep ``tunedp plan`` free of
torch. This package imports neither torch nor Ray.
"""

from __future__ import annotations

from tunedp.workloads.contract import (
    TEST_OUTSIDE_GUARANTEE,
    DatasetSizes,
    Split,
    Splits,
    SplitSource,
    Workload,
    check_delta,
    require_rows,
)
from tunedp.workloads.csv_table import CsvWorkloadSpec
from tunedp.workloads.registry import (
    BUILTIN_WORKLOADS,
    ENTRY_POINT_GROUP,
    WorkloadReference,
    available_workloads,
    reference_label,
    resolve_workload,
)
from tunedp.workloads.splits import carve, fixed_permutation

__all__ = [
    "BUILTIN_WORKLOADS",
    "ENTRY_POINT_GROUP",
    "TEST_OUTSIDE_GUARANTEE",
    "CsvWorkloadSpec",
    "DatasetSizes",
    "Split",
    "SplitSource",
    "Splits",
    "Workload",
    "WorkloadReference",
    "available_workloads",
    "carve",
    "check_delta",
    "fixed_permutation",
    "reference_label",
    "require_rows",
    "resolve_workload",
]
