"""Gathering a Poisson batch against one private ScatterNet step: how much of a step the batch costs.

What a ScatterNet trial does each step: draw the Poisson batch (N uniforms
against q), gather its rows of the cached 81 × 7 × 7 float32 features (a
memory-mapped ``.npy``, ~1 GB for 60 000 rows) and of the labels, then one
private step of the linear or CNN head (``tunedp.optim.make_private``, the
ghost path as a trial picks it). Timed here, interleaved in one process:

* **before**: the gather of the trial loop up to issue 28 — ``poisson_indices``
  and a fresh ``index_select`` per tensor, so every step allocates the batch
  anew (above glibc's 32 MiB mmap threshold from ~2100 rows on: fresh pages
  faulted in at every step);
* **after**: :class:`tunedp.optim.poisson.PoissonSampler` — the same draw, one
  ``index_select`` into a buffer reused from step to step;
* **step**: one private step of the head on the gathered batch.

The features are a stand-in: random float32 of the real shape, written once
to a ``.npy`` in ``--features-dir`` and memory-mapped copy-on-write exactly as
``fashion_mnist_scatternet_torch.features`` maps the real cache (computing the
real scattering features takes minutes; gathering rows costs the same for any
values). The mapping is read through once before timing, as a trial's first
epoch would. ``tunedp.optim.keep_freed_memory()`` is on, as in trial workers.
Results: benchmarks/README.md.

    .venv/bin/python benchmarks/batches.py                          # batches 256, 2048, 8192; 1 thread
    .venv/bin/python benchmarks/batches.py --threads 2 --heads linear --rounds 6
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROWS, TRAIN_ROWS = 60_000, 55_000
"""Rows of the feature file (train + validation + test, as the real cache) and of the training split."""
SHAPE = (81, 7, 7)


def feature_table(directory: Path) -> torch.Tensor:
    """The training rows of a stand-in feature file (created on first use), memory-mapped copy-on-write."""
    path = directory / f"scatternet-standin-{ROWS}x{'x'.join(map(str, SHAPE))}.npy"
    if not path.is_file():
        partial = path.with_suffix(".partial.npy")
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(ROWS, *SHAPE))
        generator = np.random.default_rng(0)
        for start in range(0, ROWS, 5000):
            out[start : start + 5000] = generator.standard_normal((5000, *SHAPE), dtype=np.float32)
        out.flush()
        del out
        os.replace(partial, path)
    table = torch.from_numpy(np.load(path, mmap_mode="c"))[:TRAIN_ROWS]
    float(table.sum())  # read through once: the pages are mapped, as after a trial's first epoch
    return table


def _median_ms(values: list[float]) -> float:
    return 1000 * statistics.median(values)


def measure(
    table: torch.Tensor, labels: torch.Tensor, head: str, batch: int, *, rounds: int, block: int
) -> dict[str, float]:
    """Median ms of the old gather, the new gather and one private step, interleaved round by round."""
    from tunedp.optim import make_generator, make_private
    from tunedp.optim.poisson import PoissonSampler, poisson_indices
    from tunedp.workloads.fashion_mnist_scatternet_torch import build_model
    from tunedp.workloads.metrics import cross_entropy_per_example

    rate = batch / TRAIN_ROWS
    torch.manual_seed(0)
    trainer = make_private(
        build_model(head),
        optimizer="dp_sgd",
        hyperparameters={"lr": 4.0, "clip_norm": 0.1, "momentum": 0.9},
        sampling_rate=rate,
        dataset_size=TRAIN_ROWS,
        noise_multiplier=1.0,
        steps=1_000_000,
        generator=make_generator(seed=1),
    )
    old_generator = torch.Generator().manual_seed(2)
    sampler = PoissonSampler([table, labels], sampling_rate=rate, generator=torch.Generator().manual_seed(2))

    def before() -> tuple[torch.Tensor, torch.Tensor]:
        rows = poisson_indices(TRAIN_ROWS, rate, generator=old_generator)
        return table.index_select(0, rows), labels.index_select(0, rows)

    timed: dict[str, list[float]] = {"gather before": [], "gather after": [], "step": []}
    gathers: dict[str, Callable[[], tuple[torch.Tensor, ...]]] = {
        "gather before": before,
        "gather after": sampler.draw,
    }
    for index in range(rounds + 1):  # the first round is warm-up
        for name, gather in gathers.items():
            for _ in range(block):
                start = time.perf_counter()
                inputs, targets = gather()
                middle = time.perf_counter()
                if name == "gather after":
                    trainer.step(inputs, targets, cross_entropy_per_example)
                    if index:
                        timed["step"].append(time.perf_counter() - middle)
                if index:
                    timed[name].append(middle - start)
                del inputs, targets
    return {name: _median_ms(values) for name, values in timed.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="256,2048,8192")
    parser.add_argument("--heads", default="linear,cnn", help="ScatterNet heads: linear, cnn")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (after one of warm-up)")
    parser.add_argument("--block", type=int, default=3, help="consecutive steps of one variant per round")
    parser.add_argument("--features-dir", default=tempfile.gettempdir(), help="where the stand-in .npy is kept")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from tunedp.optim import keep_freed_memory

    keep_freed_memory()
    table = feature_table(Path(args.features_dir))
    labels = torch.randint(0, 10, (TRAIN_ROWS,), generator=torch.Generator().manual_seed(0))
    print(
        f"Poisson gathering vs one private ScatterNet step: {args.threads} threads, {args.rounds} rounds × "
        f"{args.block} steps, stand-in features {ROWS} × {'×'.join(map(str, SHAPE))} float32 memory-mapped"
    )
    print(
        "| head | expected batch | load | gather before ms | gather after ms | step ms "
        "| gather ÷ (gather + step), before → after |"
    )
    print("|---|---:|---|---:|---:|---:|---:|")
    for head in args.heads.split(","):
        for batch in (int(size) for size in args.batch_sizes.split(",")):
            load = f"{os.getloadavg()[0]:.1f}"
            result = measure(table, labels, head, batch, rounds=args.rounds, block=args.block)
            old, new, step = result["gather before"], result["gather after"], result["step"]
            print(
                f"| {head} | {batch} | {load} → {os.getloadavg()[0]:.1f} | {old:.2f} | {new:.2f} | {step:.1f} "
                f"| {100 * old / (old + step):.1f} % → {100 * new / (new + step):.1f} % |",
                flush=True,
            )


if __name__ == "__main__":
    main()
