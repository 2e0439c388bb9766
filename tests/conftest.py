"""Session-wide fixtures: one real Ray per test session, and a quiet environment.

Ray takes 5–7 s to start, so every test that needs it shares one local
instance (2 CPUs, no dashboard, 256 MiB object store, bound to 127.0.0.1).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Tests log to MLflow only where a test asks for it explicitly.
os.environ.setdefault("TUNEDP_TRACKING", "0")
# Ledgers default to a per-user folder; tests must never touch the real one.
os.environ["TUNEDP_HOME"] = tempfile.mkdtemp(prefix="tunedp-test-home-")
os.environ.pop("TUNEDP_LEDGER_DIR", None)
logging.getLogger("absl").setLevel(logging.ERROR)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make ``xdist_group`` marks group again under ``--dist loadgroup`` (what ``make test`` runs).

    pytest-xdist 3.8 groups a test by writing ``item._nodeid = "<id>@<group>"``,
    but pytest 9 reads a node's id from ``item._id``: the suffix is lost and every
    grouped test is scheduled on its own, so the two-node cluster tests could run
    at the same time and every module-scoped fixture ran once per worker. This
    adds the suffix the way pytest 9 reads it, and does nothing where the id
    already carries it (older pytest, or an xdist that does it itself).
    """
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = {
            str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for mark in item.iter_markers("xdist_group")
        }
        ident = getattr(item, "_id", None)
        suffix = "@" + "_".join(sorted(names))
        if names and ident is not None and not str(ident).endswith(suffix):
            item._id = type(ident).parse(f"{ident}{suffix}")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[str]:
    """A real local Ray for the whole session; yields its GCS address for ``--ray-address``."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",  # never join a cluster another test started with `ray start`
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=256 * 1024 * 1024,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
        )
    address = ray.get_runtime_context().gcs_address
    yield address
    ray.shutdown()
