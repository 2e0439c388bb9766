"""``tunedp ui``: SIGTERM stops the MLflow server it started (was: the server kept running without us)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

TUNEDP = str(Path(sys.executable).with_name("tunedp"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_sigterm_stops_the_dashboard_server(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "TUNEDP_MLFLOW_DIR": str(tmp_path / "mlflow"), "NO_COLOR": "1"}
    ui = subprocess.Popen(
        [TUNEDP, "ui", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _listening(port):
            assert ui.poll() is None, ui.communicate()
            time.sleep(0.5)
        assert _listening(port), "the dashboard never came up"
        ui.send_signal(signal.SIGTERM)
        out, err = ui.communicate(timeout=60)
    finally:
        if ui.poll() is None:
            ui.kill()
    assert ui.returncode == 0, out + err
    assert "stopped" in out
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _listening(port):
        time.sleep(0.5)
    assert not _listening(port), "the server outlived tunedp ui"
