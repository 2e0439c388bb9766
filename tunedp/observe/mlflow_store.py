"""Where the MLflow store lives, and how tunedp talks to it without ever holding up a search.

The default store is ``sqlite:///<repo>/mlflow/mlflow.db`` (``$TUNEDP_MLFLOW_DIR``
moves the folder; MLflow 3 refuses plain ``file:`` stores) with artifacts
under ``mlflow/artifacts``; any tracking URI, e.g. a server started by
``tunedp ui`` (:mod:`tunedp.observe.dashboard`), works instead. Besides the
locations this module holds the guards every MLflow call of tunedp runs
under: an HTTP server that does not answer fails in seconds
(:func:`check_reachable`, :func:`fast_failing_http`), a password never reaches
a log line (:func:`redacted`), and MLflow's own INFO chatter stays off the
search's console (:func:`quiet_mlflow_logs`).

It imports no MLflow itself (so ``tunedp ui`` and the store's location load none);
:mod:`tunedp.observe.mlflow_tracker` and :mod:`tunedp.observe.mlflow_registry` use it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import requests

__all__ = [
    "MLFLOW_DIR_ENV",
    "TrackingUnavailable",
    "check_reachable",
    "default_artifact_root",
    "default_mlflow_dir",
    "default_tracking_uri",
    "environment",
    "fast_failing_http",
    "quiet_mlflow_logs",
    "redacted",
    "sqlite_path",
]

MLFLOW_DIR_ENV = "TUNEDP_MLFLOW_DIR"

#: How long to wait for a tracking server to answer before giving up on it.
PROBE_TIMEOUT_S = 3.0
#: Per-request timeout while the tracker talks to a server (no retries).
REQUEST_TIMEOUT_S = 20


# ---------------------------------------------------------------------------- where


def default_mlflow_dir() -> Path:
    """``$TUNEDP_MLFLOW_DIR``, else ``mlflow/`` of the source checkout, else ``$TUNEDP_HOME/mlflow`` (absolute).

    The checkout's folder is the one ``make mlflow`` serves, so searches run
    from anywhere inside the repository land in the dashboard. An installed
    wheel keeps one store per user beside the ledgers (``$TUNEDP_HOME``,
    else ``$XDG_DATA_HOME/tunedp``, else ``~/.local/share/tunedp``), not one
    per working folder: searches started from different folders land in one
    dashboard (``tunedp ui``).
    """
    from tunedp.ledger.sqlite import tunedp_home

    configured = os.environ.get(MLFLOW_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[2]  # <checkout>/tunedp/observe/mlflow_store.py
    if (checkout / "pyproject.toml").is_file() and (checkout / "tunedp").is_dir():
        return checkout / "mlflow"
    return tunedp_home() / "mlflow"


def default_tracking_uri() -> str:
    """The sqlite store in :func:`default_mlflow_dir` (an absolute path: MLflow resolves relative ones per cwd)."""
    return f"sqlite:///{default_mlflow_dir() / 'mlflow.db'}"


def default_artifact_root() -> Path:
    return default_mlflow_dir() / "artifacts"


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else ``None``."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri[len("sqlite:///") :]).expanduser()


# ---------------------------------------------------------------------------- reaching it


class TrackingUnavailable(RuntimeError):
    """The tracking store cannot be reached; the search goes on without it."""


def check_reachable(tracking_uri: str) -> None:
    """Fail in seconds, not minutes, when an HTTP tracking server does not answer.

    Anything that answers (even with an error status) counts as reachable;
    MLflow's own requests then report what is wrong.
    """
    parts = urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https"):
        return
    try:
        requests.get(tracking_uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S)
    except requests.RequestException as error:
        reason = type(error).__name__
        raise TrackingUnavailable(f"no MLflow server answers at {parts.scheme}://{parts.netloc} ({reason})") from None


def redacted(uri: str) -> str:
    """The URI without a password, for a log line."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


@contextmanager
def fast_failing_http() -> Iterator[None]:
    """No retries and a short timeout while the tracker talks to a server (unless the user set them).

    MLflow's defaults retry with backoff for minutes; a search whose server is
    down should say so at once and carry on.
    """
    with environment(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(REQUEST_TIMEOUT_S)):
        yield


@contextmanager
def environment(**settings: str) -> Iterator[None]:
    """Set environment variables the user has not set, for the duration of the block."""
    added = [key for key in settings if key not in os.environ]
    for key in added:
        os.environ[key] = settings[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


@contextmanager
def quiet_mlflow_logs(level: int = logging.WARNING) -> Iterator[None]:
    """MLflow and alembic announce store creation at INFO; a search's console keeps to its own lines."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), level))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
