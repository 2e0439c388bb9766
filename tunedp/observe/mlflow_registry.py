"""The MLflow Model Registry side of ``register``: checked before the charge, a version created at it.

A search that registers (``--register NAME``, ``register=NAME``) makes its
released model a version of NAME. The registry is checked before anything is
charged (:func:`check_registry`), so a search is never found unable to
register after it spent the budget. The version is created at the charge
(:func:`create_version`), not at the end: the registry stamps versions with
the server's clock, and a time at the search's end would publish its
duration, so K. At the end only a tag and an alias change
(:func:`settle_version`), which carry no time (docs/architecture.md §4.1).

Loads MLflow. :func:`tunedp.observe.mlflow_tracker.registering` adds the tracker that registers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tunedp.errors import UserFacingError, one_line
from tunedp.observe.mlflow_records import (
    MODEL_NAME,
    RELEASED_ALIAS,
    TAG_DATASET,
    TAG_RELEASE_STATUS,
    version_description,
    version_tags,
)
from tunedp.observe.mlflow_store import check_reachable, fast_failing_http, quiet_mlflow_logs, redacted, sqlite_path

if TYPE_CHECKING:
    from tunedp.ledger.sqlite import Charge, PrivacyLedger
    from tunedp.planning.single_stage import SearchPlan

__all__ = ["RegistryUnavailable", "check_registry", "create_version", "settle_version", "version_of"]


class RegistryUnavailable(UserFacingError):
    """``register``: the Model Registry cannot take the version (refused before the charge)."""


def check_registry(tracking_uri: str, name: str) -> None:
    """Before the charge: ``name`` is a valid registered-model name and the registry answers.

    A search that registers is refused here, in one line, rather than found
    unable to register after it spent the budget.
    """
    from mlflow.utils.validation import _validate_model_name

    try:
        _validate_model_name(name)
    except MlflowException as error:
        raise RegistryUnavailable(f"register: {one_line(error.message)}") from None
    shown = one_line(redacted(tracking_uri), 200)
    try:
        check_reachable(tracking_uri)
        sqlite = sqlite_path(tracking_uri)
        if sqlite is not None:
            sqlite.parent.mkdir(parents=True, exist_ok=True)
        with fast_failing_http(), quiet_mlflow_logs():
            MlflowClient(tracking_uri=tracking_uri).search_registered_models(max_results=1)
    except Exception as error:
        raise RegistryUnavailable(
            f"register: the MLflow Model Registry at {shown} is unreachable ({one_line(error, 160)}); "
            "start the server (tunedp ui) or give another --tracking-uri; nothing was charged"
        ) from None


def create_version(
    client: MlflowClient,
    name: str,
    run_id: str,
    *,
    plan: SearchPlan,
    charge: Charge,
    ledger: PrivacyLedger,
    spent: float,
) -> tuple[str, bool]:
    """A new version of ``name``, created now — at the charge, before any trial runs; (version, model created).

    The registry stamps a version's creation and update times with the
    server's clock, and no client can set them. Created at the search's
    end they would publish the end time, so (under ``release: best`` and
    the staged modes) the duration and with it the secret K. Created at
    the charge they carry a moment that does not depend on K, and every
    tag is known then: dataset, charged ε, δ, the ledger's total spent.
    The version's source is ``runs:/<run id>/model``, where the model is
    logged when the search releases it; until then (and for a search that
    releases nothing) the version is tagged ``tunedp.release_status``
    ``pending`` (``failed``, ``interrupted``), and the alias ``released``
    moves to it only once its model is there. Tags and aliases carry no
    time in MLflow's registry; a local sqlite store's times are set to
    the search's public time by the caller
    (:func:`tunedp.observe.mlflow_times.set_registry_times`), like a new experiment's.
    """
    created = False
    try:
        client.create_registered_model(
            name, tags={TAG_DATASET: ledger.dataset}, description="Released by tunedp searches."
        )
        created = True
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(
        name,
        source=f"runs:/{run_id}/{MODEL_NAME}",
        run_id=run_id,
        tags=version_tags(plan, charge, ledger, spent),
        description=version_description(plan, charge, ledger, spent, run_id),
        await_creation_for=0,
    )
    return str(version.version), created


def version_of(client: MlflowClient, run_id: str) -> tuple[str, str] | None:
    """The registered model version whose source is ``run_id``'s model (a resumed search's), if any."""
    for version in client.search_model_versions(f"run_id = '{run_id}'"):
        if version.source == f"runs:/{run_id}/{MODEL_NAME}":
            return str(version.name), str(version.version)
    return None


def settle_version(client: MlflowClient, registered: tuple[str, str], *, released: bool, interrupted: bool) -> None:
    """The registered version's release status (a tag), and the ``released`` alias once its model is there.

    Neither a tag nor an alias carries a time in MLflow's registry, so
    nothing here publishes when the search ended.
    """
    name, version = registered
    status = "released" if released else ("interrupted" if interrupted else "failed")
    client.set_model_version_tag(name, version, TAG_RELEASE_STATUS, status)
    if released:
        client.set_registered_model_alias(name, RELEASED_ALIAS, version)
