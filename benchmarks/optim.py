"""Speed and memory of one private step: tunedp (ghost and vmap) vs a non-private step vs Opacus.

Reference model: the Tramèr–Boneh end-to-end tanh CNN for 28×28 inputs
(defined here, not in the library), DP-SGD, fixed batches of random inputs
at each batch size (256 and 2048 by default), ``torch.set_num_threads(2)``,
``tunedp.optim.keep_freed_memory()`` on in every process.

* **Time**: every variant is built in ONE process and they are timed
  interleaved (round after round, a few steps of each in turn), so load from
  other processes on a shared machine hits all of them alike; the medians of
  all timed steps are compared, and each round's ratio to the non-private
  step is given as a median and range (the range shows how far the load
  moved it). The 1-minute load average is printed with every table: above
  the number of cores, read absolute times as upper bounds and trust the
  ratios more.
* **Memory**: each variant then runs alone in a fresh subprocess, which reports
  its peak RSS and the growth of RSS during the steps.
* ``--trial``: the training loop of one Fashion-MNIST trial of the shipped
  search space (20 epochs at expected batch 2048: Poisson batches of the real
  training split) for the vmap and the ghost path, interleaved; a fixed number
  of steps is timed and extrapolated to the whole trial (said so in the output).

``--layout`` is the memory format of every variant's model: ``channels_last``
(the default: what tunedp's own CNNs use since issue 28,
:mod:`tunedp.workloads.layout`) or ``contiguous`` (NCHW, as before). One
variant can override it with a ``layout=`` word, e.g. ``--extra "nonprivate
layout=contiguous"`` times the old NCHW step beside the others.

``--device cuda`` (or ``auto``: CUDA where available) puts the model, the batches
and the noise generator on the GPU and synchronises after every step so the
timings are of finished work; memory is then the peak CUDA allocation of the
child process instead of its RSS. ``--device cuda`` where CUDA is absent is a
one-line error (exit 2).

Opacus variants are skipped with a message when it is not installed
(``pip install --no-deps opacus==1.6.0``). Results: benchmarks/README.md.

    .venv/bin/python benchmarks/optim.py                       # both batch sizes (several minutes)
    .venv/bin/python benchmarks/optim.py --batch-sizes 256 --rounds 4
    .venv/bin/python benchmarks/optim.py --trial --trial-steps 40
    .venv/bin/python benchmarks/optim.py --device cuda --batch-sizes 2048,8192
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import NoReturn

import torch
from torch import nn
from torch.nn import functional

DATASET_SIZE = 60_000
DEVICE = torch.device("cpu")
"""Where models, batches and noise live (``--device``)."""
LAYOUT = "channels_last"
"""The memory format of every variant's model unless the variant names its own (``--layout``)."""
LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
OPACUS_VARIANTS = ("opacus hooks", "opacus ghost")


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


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _opacus_step(variant: str, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> Callable[[], None]:
    import warnings

    from opacus import PrivacyEngine

    warnings.filterwarnings("ignore")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, targets), batch_size=inputs.shape[0])
    mode = variant.split()[1]
    made = PrivacyEngine().make_private(
        module=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        criterion=nn.CrossEntropyLoss(),
        data_loader=loader,
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        poisson_sampling=True,
        grad_sample_mode=mode,
    )
    private_model, optimizer = made[0], made[1]
    criterion = made[2] if mode == "ghost" else nn.CrossEntropyLoss()
    # Same fixed batch as every other variant: the per-step cost at this batch size is what is compared.
    optimizer.expected_batch_size = inputs.shape[0]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        criterion(private_model(inputs), targets).backward()
        optimizer.step()

    return step


def _step_function(variant: str, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> Callable[[], None]:
    if variant == "nonprivate":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

        def plain() -> None:
            optimizer.zero_grad(set_to_none=True)
            functional.cross_entropy(model(inputs), targets).backward()
            optimizer.step()

        return plain
    if variant.startswith("tunedp"):
        from tunedp.optim import make_generator, make_private
        from tunedp.workloads.metrics import cross_entropy_per_example

        # "tunedp ghost" / "tunedp vmap", optionally " chunk=N" and " loss=per-example". The loss is the one
        # the trial loop passes; loss=per-example wraps it so that the ghost path cannot recognise it and
        # calls it once per example through vmap, as before issue 28's batched call.
        words = variant.split()
        options = dict(word.split("=", 1) for word in words[2:])
        chunk = int(options["chunk"]) if "chunk" in options else None
        loss = cross_entropy_per_example
        if options.get("loss") == "per-example":
            loss = lambda outputs, targets: cross_entropy_per_example(outputs, targets)  # noqa: E731
        trainer = make_private(
            model,
            optimizer="dp_sgd",
            hyperparameters={"lr": 0.1, "clip_norm": 1.0},
            sampling_rate=inputs.shape[0] / DATASET_SIZE,
            dataset_size=DATASET_SIZE,
            noise_multiplier=1.0,
            steps=1_000_000,
            generator=make_generator(seed=0, device=DEVICE),
            chunk_size=chunk,
            clipping=words[1],
        )
        return lambda: trainer.step(inputs, targets, loss)
    if variant in OPACUS_VARIANTS:
        return _opacus_step(variant, model, inputs, targets)
    raise ValueError(f"unknown variant {variant!r}")


def _batch(batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch_size, 1, 28, 28, generator=generator)
    return inputs.to(DEVICE), torch.randint(0, 10, (batch_size,), generator=generator).to(DEVICE)


def _model(layout: str | None = None) -> nn.Module:
    return tramer_boneh_cnn().to(DEVICE, memory_format=LAYOUTS[layout or LAYOUT])


def _layout_of(variant: str) -> tuple[str, str | None]:
    """``variant`` without its ``layout=`` word, and that word's layout (None: the run's ``--layout``)."""
    words = variant.split()
    layouts = [word.split("=", 1)[1] for word in words if word.startswith("layout=")]
    if any(layout not in LAYOUTS for layout in layouts):
        raise ValueError(f"unknown layout in {variant!r}; known: {', '.join(LAYOUTS)}")
    return " ".join(word for word in words if not word.startswith("layout=")), (layouts[-1] if layouts else None)


def _finished(step: Callable[[], None]) -> Callable[[], None]:
    """``step`` that returns only once its work is done (CUDA kernels run asynchronously)."""
    if DEVICE.type != "cuda":
        return step

    def synchronised() -> None:
        step()
        torch.cuda.synchronize(DEVICE)

    return synchronised


def time_interleaved(
    variants: list[str], *, batch_size: int, rounds: int, block: int, warmup: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per-step wall and CPU seconds of every variant, built in this process and run in turns of ``block`` steps.

    CPU seconds (``time.process_time``) are what the step itself consumed; on a
    machine shared with other work they are far less disturbed than wall time
    (with more than one thread they also count time spent waiting in spin loops).
    """
    inputs, targets = _batch(batch_size)
    steps = {}
    for variant in variants:
        torch.manual_seed(0)
        base, layout = _layout_of(variant)
        steps[variant] = _finished(_step_function(base, _model(layout), inputs, targets))
        for _ in range(warmup):
            steps[variant]()
    times: dict[str, list[float]] = {variant: [] for variant in variants}
    cpu: dict[str, list[float]] = {variant: [] for variant in variants}
    for _ in range(rounds):
        for variant in variants:
            for _ in range(block):
                start, start_cpu = time.perf_counter(), time.process_time()
                steps[variant]()
                times[variant].append(time.perf_counter() - start)
                cpu[variant].append(time.process_time() - start_cpu)
    return times, cpu


def _round_ratios(seconds: list[float], baseline: list[float], block: int) -> list[float]:
    """Per interleaved round: this variant's median step over the non-private one's in the same round.

    On a shared machine the load changes from round to round; a ratio taken
    within one round compares steps that ran seconds apart, and the spread of
    these ratios shows how far the load moved the overall one.
    """
    return [
        statistics.median(seconds[start : start + block]) / statistics.median(baseline[start : start + block])
        for start in range(0, len(seconds), block)
    ]


def _status_mib(field: str) -> float:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in MiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_memory(variant: str, *, batch_size: int, steps: int) -> dict[str, float]:
    """Child mode: a fresh process runs ``steps`` steps of one variant and reports its peak RSS.

    The peak is reset after setup (Linux: ``5`` to ``/proc/self/clear_refs``),
    so imports and model construction do not hide what the steps need; the
    growth counts from the RSS before the first step.
    """
    torch.manual_seed(0)
    inputs, targets = _batch(batch_size)
    base, layout = _layout_of(variant)
    step = _finished(_step_function(base, _model(layout), inputs, targets))
    if DEVICE.type == "cuda":  # the GPU's memory, not the host's
        torch.cuda.reset_peak_memory_stats(DEVICE)
        setup = torch.cuda.memory_allocated(DEVICE) / 2**20
        for _ in range(steps):
            step()
        peak = torch.cuda.max_memory_allocated(DEVICE) / 2**20
        return {"peak_rss_mib": peak, "step_rss_mib": peak - setup}
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    setup = _status_mib("VmRSS")
    for _ in range(steps):
        step()
    peak = _status_mib("VmHWM")
    return {"peak_rss_mib": peak, "step_rss_mib": peak - setup}


def time_trial(*, steps: int, block: int, threads: int) -> None:
    """Fashion-MNIST, shipped search space: vmap vs ghost on real Poisson batches, extrapolated to 20 epochs."""
    from tunedp.optim import make_generator, make_private
    from tunedp.optim.poisson import PoissonSampler
    from tunedp.workloads import resolve_workload
    from tunedp.workloads.metrics import cross_entropy_per_example

    workload = resolve_workload("fashion_mnist")
    loaded = workload.load().train
    inputs, targets = loaded.inputs.to(DEVICE), loaded.targets.to(DEVICE)
    size = workload.sizes.train
    rate = 2048 / size
    total_steps = round(20 / rate)
    trainers, samplers = {}, {}
    for clipping in ("vmap", "ghost"):
        torch.manual_seed(0)
        trainers[clipping] = make_private(
            workload.build_model("cnn").to(DEVICE),
            optimizer="dp_sgd",
            hyperparameters={"lr": 4.0, "clip_norm": 0.1, "momentum": 0.9},
            sampling_rate=rate,
            dataset_size=size,
            noise_multiplier=1.0,
            steps=total_steps,
            generator=make_generator(seed=1, device=DEVICE),
            clipping=clipping,
        )
        sampling = torch.Generator().manual_seed(2)
        samplers[clipping] = PoissonSampler([inputs, targets], sampling_rate=rate, generator=sampling)
    times: dict[str, list[float]] = {clipping: [] for clipping in trainers}
    cpu: dict[str, list[float]] = {clipping: [] for clipping in trainers}
    load_before = _load()
    for index in range(steps // block + 1):
        for clipping, trainer in trainers.items():
            for _ in range(block):
                start, start_cpu = time.perf_counter(), time.process_time()
                trainer.step(*samplers[clipping].draw(), cross_entropy_per_example)  # as the trial loop gathers
                if DEVICE.type == "cuda":
                    torch.cuda.synchronize(DEVICE)
                if index > 0:  # the first turn is warm-up
                    times[clipping].append(time.perf_counter() - start)
                    cpu[clipping].append(time.process_time() - start_cpu)
    print(
        f"Fashion-MNIST trial (20 epochs, expected batch 2048, {total_steps} steps, {threads} threads, {DEVICE}): "
        f"{len(times['vmap'])} steps timed per method and extrapolated; load {load_before} → {_load()}"
    )
    print("| method | mean s/step | extrapolated trial training s | mean CPU s/step | extrapolated trial CPU s |")
    print("|---|---:|---:|---:|---:|")
    for clipping, seconds in times.items():
        mean, mean_cpu = statistics.fmean(seconds), statistics.fmean(cpu[clipping])
        print(f"| {clipping} | {mean:.3f} | {mean * total_steps:.0f} | {mean_cpu:.3f} | {mean_cpu * total_steps:.0f} |")
    print(
        f"ghost ÷ vmap: wall {statistics.fmean(times['ghost']) / statistics.fmean(times['vmap']):.2f}, "
        f"CPU {statistics.fmean(cpu['ghost']) / statistics.fmean(cpu['vmap']):.2f}"
    )


def _memory_of(variant: str, batch_size: int, steps: int, threads: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--variant", variant, f"--threads={threads}", f"--device={DEVICE}"]
    command += [f"--layout={LAYOUT}", f"--batch-sizes={batch_size}", f"--memory-steps={steps}"]
    child = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(child.stdout)
    return result


def _refuse(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _device(name: str) -> torch.device:
    """The ``--device`` asked for; CUDA where it is absent is a one-line error (exit 2)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        _refuse(f"--device: {name!r} is not a device; use cpu, cuda, cuda:N or auto")
    if device.type == "cuda" and not torch.cuda.is_available():
        _refuse(f"--device: {name} asked for, but this torch sees no CUDA device; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        _refuse(f"--device: {name!r} is not supported; use cpu, cuda, cuda:N or auto")
    return device


def main() -> None:
    global DEVICE, LAYOUT
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="256,2048")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds per batch size")
    parser.add_argument("--block", type=int, default=4, help="consecutive steps of one variant per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-steps", type=int, default=5, help="steps of each memory subprocess")
    parser.add_argument("--extra", default="", help="more variants, comma-separated, e.g. 'tunedp ghost chunk=2048'")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    parser.add_argument("--trial", action="store_true", help="time the Fashion-MNIST trial loop instead")
    parser.add_argument("--trial-steps", type=int, default=30)
    parser.add_argument(
        "--device", default="cpu", help="cpu, cuda, cuda:N, or auto (CUDA where available); default cpu"
    )
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default=LAYOUT, help="the models' memory format")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # child mode (memory)
    args = parser.parse_args()
    DEVICE = _device(args.device)
    LAYOUT = args.layout
    torch.set_num_threads(args.threads)
    from tunedp.optim import keep_freed_memory

    if not keep_freed_memory():
        print("keep_freed_memory() had no effect here (not glibc)", file=sys.stderr)
    if args.variant:
        print(json.dumps(measure_memory(args.variant, batch_size=int(args.batch_sizes), steps=args.memory_steps)))
        return
    if args.trial:
        time_trial(steps=args.trial_steps, block=args.block, threads=args.threads)
        return

    variants = ["nonprivate", "tunedp vmap", "tunedp ghost", *filter(None, args.extra.split(","))]
    if importlib.util.find_spec("opacus") is None:
        print("opacus is not installed: skipping it (pip install --no-deps opacus==1.6.0)", file=sys.stderr)
    else:
        variants += OPACUS_VARIANTS
    for batch_size in (int(size) for size in args.batch_sizes.split(",")):
        load_before = _load()
        times, cpu = time_interleaved(
            variants, batch_size=batch_size, rounds=args.rounds, block=args.block, warmup=args.warmup
        )
        medians = {variant: 1000 * statistics.median(seconds) for variant, seconds in times.items()}
        cpu_medians = {variant: 1000 * statistics.median(seconds) for variant, seconds in cpu.items()}
        load_after = _load()
        memory = (
            {} if args.no_memory else {v: _memory_of(v, batch_size, args.memory_steps, args.threads) for v in variants}
        )
        base = medians["nonprivate"]
        opacus = [medians[v] for v in OPACUS_VARIANTS if v in medians]
        print(
            f"\nbatch {batch_size}: {args.rounds} rounds × {args.block} steps per variant, "
            f"{args.threads} threads, {DEVICE}, {LAYOUT} models, load average {load_before} → {load_after}"
        )
        cpu_base = cpu_medians["nonprivate"]
        cpu_opacus = [cpu_medians[v] for v in OPACUS_VARIANTS if v in cpu_medians]
        print(
            "| variant | median ms/step | × non-private | × non-private by round: median (range) "
            "| best Opacus ÷ this | median CPU ms/step | CPU × non-private | best Opacus CPU ÷ this "
            "| peak RSS in steps MiB | RSS growth in steps MiB |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for variant in variants:
            speedup = f"{min(opacus) / medians[variant]:.2f}" if opacus else "n/a"
            cpu_speedup = f"{min(cpu_opacus) / cpu_medians[variant]:.2f}" if cpu_opacus else "n/a"
            rss = memory.get(variant, {})
            rounds = _round_ratios(times[variant], times["nonprivate"], args.block)
            print(
                f"| {variant} | {medians[variant]:.1f} | {medians[variant] / base:.2f} "
                f"| {statistics.median(rounds):.2f} ({min(rounds):.2f}–{max(rounds):.2f}) | {speedup} "
                f"| {cpu_medians[variant]:.1f} | {cpu_medians[variant] / cpu_base:.2f} | {cpu_speedup} "
                f"| {rss.get('peak_rss_mib', float('nan')):.0f} | {rss.get('step_rss_mib', float('nan')):.0f} |"
            )


if __name__ == "__main__":
    main()
