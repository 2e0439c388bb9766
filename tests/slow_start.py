"""A search whose trials' workers start slowly on one Ray node: where does each trial run?

Child of the two-node test (``tests/e2e/test_search.py``), run as
``python tests/slow_start.py FOLDER ADDRESS`` with ``tests/`` importable on
every node. It runs a real grid search of two trials on the cluster at
ADDRESS, two at a time, through the library's own driver and trial runner;
the only thing added is a delay: a trial's worker (its actor) takes
:data:`SLOW_START_ENV` seconds to start on a node whose environment sets
it, so it starts long after the other node's trial has finished. That is
the order a loaded machine can produce by chance (CI did, once): Tune then
hands the finished trial's worker to the waiting trial and drops the one
starting, unless workers are not reused on a cluster
(:func:`tunedp.run.ray_backend.cluster.reuse_actors`). The report is
written to ``FOLDER/out``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

#: Seconds a trial's worker takes to start on the node whose environment sets this.
SLOW_START_ENV = "TUNEDP_TEST_SLOW_START_S"


def slow_to_start(trainable: Any) -> Any:
    """``trainable`` (a Tune function) as a Trainable class whose actors wait :data:`SLOW_START_ENV` s to start."""
    from ray.tune.trainable.function_trainable import wrap_function

    class SlowToStart(wrap_function(trainable)):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            time.sleep(float(os.environ.get(SLOW_START_ENV, "0")))
            super().__init__(*args, **kwargs)

    return SlowToStart


def main(folder: Path, address: str) -> None:
    from search_helpers import grid

    import tunedp.run.ray_backend.tuner as tuner
    from tunedp.ledger.binding import create_ledger
    from tunedp.run.driver import search

    original = tuner.trainable
    tuner.trainable = lambda static, resources: slow_to_start(original(static, resources))
    ledger = folder / "digits.sqlite"
    create_ledger(ledger, dataset="digits", epsilon=100.0, delta=1e-5)
    config = grid(momenta=[0.5, 0.9])
    search(config, ledger_path=ledger, ray_address=address, max_concurrent=2, seed=3, output_dir=folder / "out")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
