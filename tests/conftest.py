"""Session-wide fixtures: one real Ray per test session, a quiet environment, and each test's tier.

Ray takes 5–7 s to start, so every test that needs it shares one local
instance (2 CPUs, no dashboard, 256 MiB object store, bound to 127.0.0.1).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Tests log to MLflow only where a test asks for it explicitly.
os.environ.setdefault("TUNEDP_TRACKING", "0")
# Ledgers default to a per-user folder; tests must never touch the real one.
os.environ["TUNEDP_HOME"] = tempfile.mkdtemp(prefix="tunedp-test-home-")
os.environ.pop("TUNEDP_LEDGER_DIR", None)
# One calibration memo for the whole run (xdist's workers inherit the controller's): a config planned
# again, in this process or a CLI child, re-prices the σ its first plan found instead of searching for
# it (tunedp.accounting.calibration_memo). Never the user's ~/.cache.
os.environ.setdefault("TUNEDP_CACHE_DIR", tempfile.mkdtemp(prefix="tunedp-test-cache-"))
logging.getLogger("absl").setLevel(logging.ERROR)

# The PostgreSQL fixtures (a team ledger per run, a throwaway server) and the small models and batches
# of the optimizer tests (unit and integration tiers alike).
pytest_plugins = ["postgres_fixtures", "optim_fixtures"]


#: The tier of each top folder (docs/architecture.md §7): ``make test-fast`` runs ``-m unit``.
TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its tier, from the folder it lives in (tests/unit, tests/integration, tests/e2e)."""
    root = Path(__file__).resolve().parent
    for item in items:
        parts = Path(str(item.path)).resolve().relative_to(root).parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


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
