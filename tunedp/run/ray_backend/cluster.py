"""The Ray cluster's lifetime: connected (or started) before the charge, stopped when the search ends.

The driver connects once the pre-flight has passed (:func:`ray_cluster`), so a
cluster that cannot run a trial is refused before anything is charged, and
that connection runs the trials. A local Ray runs in a private folder that
goes with it (docs/architecture.md §4.2). :func:`node_fingerprints` checks
every node's copy of the data before the charge on an external cluster.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import ray

from tunedp.config import Resources
from tunedp.errors import ConfigError, one_line
from tunedp.run.preflight.checks import PreflightError
from tunedp.run.scoped import environment
from tunedp.run.scratch import private_folder, private_umask, remove_dead_scratch
from tunedp.workloads import WorkloadReference

__all__ = [
    "check_resources",
    "connect_ray",
    "ensure_ray",
    "node_fingerprints",
    "node_resources",
    "ray_cluster",
    "stop_ray",
    "trial_cpus",
]

OBJECT_STORE_BYTES = 256 * 1024 * 1024
_RAY_DEFAULTS = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@contextmanager
def ray_cluster(address: str | None, *, resources: Resources) -> Iterator[None]:
    """Ray connected at ``address`` (or a local one started) for a search's trials; what was started stops after.

    Entered after the pre-flight and before the charge: a failure to connect,
    or a cluster without the resources one trial asks for, costs nothing.
    """
    temp = connect_ray(address, resources=resources)
    try:
        yield
    finally:
        stop_ray(temp)


def connect_ray(address: str | None, *, resources: Resources | None = None) -> Path | None:
    """Connect to ``address`` (or start a local Ray) before the charge, and check it can run a trial.

    Returns the private folder of a Ray this call started (for
    :func:`stop_ray`), else ``None``. The driver's pre-flight probes
    ``address`` first (:func:`tunedp.run.preflight.check_ray_address`), so an
    address where nothing listens is one line and nothing charged — not
    minutes of GCS retries. A cluster without the CPUs/GPUs one trial asks for
    (``resources``) is refused here too.
    """
    with _keep_sigterm():
        try:
            temp = ensure_ray(address)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as error:
            raise PreflightError(
                f"--ray-address: cannot connect to Ray at {address or 'local'}: {one_line(error, 200)}"
            ) from None
    if resources is not None:
        try:
            check_resources(resources)
        except Exception:
            stop_ray(temp)
            raise
    return temp


@contextmanager
def _keep_sigterm() -> Iterator[None]:
    """ray.init installs its own SIGTERM handler in the driver; keep ours (see tunedp.run.interrupts)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)


def ensure_ray(ray_address: str | None) -> Path | None:
    """Connect to ``ray_address`` or start a local Ray.

    Returns the private temporary folder of a Ray we started (to be stopped
    and removed by :func:`stop_ray`), ``None`` otherwise. A local Ray keeps its
    session logs — one line per trial from every worker, with its
    hyperparameters — and its workers their temporary files (``TMPDIR``) in
    that folder, inside the driver's mode-0700 scratch folder
    (:mod:`tunedp.run.scratch`), not in the shared ``/tmp/ray``; its processes run
    with umask 077. So nothing about a ``release: best`` search's trials is
    readable by another user while it runs, or outlives it (a killed driver's
    folder is removed by the next tunedp command, here included).
    """
    if ray.is_initialized():
        return None
    with environment(_RAY_DEFAULTS, override=False):
        # Worker output (a trial's prints, Tune's checkpoint chatter, tracebacks)
        # is data-dependent and not a release: it is never forwarded to this
        # console. A failed trial reaches the report through its record instead.
        if ray_address is not None:
            ray.init(address=ray_address, log_to_driver=False, logging_level=logging.WARNING)
            return None
        remove_dead_scratch()  # what a killed driver left, before this one adds its own
        tempfile.gettempdir()  # the driver's own temp folder is fixed (cached) before TMPDIR changes below
        temp_dir = private_folder("r")  # short: Ray's unix sockets live in it (107-byte path limit)
        workers_tmp = temp_dir / "tmp"
        workers_tmp.mkdir(mode=0o700)
        # address="local": start our own instance even if `ray start` left a
        # cluster file behind on this machine (ray.init would try to join it).
        # Ray's processes inherit the umask and TMPDIR set here (its workers
        # are started by the raylet, which inherits them), the driver keeps its own.
        with private_umask(), environment({"TMPDIR": str(workers_tmp)}):
            ray.init(
                address="local",
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                object_store_memory=OBJECT_STORE_BYTES,
                log_to_driver=False,
                logging_level=logging.WARNING,
                _node_ip_address="127.0.0.1",
                _temp_dir=str(temp_dir),
            )
    return temp_dir


def stop_ray(temp_dir: Path | None) -> None:
    """Stop a Ray that :func:`ensure_ray` started and remove its private folder (logs included)."""
    if temp_dir is None:
        return
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


def check_resources(resources: Resources) -> int:
    """How many trials the connected cluster runs at once; a one-line ConfigError if it cannot run one.

    Called before the charge (pre-flight) and again when trials start.
    """
    available = ray.cluster_resources()  # type: ignore[no-untyped-call]
    cpus, gpus = float(available.get("CPU", 0)), float(available.get("GPU", 0))
    if resources.gpus > 0 and gpus < resources.gpus:
        raise ConfigError(
            f"resources.gpus (--gpus-per-trial) = {resources.gpus:g} per trial but the Ray cluster has {gpus:g} GPUs; "
            "give at most that (0 trains on CPUs) or connect a cluster with GPUs (--ray-address)"
        )
    if cpus < resources.cpus:
        raise ConfigError(
            f"resources.cpus (--cpus-per-trial) = {resources.cpus:g} per trial but the Ray cluster has {cpus:g} CPUs; "
            f"give at most {cpus:g}"
        )
    slots = int(cpus // resources.cpus)
    if resources.gpus > 0:
        slots = min(slots, int(gpus // resources.gpus))
    return max(1, slots)


def node_resources() -> list[tuple[float, float]]:
    """(CPUs, GPUs) of every alive node of the connected cluster (a trial runs on one node: its share is per node)."""
    nodes = ray.nodes()  # type: ignore[no-untyped-call]
    return [(float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0))) for n in nodes if n.get("Alive")]


def reuse_actors(nodes: Sequence[tuple[float, float]]) -> bool:
    """Whether Tune hands a finished trial's worker to the next trial: only where one node runs them all.

    Reusing a worker saves its start (a process, torch and the workload
    imported) per trial. On several nodes it also moves work: Tune gives a
    cached worker to a pending trial even while that trial's own worker is
    starting on another node, and drops the one starting. Short trials then
    pile onto the node whose worker came up first and the other nodes idle,
    whatever the resources reserved. With more than one node that can run a
    trial (any CPUs), each trial runs where its resources were reserved.
    """
    return sum(1 for cpus, _gpus in nodes if cpus > 0) <= 1


def trial_cpus(nodes: Sequence[tuple[float, float]], resources: Resources, concurrency: int) -> int:
    """The CPUs each of ``concurrency`` trials at once can have: its share of the cores, never fewer than asked.

    A search running fewer trials than the cluster has room for (a staged
    search's final run, ``--max-concurrent 1``, a small K) would otherwise
    leave cores idle: each trial gets the largest whole number of CPUs ``s``
    such that ``concurrency`` trials of ``s`` CPUs (and ``resources.gpus``
    GPUs) still fit on the ``(CPUs, GPUs)`` nodes — a trial runs on one node,
    so a node holds ⌊cpus/s⌋ of them, and no more than its GPUs allow — and
    trains with ``s`` torch threads. Ray is asked for those ``s`` CPUs, so the
    count is a reservation, not an oversubscription. ``resources.cpus`` is
    the floor; a fractional ask trains on one thread.
    """

    def fits(share: int) -> bool:
        held = 0
        for cpus, gpus in nodes:
            on_node = int(cpus // share)
            held += min(on_node, int(gpus // resources.gpus)) if resources.gpus > 0 else on_node
        return held >= concurrency

    floor = max(1, int(resources.cpus))
    best = floor
    for share in range(floor + 1, int(max((cpus for cpus, _ in nodes), default=0)) + 1):
        if fits(share):  # Σ over nodes falls as the share grows: the last share that fits is the largest
            best = share
    return best


def _node_fingerprint(workload: WorkloadReference, nonce: bytes) -> str:
    """Runs ON a node: the keyed fingerprint of the workload's protected rows as that node loads them."""
    from tunedp.ledger.binding import protected_fingerprint

    return protected_fingerprint(workload, nonce)


def node_fingerprints(workload: WorkloadReference, nonce: bytes) -> list[tuple[str, str | BaseException]]:
    """(node, fingerprint or the error it raised) for every alive node of the connected cluster.

    One zero-CPU task pinned to each node (hard node affinity), so every copy
    of the data a trial could read is checked, not just the driver's. The
    nonce and the fingerprints travel as task arguments and results through
    Ray's object store only; nothing here logs them.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_retries=0)(_node_fingerprint)
    pending = []
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        if not node.get("Alive"):
            continue
        strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
        name = f"{node['NodeManagerAddress']} (node {str(node['NodeID'])[:12]})"
        pending.append((name, task.options(scheduling_strategy=strategy).remote(workload, nonce)))
    found: list[tuple[str, str | BaseException]] = []
    for name, ref in pending:
        try:
            found.append((name, str(ray.get(ref))))
        except Exception as error:  # a node that cannot import or load the workload
            cause = getattr(error, "cause", None)
            found.append((name, cause if isinstance(cause, BaseException) else error))
    return found
