"""Starting and stopping a ``ray start`` cluster for a test: waits on its state, never a fixed time.

A fixed sleep after ``ray start`` is a guess that fails on a loaded machine
(the test suite runs two workers on two cores): the worker node registers
late, and every trial lands on the head. Polling the cluster for its alive
nodes waits as long as it takes, and no longer.

The polling costs little: the head's GCS port is awaited with plain socket
connects (a driver connecting to a GCS that is not up yet blocks ~30 s per
try), and then ONE Python child connects once and counts alive nodes until
enough are up; a child per poll paid a Python start, a Ray import and a
connection every time (3–5 s each on two busy cores).

Stopping: SIGTERM to the ``ray start --block`` process itself makes it stop
its node's processes and exit within seconds; a SIGTERM to its whole process
group instead kills those processes under it, and it then waited ~30 s for
them before exiting. Whatever is left of the group is then killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time

#: Connects to the cluster at argv[1] (retrying while its head is not up), then prints how many
#: of its nodes are alive until there are argv[2], or argv[3] seconds have passed.
_COUNT_ALIVE = """
import sys, time, ray
address, count, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while True:
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        break
    except Exception:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
alive = 0
while alive < count and time.monotonic() < deadline:
    alive = sum(1 for node in ray.nodes() if node["Alive"])
    print(alive, flush=True)
    time.sleep(0.3)
ray.shutdown()
"""


def wait_for_port(address: str, timeout_s: float = 180) -> None:
    """Return once ``host:port`` accepts TCP connections (a head's GCS is listening); fail after ``timeout_s``."""
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {address} after {timeout_s:g} s (the Ray head did not start)")


def wait_for_alive_nodes(python: str, address: str, count: int, env: dict[str, str], timeout_s: float = 180) -> None:
    """Return once the cluster at ``address`` has ``count`` alive nodes; fail the test after ``timeout_s``.

    ``python`` is the interpreter that polls (the cluster's own, so its Ray version matches).
    """
    wait_for_port(address, timeout_s)
    done = subprocess.run(
        [python, "-c", _COUNT_ALIVE, address, str(count), str(timeout_s)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout_s + 60,
    )
    counts = [line for line in done.stdout.split() if line.isdigit()]
    seen = f"{counts[-1]} alive" if counts else f"no answer ({done.stderr[-500:]})"
    if done.returncode != 0 or not counts or int(counts[-1]) < count:
        raise AssertionError(f"the Ray cluster at {address} had not {count} alive nodes after {timeout_s:g} s: {seen}")


def stop_node(process: subprocess.Popen[bytes]) -> None:
    """Stop a ``ray start --block`` node started in its own session (``start_new_session=True``)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError, PermissionError):  # what is left of the node's group
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
