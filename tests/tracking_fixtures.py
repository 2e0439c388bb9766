"""A real MLflow server and small digits searches for the tracking and dashboard tests.

The server is the one ``tunedp ui`` runs (``tunedp.observe.dashboard.server_command``:
sqlite store, ``--workers 1``, job execution off) on a free loopback port, in
its own process group so that stopping it by PID stops the uvicorn worker it
starts too. Starting one takes ~20 s on two cores, so the test modules share
one per session (:func:`shared_mlflow_server`, stopped at session end).

Everything is read back through MLflow's REST API, as a user's tool would.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tunedp.config import SearchConfig, parse_config
from tunedp.observe.dashboard import server_command, server_environment

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
SERVER_START_TIMEOUT_S = 120.0


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MlflowServer:
    """A running ``mlflow server``: its URL, folder and process."""

    url: str
    directory: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, directory: Path) -> MlflowServer:
        directory.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log_path = directory / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                server_command(directory=directory, host="127.0.0.1", port=port),
                env=server_environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches uvicorn too
            )
        server = cls(url=f"http://127.0.0.1:{port}", directory=directory, process=process, log_path=log_path)
        server.wait_healthy()
        return server

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server not healthy after {SERVER_START_TIMEOUT_S:.0f}s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the server's process group (by its PID), SIGKILL after 15 s."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=15)
                break
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # ------------------------------------------------------------------ REST

    def get(self, endpoint: str, **params: Any) -> dict[str, Any]:
        response = requests.get(f"{self.url}{endpoint}", params=params, timeout=30)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        response = requests.post(f"{self.url}{endpoint}", json=body, timeout=30)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def experiment_id(self, name: str) -> str:
        return str(
            self.get("/api/2.0/mlflow/experiments/get-by-name", experiment_name=name)["experiment"]["experiment_id"]
        )

    def search_runs(self, experiment_id: str, filter_string: str = "") -> list[Run]:
        body = {"experiment_ids": [experiment_id], "filter": filter_string, "max_results": 1000}
        return [Run.from_json(run) for run in self.post("/api/2.0/mlflow/runs/search", body).get("runs", [])]

    def artifacts(self, run_id: str, path: str = "") -> set[str]:
        listing = self.get("/api/2.0/mlflow/artifacts/list", run_id=run_id, path=path)
        return {entry["path"] for entry in listing.get("files", [])}

    def artifact_bytes(self, run_id: str, path: str) -> bytes:
        response = requests.get(f"{self.url}/get-artifact", params={"path": path, "run_uuid": run_id}, timeout=30)
        response.raise_for_status()
        return response.content

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        history = self.get("/api/2.0/mlflow/metrics/get-history", run_id=run_id, metric_key=key)
        return sorted((int(m.get("step", 0)), float(m["value"])) for m in history.get("metrics", []))


@dataclass(frozen=True)
class Run:
    """One run as the REST API returns it, flattened for assertions."""

    run_id: str
    name: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        info, body = data["info"], data.get("data", {})
        return cls(
            run_id=info["run_id"],
            name=info.get("run_name", ""),
            status=info["status"],
            params={p["key"]: p["value"] for p in body.get("params", [])},
            metrics={m["key"]: float(m["value"]) for m in body.get("metrics", [])},
            tags={t["key"]: t["value"] for t in body.get("tags", [])},
        )


_SHARED: dict[str, MlflowServer] = {}

#: Every test that uses the shared server (or a module fixture built on it) carries this mark:
#: ``--dist loadgroup`` then runs them all on one xdist worker, so the server starts once in the
#: session and each module fixture's searches run once, instead of once on each worker.
ON_SHARED_SERVER = pytest.mark.xdist_group("mlflow_server")


def shared_mlflow_server(tmp_path_factory: pytest.TempPathFactory, config: pytest.Config) -> MlflowServer:
    """One server for every module that asks in this session; stopped when the session ends."""
    server = _SHARED.get("server")
    if server is None or server.process.poll() is not None:
        server = MlflowServer.start(tmp_path_factory.mktemp("mlflow-server"))
        _SHARED["server"] = server
        config.add_cleanup(server.stop)
    return server


# ---------------------------------------------------------------------------- configs


def config_dict(**sections: Any) -> dict[str, Any]:
    """search_spaces/example.yaml with short trials (20 steps) and an ε = 8 budget; ``sections`` replace."""
    data = yaml.safe_load((REPO / "search_spaces" / "example.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    data["budget"] = {"epsilon": 8.0, "delta": 1e-5}
    data["training"] = {"steps": 20, "expected_batch_size": 120, "evaluations": 1}
    for key, value in sections.items():
        data[key] = copy.deepcopy(value)
    return data


def small_config(**sections: Any) -> SearchConfig:
    return parse_config(config_dict(**sections), source="test")


RANDOM_BEST = {"search": {"mode": "random", "expected_trials": 2, "shape": 1.0, "release": "best"}}
ADAPTIVE = {
    "search": {"mode": "adaptive", "max_trials": 3, "startup_trials": 2},
    "training": {"steps": 20, "expected_batch_size": 120, "evaluations": 2},
}
GRID = {
    "search": {"mode": "grid"},
    "space": {
        "coupling": "lr_clip",
        "params": {
            "step_size": {"distribution": "choice", "values": [2.0]},
            "clip_norm": {"distribution": "fixed", "value": 1.0},
            "momentum": {"distribution": "choice", "values": [0.5, 0.9]},
        },
    },
}
