"""Which dataset a workload reads: the identity a budget belongs to (torch-free, no data read).

A ledger is per protected dataset, not per workload or per name a user
types: every workload declares its ``dataset``, and these functions answer
"which ledger does a search of this workload charge?" and refuse an alias for
it. They sit with the workloads (the declarations they read) so that the
config can check ``dataset:`` without importing the ledger.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunedp.errors import DataMismatchError, one_line

if TYPE_CHECKING:
    from tunedp.workloads import WorkloadReference

__all__ = ["protected_dataset", "require_dataset", "workload_is_known", "workloads_of"]


def protected_dataset(workload: WorkloadReference) -> str:
    """The dataset whose ledger a search of ``workload`` charges: the workload's declared dataset (torch-free)."""
    from tunedp.errors import ConfigError
    from tunedp.workloads import CsvWorkloadSpec, resolve_workload

    if isinstance(workload, CsvWorkloadSpec):
        return workload.dataset
    try:
        return resolve_workload(workload).dataset
    except ConfigError as error:
        # The ConfigError already names the field (``workload: …``); keep it one line, not prefixed twice.
        message = one_line(str(error), 240).removeprefix("workload: ")
        raise DataMismatchError(f"workload: {message}; it has no protected dataset") from None


def workload_is_known(workload: WorkloadReference) -> bool:
    """Whether ``workload`` resolves to a declared workload (unknown names are refused elsewhere, by plan)."""
    try:
        protected_dataset(workload)
    except DataMismatchError:
        return False
    return True


def workloads_of(dataset: str) -> list[str]:
    """The workloads reachable by name (built-ins, entry points) whose protected data is ``dataset``."""
    from tunedp.workloads import available_workloads

    return sorted(
        name for name in available_workloads() if workload_is_known(name) and protected_dataset(name) == dataset
    )


def require_dataset(workload: WorkloadReference, named: str | None, field: str) -> str:
    """The workload's dataset; refuse (one line naming ``field``) a different name for it."""
    dataset = protected_dataset(workload)
    if named is not None and named != dataset:
        raise DataMismatchError(
            f"{field}: workload {workload!r} reads dataset {dataset!r}, so it charges that dataset's ledger; "
            f"{named!r} is refused (no aliases: a budget belongs to the data) — drop {field}"
        )
    return dataset
