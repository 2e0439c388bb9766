"""Speed and memory of one private step: tunedp vs a non-private step vs Opacus (hooks mode).

Reference model: the Tramèr–Boneh end-to-end tanh CNN for 28×28 inputs
(defined here, not in the library), batch 256 of random inputs, 2 threads.
Step times are taken in one process with the variants' steps interleaved
round-robin, so load from other processes on a shared machine hits every
variant alike; peak memory is measured per variant in its own subprocess, so
each peak RSS is that variant's alone. Opacus is skipped with a
message when it is not installed (``pip install --no-deps opacus==1.6.0``).

    .venv/bin/python benchmarks/optim.py              # full table (about two minutes)
    .venv/bin/python benchmarks/optim.py --steps 20   # quicker, noisier
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


def peak_memory(variant: str, *, batch_size: int, steps: int) -> dict[str, float]:
    """Child mode: a fresh process runs ``steps`` steps of one variant; its peak RSS is that variant's."""
    torch.manual_seed(0)
    inputs, targets = _batch(batch_size)
    step = _step_function(variant, tramer_boneh_cnn(), inputs, targets)
    setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(steps):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_rss_mib": peak / 1024, "step_rss_mib": (peak - setup) / 1024}


def step_times(variants: list[str], *, batch_size: int, steps: int, warmup: int) -> dict[str, list[float]]:
    """Per-step seconds of every variant, the variants' steps interleaved round-robin in this process.

    Interleaving spreads any load from other processes evenly over the
    variants, so their ratios stay meaningful on a shared machine.
    """
    inputs, targets = _batch(batch_size)
    functions = {}
    for variant in variants:
        torch.manual_seed(0)
        functions[variant] = _step_function(variant, tramer_boneh_cnn(), inputs, targets)
    for function in functions.values():
        for _ in range(warmup):
            function()
    times: dict[str, list[float]] = {variant: [] for variant in variants}
    for _ in range(steps):
        for variant, function in functions.items():
            start = time.perf_counter()
            function()
            times[variant].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk-sizes", default="64,128,256")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_of:
        print(json.dumps(peak_memory(args.memory_of, batch_size=args.batch_size, steps=args.warmup + 5)))
        return

    variants = ["nonprivate", *(f"tunedp chunk={c}" for c in args.chunk_sizes.split(","))]
    if importlib.util.find_spec("opacus") is None:
        print("opacus is not installed: skipping it (pip install --no-deps opacus==1.6.0)", file=sys.stderr)
    else:
        variants.append("opacus")
    memory = {}
    for variant in variants:
        command = [sys.executable, __file__, "--memory-of", variant, f"--batch-size={args.batch_size}"]
        command += [f"--threads={args.threads}", f"--warmup={args.warmup}"]
        memory[variant] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    times = step_times(variants, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup)
    median = {variant: 1000 * statistics.median(values) for variant, values in times.items()}
    fastest = {variant: 1000 * min(values) for variant, values in times.items()}
    opacus = median.get("opacus")
    print(
        "| variant | median ms/step | × non-private | Opacus ÷ this | fastest ms/step | × non-private (fastest) "
        "| peak RSS MiB | RSS growth in steps MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for variant in variants:
        speedup = f"{opacus / median[variant]:.2f}" if opacus else "n/a"
        print(
            f"| {variant} | {median[variant]:.1f} | {median[variant] / median['nonprivate']:.2f} | {speedup} "
            f"| {fastest[variant]:.1f} | {fastest[variant] / fastest['nonprivate']:.2f} "
            f"| {memory[variant]['peak_rss_mib']:.0f} | {memory[variant]['step_rss_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
