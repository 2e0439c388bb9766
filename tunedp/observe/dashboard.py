"""The dashboard server of ``tunedp ui``: ``mlflow server`` on tunedp's store, in the foreground.

The server serves the sqlite store and artifact folder of
:func:`tunedp.observe.mlflow_store.default_mlflow_dir` (or a given folder)
with one worker and MLflow 3's job runner off, in its own process group so
that Ctrl-C or SIGTERM stops every process it started. The tests' MLflow
server is started with the same command (:func:`server_command`).

It imports no MLflow (the server is a subprocess, ``python -m mlflow server``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tunedp.observe.mlflow_store import default_mlflow_dir
from tunedp.run.interrupts import sigterm_as_interrupt

__all__ = ["serve_dashboard", "server_command", "server_environment", "stop_server"]


def server_command(*, directory: Path, host: str, port: int) -> list[str]:
    """``mlflow server`` on the sqlite store and artifact folder in ``directory`` (absolute paths)."""
    directory = directory.resolve()
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{directory / 'mlflow.db'}",
        "--default-artifact-root",
        str(directory / "artifacts"),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def server_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: MLflow 3's job runner (for GenAI features) stays off."""
    environment = dict(os.environ if base is None else base)
    environment["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    return environment


def serve_dashboard(
    *, host: str = "127.0.0.1", port: int = 5000, directory: Path | None = None, announce: Callable[[str], None] = print
) -> int:
    """Run the MLflow dashboard in the foreground until it exits or Ctrl-C stops it; returns the exit code.

    The server runs in its own process group (``mlflow server`` starts uvicorn
    as a child), so stopping it stops every process it started.
    """
    directory = (directory or default_mlflow_dir()).resolve()
    (directory / "artifacts").mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        server_command(directory=directory, host=host, port=port),
        env=server_environment(),
        start_new_session=True,
    )
    shown = f"[{host}]" if ":" in host else host
    announce(f"MLflow dashboard: http://{shown}:{port}  (store {directory / 'mlflow.db'}; Ctrl-C stops it)")
    # SIGTERM (a service manager, `kill`) stops the server as Ctrl-C does,
    # instead of leaving its process group running without us.
    with sigterm_as_interrupt():
        try:
            return process.wait()
        except KeyboardInterrupt:
            stop_server(process)
            announce("MLflow dashboard stopped")
            return 0


def stop_server(process: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """SIGTERM to the server's process group, SIGKILL if it has not exited after ``timeout_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=timeout_s)
            return
        except subprocess.TimeoutExpired:
            continue
