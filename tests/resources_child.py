"""Child of the GPU-scheduling test: a Ray with one *logical* GPU, a search asking half a GPU per trial.

Prints, as JSON, the GPU ids and device each trial reported (read through a
spy on selection, inside the driver).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ray
from search_helpers import random_all

import tunedp.run.driver as driver
from tunedp.ledger.binding import create_ledger

folder = Path(sys.argv[1])
ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, _node_ip_address="127.0.0.1",
         object_store_memory=128 * 1024 * 1024, log_to_driver=False)  # fmt: skip
seen = []
original = driver.select_best


def spy(records):  # type: ignore[no-untyped-def]
    seen.extend(records)
    return original(records)


driver.select_best = spy
config = random_all(expected_trials=2.0, max_trials=2).model_copy(
    update={"resources": random_all().resources.model_copy(update={"gpus": 0.5})}
)
ledger = folder / "digits.sqlite"
create_ledger(ledger, dataset="digits", epsilon=100.0, delta=1e-5)
seed = int(sys.argv[2])
driver.search(config, ledger_path=ledger, seed=seed, output_dir=folder / "out")
print(json.dumps([{"gpu_ids": list(r.gpu_ids), "device": r.device, "status": r.status} for r in seen]))
ray.shutdown()
