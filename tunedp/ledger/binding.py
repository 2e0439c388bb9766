"""Which ledger a search charges, and whether the data it reads is the data that ledger protects.

A privacy budget belongs to *data*, not to a name. Two rules close the ways
the same rows could be given a second, fresh budget:

* the ledger is chosen by the workload's declared dataset
  (:func:`protected_dataset`); a config ``dataset:`` or ``--dataset-ledger``
  naming anything else is refused (:func:`require_dataset`) — there is no
  alias mechanism;
* the ledger's header holds a fingerprint of the exact rows the workload
  loads (train and validation together, the protected splits), taken at
  ``budget init``; every search recomputes it and refuses, before charging,
  when it differs (:func:`verify_search_data`). A ledger initialised under
  another name, or on another copy, therefore cannot be charged by a search
  reading these rows unless it was initialised on them on purpose.

Why a *keyed* hash (HMAC-SHA256) and not a plain one: the fingerprint is
displayed (``budget show``, reports), and a plain hash of the dataset is a
membership oracle — an adversary who knows every other row (the threat model
of differential privacy) hashes the dataset with and without a candidate row
and compares. Under a random per-ledger key that the adversary never sees,
the fingerprint reveals nothing about the rows. The key lives in a mode-0600
file beside the ledger (trusted driver state, like the data itself).

The one place that reads data is :func:`protected_splits`; when the workload
contract changes, retarget that function and every rule here follows,
custom workloads included.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tunedp.errors import DataMismatchError, UnboundLedgerError, one_line
from tunedp.ledger.records import Fingerprinter
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.workloads.identity import protected_dataset, require_dataset, workloads_of

if TYPE_CHECKING:
    from tunedp.ledger import LedgerUrl
    from tunedp.workloads import Split, Workload, WorkloadReference

__all__ = [
    "FINGERPRINT_SCHEME",
    "bind_ledger",
    "check_rows_unprotected",
    "create_ledger",
    "fingerprinter",
    "open_search_ledger",
    "protected_fingerprint",
    "protected_splits",
    "verify_cluster_copies",
    "verify_search_data",
]

FINGERPRINT_SCHEME = "hmac-sha256/v1"
"""Prefix of every fingerprint: names the canonical byte form, so a future form cannot be confused with this one."""


def protected_splits(workload: WorkloadReference) -> tuple[Split, Split]:
    """The train and validation splits ``workload`` loads: every row its trials may read privately.

    The single call site into the workload contract (retarget it here). The
    test split is left out: it is not charged to the ledger. A workload that
    transforms another's rows (``fingerprint_workload``) is loaded too, so
    that its own data (a feature cache, say) is built and checked against its
    declaration here, before any charge, and then identified by its source's
    rows.
    """
    from tunedp.workloads import resolve_workload

    try:
        declared = resolve_workload(workload)
        if declared.fingerprint_workload is not None:
            declared.load()
        splits = _identity_workload(workload).load()
    except (OSError, ValueError, TypeError) as error:  # missing files, wrong row counts or sizes
        raise DataMismatchError(
            f"data: workload {workload!r} cannot load its protected data ({one_line(error, 240)}); nothing charged"
        ) from None
    return splits.train, splits.validation


def _identity_workload(workload: WorkloadReference) -> Workload:
    """The workload whose rows identify ``workload``'s data: itself, or the one it declares it transforms.

    A transform workload must declare the same dataset and sizes as its
    source, or it is refused: the fingerprint would then vouch for rows it
    does not describe.
    """
    from tunedp.workloads import resolve_workload

    declared = resolve_workload(workload)
    if declared.fingerprint_workload is None:
        return declared
    source = resolve_workload(declared.fingerprint_workload)
    if source.fingerprint_workload is not None or source.sizes != declared.sizes:
        raise DataMismatchError(
            f"workload {workload!r}: fingerprint_workload {declared.fingerprint_workload!r} must declare the same "
            "dataset and sizes and be fingerprinted by its own rows; fix the workload declaration"
        )
    return source


def _canonical_chunks(splits: Iterable[tuple[str, Split]]) -> Iterable[bytes]:
    """The canonical byte form: per split, a header (name, dtype, shape), then inputs and targets, little-endian."""
    for name, split in splits:
        inputs = np.ascontiguousarray(split.inputs.detach().cpu().numpy(), dtype="<f4")
        targets = np.ascontiguousarray(split.targets.detach().cpu().numpy(), dtype="<i8")
        yield f"{name}|inputs|<f4|{inputs.shape}|targets|<i8|{targets.shape}\n".encode("ascii")
        yield inputs.tobytes()
        yield targets.tobytes()


def _rows_fingerprint(splits: tuple[Split, Split], key: bytes, dataset: str) -> str:
    """HMAC-SHA256 under ``key`` of the canonical bytes of (train, validation), for ``dataset``."""
    train, validation = splits
    mac = hmac.new(key, f"{FINGERPRINT_SCHEME}|{dataset}\n".encode(), hashlib.sha256)
    for chunk in _canonical_chunks((("train", train), ("validation", validation))):
        mac.update(chunk)
    return f"{FINGERPRINT_SCHEME}:{mac.hexdigest()}"


def protected_fingerprint(workload: WorkloadReference, key: bytes) -> str:
    """HMAC-SHA256 under ``key`` of the canonical bytes of ``workload``'s train and validation rows."""
    return _rows_fingerprint(protected_splits(workload), key, protected_dataset(workload))


def check_rows_unprotected(splits: tuple[Split, Split], dataset: str, folder: Path) -> None:
    """Refuse a new ledger for rows that another ledger in ``folder`` already protects (nothing created).

    The same rows declared under a new dataset name would otherwise get a
    fresh budget. Each sqlite ledger in the folder is asked whether its key
    fingerprints these rows, under *its* dataset name, to its bound
    fingerprint (the keys never leave :mod:`tunedp.ledger.sqlite`). Ledgers elsewhere
    (another ``--ledger`` folder or ``$TUNEDP_HOME``) are not seen: a limit
    written in docs/architecture.md §4.5.
    """
    from tunedp.errors import LedgerError

    def fingerprint_as(key: bytes, name: str) -> str:
        return _rows_fingerprint(splits, key, name)

    for other_path in sorted(folder.glob("*.sqlite")):
        try:
            other = PrivacyLedger.open(other_path)
            if other.dataset == dataset or not other.protects_rows(fingerprint_as):
                continue
        except LedgerError:  # not a ledger, or one this check cannot read: nothing to compare with
            continue
        raise DataMismatchError(
            f"--dataset: these rows are already protected by ledger {other.dataset!r} ({other_path}); a new name "
            f"would give them a second budget. Declare dataset: {other.dataset} and charge that ledger"
        )


def fingerprinter(workload: WorkloadReference) -> Fingerprinter:
    """``key → fingerprint`` of ``workload``'s protected rows, the form the ledger calls."""
    return lambda key: protected_fingerprint(workload, key)


def _the_workload_of(dataset: str) -> str | None:
    names = workloads_of(dataset)
    return names[0] if names else None


def create_ledger(
    path: Path | LedgerUrl, *, dataset: str, epsilon: float, delta: float, workload: WorkloadReference | None = None
) -> PrivacyLedger:
    """Create a ledger bound to the data the dataset's workload loads (loads it once).

    A dataset no workload reads gets an unbound ledger: nothing can charge it
    until a workload declares that dataset and ``tunedp budget bind`` runs.
    (Several workloads of one dataset must load the same rows; the first by
    name is the one fingerprinted, and a search of another that loads other
    bytes is refused — conservative.)
    """
    if workload is not None:
        require_dataset(workload, dataset, "--dataset")
    else:
        workload = _the_workload_of(dataset)
    from tunedp.ledger import create_ledger_at

    fingerprint_of: Fingerprinter | None = None
    if workload is not None:
        splits = protected_splits(workload)  # loaded once: the duplicate check and the binding share it
        if isinstance(path, Path):
            check_rows_unprotected(splits, dataset, path.parent)
        name = protected_dataset(workload)

        def fingerprint_of(key: bytes) -> str:
            return _rows_fingerprint(splits, key, name)

    return create_ledger_at(  # type: ignore[return-value]  # the sqlite ledger's interface (tunedp.ledger.Ledger)
        path, dataset=dataset, epsilon=epsilon, delta=delta, fingerprint_of=fingerprint_of
    )


def bind_ledger(ledger: PrivacyLedger, workload: WorkloadReference | None = None) -> WorkloadReference:
    """Bind an unbound or schema-1 ledger to the rows its dataset's workload loads now; returns the workload."""
    if workload is not None:
        require_dataset(workload, ledger.dataset, "--dataset")
    else:
        workload = _the_workload_of(ledger.dataset)
    if workload is None:
        raise DataMismatchError(
            f"--dataset: no workload reads dataset {ledger.dataset!r}, so there is no data to bind ledger "
            f"{ledger.path} to; declare the workload first"
        )
    ledger.bind(fingerprinter(workload))
    return workload


def open_search_ledger(
    workload: WorkloadReference, named: str | None, path: Path | str | LedgerUrl | None
) -> PrivacyLedger:
    """The ledger a search of ``workload`` charges: its dataset's, opened.

    ``path`` is a ledger file or a PostgreSQL URL (``--ledger``); without it,
    ``$TUNEDP_LEDGER_URL``, else the dataset's default file. ``named`` is what
    the config or ``--dataset-ledger`` called the dataset; anything but the
    workload's dataset is refused, and so is a ``--ledger`` file that belongs
    to another dataset. (Typed as the sqlite ledger, whose interface the
    PostgreSQL one shares: :class:`tunedp.ledger.Ledger`.)
    """
    from tunedp.ledger import LedgerUrl, ledger_location, open_ledger

    dataset = require_dataset(workload, named, "dataset")
    location = path if isinstance(path, LedgerUrl) else ledger_location(dataset, path)
    return open_ledger(location, dataset=dataset)  # type: ignore[return-value]


def verify_search_data(ledger: PrivacyLedger, workload: WorkloadReference) -> None:
    """Refuse, before anything is charged, unless ``workload`` reads the data ``ledger`` protects.

    Checks the ledger's dataset is the workload's, then loads the workload's
    protected rows in this (driver) process and compares their keyed
    fingerprint with the ledger's header. What it verifies is the driver's
    view of the data: trials on other machines of an external Ray cluster read
    their own copies, which this check cannot see.
    """
    dataset = protected_dataset(workload)
    if ledger.dataset != dataset:
        raise DataMismatchError(
            f"--ledger: ledger {ledger.path} belongs to dataset {ledger.dataset!r}, but workload {workload!r} "
            f"reads {dataset!r}; use that dataset's ledger"
        )
    if not ledger.bound:
        from tunedp.workloads import CsvWorkloadSpec

        # `budget bind --ledger` finds a registered workload by the dataset; a config's table only by its config.
        raise UnboundLedgerError(str(ledger.path), declared_in_config=isinstance(workload, CsvWorkloadSpec))
    ledger.verify_data(fingerprinter(workload))


NodeFingerprints = Callable[[bytes], list[tuple[str, str | BaseException]]]
"""nonce → (node, its keyed fingerprint of the protected rows, or the error loading them) per node."""


def verify_cluster_copies(workload: WorkloadReference, node_fingerprints: NodeFingerprints) -> None:
    """Refuse, before anything is charged, unless every node of the cluster reads the driver's rows.

    Each node of an external cluster reads its own copy of the data, and a
    trial may run on any of them. The driver draws a fresh random nonce,
    fingerprints its rows under it (HMAC-SHA256, the ledger's byte form), and
    compares with the fingerprint each node computes of its own copy under
    the same nonce. The nonce is never stored, so the digests are useless
    once the search ends, and only the verdict is shown. (The ledger's key
    is not sent: a node needs only to prove its copy equals the driver's,
    which :func:`verify_search_data` has already tied to the ledger.)
    """
    from tunedp.workloads import reference_label

    nonce = secrets.token_bytes(32)
    expected = protected_fingerprint(workload, nonce)
    label = reference_label(workload)
    for node, found in node_fingerprints(nonce):
        if isinstance(found, BaseException):
            raise DataMismatchError(
                f"data: Ray node {node} cannot load workload {label!r} ({one_line(found, 200)}); install the "
                "workload and its data on every node; nothing charged"
            )
        if not hmac.compare_digest(found, expected):
            raise DataMismatchError(
                f"data: Ray node {node} reads different rows for workload {label!r} than the driver; every node "
                "must hold an identical copy of the data; nothing charged"
            )
