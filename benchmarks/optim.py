"""Speed and memory of one private step: tunedp vs a non-private step vs Opacus (hooks mode).

Reference model: the Tramèr–Boneh end-to-end tanh CNN for 28×28 inputs
(defined here, not in the library), batch 256 of random inputs, 2 threads.
Every variant runs in its own fresh subprocess (its peak RSS is its own and
its allocator is not shared with another variant); the parent repeats the
variants in interleaved rounds and keeps each variant's best round (lowest
median step time), which damps load from other processes on a shared machine.
Opacus is skipped with a message when it is not installed
(``pip install --no-deps opacus==1.6.0``). Results: benchmarks/README.md.

    .venv/bin/python benchmarks/optim.py               # full table (a few minutes)
    .venv/bin/python benchmarks/optim.py --glibc-heap  # every variant calls keep_freed_memory()
    .venv/bin/python benchmarks/optim.py --rounds 1    # quicker, noisier
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional

DATASET_SIZE = 60_000


def tramer_boneh_cnn() -> nn.Module:
    """Conv 16 8×8/2 pad 2 → tanh → maxpool 2/1 → conv 32 4×4/2 → tanh → maxpool 2/1 → 32 → tanh → 10."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 8, stride=2, padding=2),
        nn.Tanh(),
        nn.MaxPool2d(2, stride=1),
        nn.Conv2d(16, 32, 4, stride=2),
        nn.Tanh(),
        nn.MaxPool2d(2, stride=1),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 32),
        nn.Tanh(),
        nn.Linear(32, 10),
    )


def _step_function(variant: str, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> Callable[[], None]:
    rate = inputs.shape[0] / DATASET_SIZE
    if variant == "nonprivate":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

        def plain() -> None:
            optimizer.zero_grad(set_to_none=True)
            functional.cross_entropy(model(inputs), targets).backward()
            optimizer.step()

        return plain
    if variant.startswith("tunedp"):
        from tunedp.optim import make_generator, make_private

        chunk = int(variant.split("=")[1]) if "=" in variant else 256
        trainer = make_private(
            model,
            optimizer="dp_sgd",
            hyperparameters={"lr": 0.1, "clip_norm": 1.0},
            sampling_rate=rate,
            dataset_size=DATASET_SIZE,
            noise_multiplier=1.0,
            steps=1_000_000,
            generator=make_generator(seed=0),
            chunk_size=chunk,
        )
        return lambda: trainer.step(inputs, targets, functional.cross_entropy)
    if variant == "opacus":
        import warnings

        from opacus import PrivacyEngine

        warnings.filterwarnings("ignore")
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(inputs, targets), batch_size=inputs.shape[0]
        )
        private_model, optimizer, _ = PrivacyEngine().make_private(
            module=model,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            data_loader=loader,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            poisson_sampling=True,
            grad_sample_mode="hooks",
        )
        # Same fixed batch as every other variant: the per-step cost at batch 256 is what is compared.
        optimizer.expected_batch_size = inputs.shape[0]

        def opacus_step() -> None:
            optimizer.zero_grad(set_to_none=True)
            functional.cross_entropy(private_model(inputs), targets).backward()
            optimizer.step()

        return opacus_step
    raise ValueError(f"unknown variant {variant!r}")


def _batch(batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch_size, 1, 28, 28, generator=generator)
    return inputs, torch.randint(0, 10, (batch_size,), generator=generator)


def measure(variant: str, *, batch_size: int, steps: int, warmup: int) -> dict[str, float]:
    """Child mode: a fresh process times ``steps`` steps of one variant and reports its peak RSS."""
    torch.manual_seed(0)
    inputs, targets = _batch(batch_size)
    step = _step_function(variant, tramer_boneh_cnn(), inputs, targets)
    setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "median_ms": 1000 * statistics.median(times),
        "fastest_ms": 1000 * min(times),
        "peak_rss_mib": peak / 1024,
        "step_rss_mib": (peak - setup) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per variant and round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk-sizes", default="32,64,128,256")
    parser.add_argument(
        "--glibc-heap",
        action="store_true",
        help="every variant (non-private included) first calls tunedp.optim.keep_freed_memory()",
    )
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = {"batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup}
    if args.variant:
        if args.glibc_heap:
            from tunedp.optim import keep_freed_memory

            if not keep_freed_memory():
                print("keep_freed_memory() had no effect here (not glibc)", file=sys.stderr)
        print(json.dumps(measure(args.variant, **settings)))
        return

    variants = ["nonprivate", *(f"tunedp chunk={c}" for c in args.chunk_sizes.split(","))]
    if importlib.util.find_spec("opacus") is None:
        print("opacus is not installed: skipping it (pip install --no-deps opacus==1.6.0)", file=sys.stderr)
    else:
        variants.append("opacus")
    best: dict[str, dict[str, float]] = {}
    for round_index in range(args.rounds):
        for variant in variants:
            command = [sys.executable, __file__, "--variant", variant, f"--threads={args.threads}"]
            command += ["--glibc-heap"] if args.glibc_heap else []
            command += [f"--{key.replace('_', '-')}={value}" for key, value in settings.items()]
            child = subprocess.run(command, check=True, capture_output=True, text=True)
            result = json.loads(child.stdout)
            print(f"round {round_index + 1} {variant:>17}: {result['median_ms']:.1f} ms", file=sys.stderr)
            if variant not in best or result["median_ms"] < best[variant]["median_ms"]:
                best[variant] = result
    base = best["nonprivate"]
    opacus = best.get("opacus", {}).get("median_ms")
    print(
        "| variant | median ms/step | × non-private | Opacus ÷ this | fastest ms/step "
        "| peak RSS MiB | RSS growth in steps MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for variant in variants:
        result = best[variant]
        speedup = f"{opacus / result['median_ms']:.2f}" if opacus else "n/a"
        print(
            f"| {variant} | {result['median_ms']:.1f} | {result['median_ms'] / base['median_ms']:.2f} "
            f"| {speedup} | {result['fastest_ms']:.1f} "
            f"| {result['peak_rss_mib']:.0f} | {result['step_rss_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
