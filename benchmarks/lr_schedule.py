"""Single DP-SGD runs of the Fashion-MNIST CNN: how the learning-rate schedule changes what a step size gives.

Why: a two-stage search transfers a step size chosen by a cheap, noisy
selection to one long final run; how much accuracy a wrong pick costs decides
how much of the budget the selection deserves. This trains the Tramèr–Boneh
CNN (expected batch 2048, momentum 0.9, C = 0.1: every per-example gradient is
clipped, so only η·C matters) at a given η·C and σ with a constant or a
decayed learning rate, and records the test accuracy of the last iterate and
of exponential moving averages of the iterates (post-processing, free).

Each run appends one JSON line to ``benchmarks/results/lr_schedule.jsonl``.
σ is given directly (``--noise-multiplier``) or calibrated to ``--epsilon``
for the run alone (RDP, δ = 1e-5).

Usage::

    python benchmarks/lr_schedule.py run --step-size 0.93 --schedule cosine --noise-multiplier 2.441
    python benchmarks/lr_schedule.py run --step-size 0.6 --schedule cosine --epsilon 2.5546 --epochs 60
    python benchmarks/lr_schedule.py summarise
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results" / "lr_schedule.jsonl"
CLIP_NORM = 0.1
BATCH = 2048
EMA_DECAYS = (0.99, 0.995, 0.998)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from utility import calibrate

    from tunedp.optim import make_private
    from tunedp.optim.lr_schedule import ConstantLr, CosineLr, LinearLr
    from tunedp.optim.poisson import poisson_indices
    from tunedp.workloads import resolve_workload

    torch.set_num_threads(args.threads)
    workload = resolve_workload("fashion_mnist")
    splits = workload.load()
    inputs, targets = splits.train.inputs, splits.train.targets
    if args.train_on_validation:  # what a run that releases no validation score can train on
        inputs = torch.cat([inputs, splits.validation.inputs])
        targets = torch.cat([targets, splits.validation.targets])
    size = int(inputs.shape[0])
    rate = args.batch / size
    steps = round(args.epochs / rate)
    sigma = args.noise_multiplier if args.noise_multiplier is not None else calibrate(rate, steps, args.epsilon)
    schedule = {"constant": ConstantLr(), "cosine": CosineLr(), "linear": LinearLr()}[args.schedule]
    model = workload.build_model(args.model)
    trainer = make_private(
        model,
        optimizer="dp_sgd",
        hyperparameters={"lr": args.step_size / CLIP_NORM, "clip_norm": CLIP_NORM, "momentum": 0.9},
        sampling_rate=rate,
        dataset_size=size,
        noise_multiplier=sigma,
        steps=steps,
        lr_schedule=schedule,
    )
    averages = [{k: v.detach().clone() for k, v in model.state_dict().items()} for _ in EMA_DECAYS]
    sampling = torch.Generator().manual_seed(secrets.randbits(62))

    def accuracy(state: dict[str, Any]) -> float:
        copy = workload.build_model(args.model)
        copy.load_state_dict(state)
        return float(workload.evaluate(copy, splits.test))

    started = time.perf_counter()
    for step in range(steps):
        indices = poisson_indices(size, rate, generator=sampling)
        trainer.step(inputs.index_select(0, indices), targets.index_select(0, indices), workload.per_example_loss)
        with torch.no_grad():
            current = model.state_dict()
            for decay, average in zip(EMA_DECAYS, averages, strict=True):
                weight = min(decay, (1 + step) / (10 + step))  # the usual warm-started EMA
                for name, tensor in average.items():
                    tensor.mul_(weight).add_(current[name].detach(), alpha=1 - weight)
    result: dict[str, Any] = {
        "step_size": args.step_size,
        "model": args.model,
        "expected_batch_size": args.batch,
        "training_rows": size,
        "schedule": args.schedule,
        "noise_multiplier": sigma,
        "epochs": args.epochs,
        "steps": steps,
        "test_accuracy": accuracy({k: v.detach().clone() for k, v in model.state_dict().items()}),
        "wall_s": time.perf_counter() - started,
        "load_average_1min": os.getloadavg()[0],
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for decay, average in zip(EMA_DECAYS, averages, strict=True):
        result[f"ema_{decay}"] = accuracy(average)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as handle:
        handle.write(json.dumps(result) + "\n")
    return result


def summarise() -> str:
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    lines = [
        "| model | rows | batch | η·C | schedule | σ | epochs | last iterate (%) | EMA 0.99 / 0.995 / 0.998 (%) |",
        "|---|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for row in sorted(
        rows,
        key=lambda r: (r.get("model", "cnn"), r["epochs"], r["noise_multiplier"], r["step_size"], r["schedule"]),
    ):
        emas = " / ".join(f"{100 * row[f'ema_{d}']:.2f}" for d in EMA_DECAYS)
        lines.append(
            f"| {row.get('model', 'cnn')} | {row.get('training_rows', 55000)} | "
            f"{row.get('expected_batch_size', BATCH)} | {row['step_size']:g} | "
            f"{row['schedule']} | {row['noise_multiplier']:.3f} | {row['epochs']} | "
            f"{100 * row['test_accuracy']:.2f} | {emas} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run", help="one training run; appends a JSON line")
    one.add_argument("--step-size", type=float, required=True, help="η·C (C is fixed at 0.1)")
    one.add_argument("--schedule", choices=["constant", "cosine", "linear"], default="constant")
    noise = one.add_mutually_exclusive_group(required=True)
    noise.add_argument("--noise-multiplier", type=float)
    noise.add_argument("--epsilon", type=float, help="calibrate σ so this run alone costs ε (δ = 1e-5)")
    one.add_argument("--epochs", type=int, default=40)
    one.add_argument("--threads", type=int, default=1)
    one.add_argument("--batch", type=int, default=BATCH, help="expected batch size qN")
    one.add_argument("--model", default="cnn", help="fashion_mnist model variant")
    one.add_argument(
        "--train-on-validation", action="store_true", help="train on the 5000 validation rows too (60000 in all)"
    )
    commands.add_parser("summarise", help="the table of every recorded run")
    args = parser.parse_args(argv)
    if args.command == "run":
        print(json.dumps(run(args)))
    else:
        print(summarise())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
