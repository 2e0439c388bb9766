"""Waiting for a ``ray start`` cluster to be up, instead of sleeping a fixed time.

A fixed sleep after ``ray start`` is a guess that fails on a loaded machine
(the test suite runs two workers on two cores): the worker node registers
late, and every trial lands on the head. Polling the cluster for its alive
nodes waits as long as it takes, and no longer.
"""

from __future__ import annotations

import subprocess
import time

#: Connects to the cluster at argv[1] and prints how many of its nodes are alive.
_COUNT_ALIVE = (
    "import sys, ray; ray.init(address=sys.argv[1], log_to_driver=False, logging_level='ERROR'); "
    "print(sum(1 for node in ray.nodes() if node['Alive']))"
)


def wait_for_alive_nodes(python: str, address: str, count: int, env: dict[str, str], timeout_s: float = 180) -> None:
    """Return once the cluster at ``address`` has ``count`` alive nodes; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    seen = "no answer"
    while time.monotonic() < deadline:
        done = subprocess.run(
            [python, "-c", _COUNT_ALIVE, address], capture_output=True, text=True, env=env, timeout=120
        )
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines and lines[-1].isdigit():
            seen = f"{lines[-1]} alive"
            if int(lines[-1]) >= count:
                return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster at {address} did not reach {count} alive nodes in {timeout_s:g} s ({seen})")
