"""The times tunedp's MLflow records publish: the search's public time, never one that depends on K.

MLflow stores a run's start and end time, every metric's timestamp, a new
experiment's and a registered version's creation time, the released model's
``utc_time_created``, and (in a local store) the database's and artifact
folders' modification times. Under ``release: best``, ``hypo`` and the staged
modes those would record the search's duration, which grows with the secret
number of trials K, so each one is given the public time of
:meth:`tunedp.release.disclosure.Disclosure.public_time` (the start of the
UTC day) here: the clock the tracker stamps records with (:func:`public_ms`,
:func:`public_text`), the local sqlite store's experiment and registry times
MLflow sets from its own clock (:func:`set_experiment_times`,
:func:`set_registry_times`), and the store's files after the search's last
write (:func:`settle_store`). A remote server keeps its own clock (the README
says so; docs/architecture.md §4.1).

It imports no MLflow: it edits a local store's sqlite file and file times only.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from datetime import UTC
from pathlib import Path
from urllib.parse import urlsplit

from tunedp.observe.mlflow_store import sqlite_path
from tunedp.release.disclosure import Disclosure

__all__ = ["public_ms", "public_text", "set_experiment_times", "set_registry_times", "settle_store"]


def public_ms(rule: Disclosure | None) -> int:
    """Now, in ms, as a search under ``rule`` may record it (``None``: no search yet, the wall clock)."""
    if rule is None:
        return int(time.time() * 1000)
    return int(rule.public_time().timestamp() * 1000)


def public_text(rule: Disclosure) -> str:
    """The public time in MLmodel's ``utc_time_created`` format (naive UTC)."""
    return str(rule.public_time().astimezone(UTC).replace(tzinfo=None))


def set_experiment_times(sqlite: Path, experiment_id: str, moment_ms: int) -> None:
    """An experiment this search created, stamped with the search's public time (local sqlite store only).

    MLflow stamps a new experiment with its own clock and offers no way to
    set it. The moment is the search's charge, which does not depend on K,
    but under ``release: best`` everything a search publishes carries the
    day only (docs/architecture.md), so the local store is corrected here;
    a remote server keeps its own clock (the README says so).
    """
    with contextlib.closing(sqlite3.connect(sqlite, timeout=30)) as connection, connection:
        connection.execute(
            "UPDATE experiments SET creation_time = ?, last_update_time = ? WHERE experiment_id = ?",
            (moment_ms, moment_ms, int(experiment_id)),
        )


def set_registry_times(sqlite: Path, name: str, version: str, moment_ms: int, *, registered_model: bool) -> None:
    """A version (and the registered model it updated or created) stamped with the search's public time.

    Local sqlite store only, like :func:`set_experiment_times`: the moment is
    the charge, which does not depend on K, but a K-hiding search publishes
    the UTC day only. A remote registry keeps its own clock (at the charge).
    """
    with contextlib.closing(sqlite3.connect(sqlite, timeout=30)) as connection, connection:
        connection.execute(
            "UPDATE model_versions SET creation_time = ?, last_updated_time = ? WHERE name = ? AND version = ?",
            (moment_ms, moment_ms, name, int(version)),
        )
        connection.execute("UPDATE registered_models SET last_updated_time = ? WHERE name = ?", (moment_ms, name))
        if registered_model:
            connection.execute("UPDATE registered_models SET creation_time = ? WHERE name = ?", (moment_ms, name))


def settle_store(rule: Disclosure, *, artifact_uri: str, artifact_root: Path | None, tracking_uri: str) -> None:
    """After the search's last MLflow write, the local store's files carry the public time.

    The sqlite file and a local artifact folder (``artifact_uri``: the parent
    run's) are written as the search ends; their modification times would
    record when (see :meth:`Disclosure.settle`). A remote server's files are its own.
    """
    artifacts = urlsplit(artifact_uri)
    if artifacts.scheme in ("", "file"):
        run_folder = Path(artifacts.path).parent  # <experiment folder>/<run id>/artifacts
        rule.settle(run_folder)
        if artifact_root is not None and run_folder.parent.parent == artifact_root:
            rule.settle(run_folder.parent, artifact_root, tree=False)
    sqlite = sqlite_path(tracking_uri)
    if sqlite is not None:
        rule.settle(sqlite, sqlite.parent, tree=False)
