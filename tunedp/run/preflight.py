"""Pre-flight: every failure that does not depend on the private data, found before the ledger is charged.

A privacy budget is not refundable. A typo that only shows once a trial
starts (an unknown model variant, a momentum of 1.5, a cluster address where
nothing listens, an output folder holding an earlier paid-for result) would
otherwise cost the whole charge. So before :meth:`PrivacyLedger.charge` the
driver — and ``tunedp plan`` — run these checks, each of which reads *no
private row*:

* the ledger would admit the search (a dry run; the charge re-checks
  atomically);
* the output folder is new or empty (or ``--force``);
* the workload's data files exist (their paths only; no content is read);
* the model variant builds, and the update rule constructs with every fixed
  value and with the corners of every searched range;
* one forward/backward/clip/noise step runs on a *synthetic* batch of the
  workload's declared ``input_shape`` at each corner (shape and type errors
  surface here), and the model's output has one logit per declared class;
* Ray answers at ``--ray-address`` within a timeout (the driver then reuses
  that connection for the trials).

Everything raised is a :class:`PreflightError`: one line naming the field and
the fix, exit code 2, nothing charged. The synthetic step is also timed, which
is where ``tunedp plan``'s wall-time estimate comes from.

This module imports torch and Ray only inside the functions that need them,
so the command line stays light.
"""

from __future__ import annotations

import itertools
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunedp.config import ChoiceParam, FixedParam, LogUniformParam, Resources, SearchConfig, UniformParam
from tunedp.config.space import optimizer_hyperparameters
from tunedp.errors import UserFacingError, one_line

if TYPE_CHECKING:
    from dp_accounting.dp_event import DpEvent

    from tunedp.ledger.sqlite import PrivacyLedger
    from tunedp.planning.single_stage import SearchPlan

__all__ = [
    "MAX_CORNERS",
    "SCORE_NOISE_WARNING_STD",
    "PreflightError",
    "PreflightResult",
    "check_admissible",
    "check_data_files",
    "check_ledger_delta",
    "check_model_and_optimizer",
    "check_output",
    "connect_ray",
    "estimate_wall_seconds",
    "hyperparameter_corners",
    "learning_noise_warning",
    "run_preflight",
    "score_noise_std",
    "score_noise_warning",
]

#: Above this std (in accuracy units) a released validation score is mostly noise.
SCORE_NOISE_WARNING_STD = 0.05
#: Corners of the searched box tried at most (2^k grows fast; beyond this, a spread subset).
MAX_CORNERS = 64
#: Rows of the synthetic batch a corner's step runs on (its cost, not its result, matters).
CORNER_BATCH = 8
#: Largest synthetic batch timed for the wall-time estimate.
MAX_TIMED_BATCH = 4096
#: Seconds to wait for Ray at --ray-address before giving up (before any charge).
RAY_CONNECT_TIMEOUT_S = 10.0


class PreflightError(UserFacingError):
    """A pre-flight check failed: one line naming the field and the fix; nothing was charged."""


@dataclass(frozen=True, kw_only=True)
class PreflightResult:
    """What the pre-flight measured (nothing in it depends on private data)."""

    #: Seconds of one private step on a synthetic batch of the planned expected size; None if skipped.
    step_seconds: float | None
    corners: int
    concurrency: int
    estimated_wall_s: float | None
    #: The same at the median and the 90th percentile of K (a random K; equal to the mean's otherwise).
    estimated_wall_s_median: float | None = None
    estimated_wall_s_p90: float | None = None
    warnings: tuple[str, ...]


# ---------------------------------------------------------------------------- cheap checks


def check_admissible(plan: SearchPlan, ledger: PrivacyLedger, *, event: DpEvent | None = None) -> None:
    """Refuse (nothing charged) a search the ledger cannot admit, before anything else is started.

    A dry run of :meth:`PrivacyLedger.charge`; the charge itself re-checks
    under a lock, so a concurrent search cannot slip in between. ``event``
    is what will be charged when it is not the plan's (an audit charges one trial).
    """
    from tunedp.errors import BudgetExceededError

    check_ledger_delta(plan, ledger)
    fits, after = ledger.admissible(plan.event if event is None else event)
    if not fits:
        raise BudgetExceededError(
            f"budget: dataset {ledger.dataset!r} has spent epsilon={ledger.spent_epsilon():.4g} of "
            f"{ledger.epsilon:g}; this search would bring it to {after:.4g}; lower --budget or raise the global budget"
        )


def check_ledger_delta(plan: SearchPlan, ledger: PrivacyLedger) -> None:
    """Refuse a plan priced at another δ than the ledger's (nothing charged).

    σ is calibrated so the search costs its budget at the *config's* δ, but
    the ledger records every charge at *its* δ: at a larger config δ the
    ledger would record more than the budget the plan printed (ε 3.46 for a
    plan that said 3.00 at δ = 5e-4 against a ledger at 1e-5).
    """
    if not math.isclose(plan.delta, ledger.delta, rel_tol=1e-9, abs_tol=0.0):
        raise PreflightError(
            f"budget.delta: the config prices the search at delta={plan.delta:g} but ledger {ledger.dataset!r} "
            f"accounts at delta={ledger.delta:g}; give --delta {ledger.delta:g}"
        )


def check_output(output: Path | None, *, force: bool) -> None:
    """Refuse an existing non-empty output folder: it may hold an earlier, paid-for result."""
    if output is None:
        return
    if output.exists() and not output.is_dir():
        raise PreflightError(f"--output: {output} is a file; give a folder")
    if (output / ".tunedp-state").is_dir():  # tunedp.run.resume.STATE_DIR; refused even with --force
        raise PreflightError(
            f"--output: {output} holds an interrupted search; continue it with `tunedp search --resume {output}` "
            f"or give it up with `tunedp search --abandon {output}`"
        )
    if output.is_dir() and any(output.iterdir()) and not force:
        raise PreflightError(
            f"--output: {output} is not empty (an earlier search's results?); give a new folder or add --force"
        )


def check_data_files(workload: object) -> None:
    """The workload's data files exist; a missing one is named with the command that installs it.

    The files are the ones the workload's declaration locates (``Workload.data_files``):
    built-in and third-party workloads alike; nothing is read. A ``csv``
    workload's file was already read for its row count by planning, and a
    workload that cannot be resolved is refused by the model check next.
    """
    from tunedp.workloads import resolve_workload

    if not isinstance(workload, str):
        return
    try:
        locate = resolve_workload(workload).data_files
    except (ValueError, TypeError, ImportError):
        return
    if locate is None:
        return  # nothing declared: the loader finds a missing file itself
    try:
        locate()
    except FileNotFoundError as error:
        raise PreflightError(f"workload: {one_line(str(error))}") from None


# ---------------------------------------------------------------------------- optimizer corners


def _axis(param: Any) -> tuple[float, ...]:
    """The values of one parameter a pre-flight tries: a fixed value, a range's ends, every choice."""
    if isinstance(param, FixedParam):
        return (param.value,)
    if isinstance(param, LogUniformParam | UniformParam):
        return (param.low, param.high)
    assert isinstance(param, ChoiceParam)
    return tuple(sorted(set(param.values)))


def hyperparameter_corners(config: SearchConfig) -> list[dict[str, float]]:
    """Points at every combination of each parameter's extremes (fixed values, range ends, choices).

    Every value a trial can be given lies inside this box, so a value out of
    an optimizer's range shows at one of its corners. Capped at
    :data:`MAX_CORNERS` (evenly spread) for very wide spaces.
    """
    names = sorted(config.space.params)
    axes = [_axis(config.space.params[name]) for name in names]
    corners = [dict(zip(names, values, strict=True)) for values in itertools.product(*axes)]
    if len(corners) > MAX_CORNERS:
        stride = len(corners) / MAX_CORNERS
        corners = [corners[int(i * stride)] for i in range(MAX_CORNERS)] + [corners[-1]]
    return corners


def _field(name: str, config: SearchConfig) -> str:
    """The config field a hyperparameter comes from (η under lr_clip comes from step_size)."""
    if name == "lr" and config.space.coupling == "lr_clip":
        return "space.params.step_size"
    if name == "clip_norm" and config.training.clip_norm is not None:
        return "training.clip_norm"
    return f"space.params.{name}"


def _named_field(message: str, config: SearchConfig, point: Mapping[str, float]) -> str:
    """The field an optimizer's one-line error is about (it names the hyperparameter as ``name=``/``'name'``)."""
    candidates = sorted({*point, "lr", "clip_norm"}, key=len, reverse=True)
    for name in candidates:
        if f"{name}=" in message or f"'{name}'" in message:
            return _field(name, config)
    return "space.params"


def _describe(point: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(point.items()))


def _rules_at_corners(config: SearchConfig) -> list[dict[str, float]]:
    """The optimizer hyperparameters of every corner; each builds an update rule (one-line error otherwise)."""
    from tunedp.optim import build_update_rule  # torch

    settings: list[dict[str, float]] = []
    for corner in hyperparameter_corners(config):
        try:
            hyper = optimizer_hyperparameters(corner, config)
            build_update_rule(config.optimizer, hyper)
        except ValueError as error:
            field = _named_field(str(error), config, corner)
            value = _offending_value(field, corner, config)
            fixed = isinstance(config.space.params.get(field.rsplit(".", 1)[-1]), FixedParam)
            victims = "every trial" if fixed else "the trials drawn there"
            raise PreflightError(
                f"{field}: {one_line(str(error), 200)}{value} — {config.optimizer} would fail {victims}; fix it"
            ) from None
        settings.append(hyper)
    return settings


def _offending_value(field: str, corner: Mapping[str, float], config: SearchConfig) -> str:
    name = field.rsplit(".", 1)[-1]
    param = config.space.params.get(name)
    if param is None or name not in corner:
        return f" (at {_describe(corner)})"
    kind = "fixed value" if isinstance(param, FixedParam) else "searched value"
    return f" ({kind} {name}={corner[name]:g})"


# ---------------------------------------------------------------------------- model and a synthetic step


def check_model_and_optimizer(
    plan: SearchPlan, *, time_it: bool = True, concurrency: int = 1
) -> tuple[int, float | None]:
    """Build the model, the rule at every corner, and run one private step on synthetic data at each.

    Returns the number of corners tried and (``time_it``) the seconds of one
    step at the planned expected batch size. The synthetic batch is Gaussian
    noise of the declared input shape with uniform labels: it exercises
    shapes, types, the clip and the noise, and says nothing about the data.
    """
    import torch

    from tunedp.optim import make_private
    from tunedp.workloads import resolve_workload

    config = plan.config
    try:
        workload = resolve_workload(config.workload)
    except (ValueError, TypeError) as error:
        raise PreflightError(f"workload: {one_line(str(error))}") from None
    if workload.input_shape is None:
        raise PreflightError(
            f"workload: {config.workload!r} declares no input_shape in trials/; declare it to run the pre-flight "
            "(or pass --no-preflight to tunedp plan)"
        )
    field = "space.model.values" if config.space.model is not None else "model"
    for variant in config.variants:
        if variant is not None and variant not in workload.variants:
            raise PreflightError(
                f"{field}: workload {config.workload!r} has no model variant {variant!r}; "
                f"known: {', '.join(workload.variants)}"
            )
    settings = _rules_at_corners(config)
    generator = torch.Generator().manual_seed(0)  # synthetic, not private: a fixed seed is fine
    classes = workload.sizes.classes
    shape = tuple(workload.input_shape)

    def batch(rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = torch.randn((rows, *shape), generator=generator)
        return inputs, torch.randint(0, classes, (rows,), generator=generator)

    # Every searched variant at every corner: a variant that cannot train fails here, not after the charge.
    for variant, hyper in itertools.product(config.variants, settings):
        model = _build(workload, variant)
        inputs, targets = batch(CORNER_BATCH)
        try:
            outputs = model(inputs)
            if tuple(outputs.shape) != (CORNER_BATCH, classes):
                raise PreflightError(
                    f"model: variant {variant or workload.default_variant!r} outputs shape {tuple(outputs.shape)} "
                    f"for a batch of {CORNER_BATCH}; workload {config.workload!r} needs ({CORNER_BATCH}, {classes})"
                )
            trainer = make_private(
                model,
                optimizer=config.optimizer,
                hyperparameters=hyper,
                sampling_rate=plan.trial.sampling_rate,
                dataset_size=plan.trial.dataset_size,
                segments=plan.trial.segments,
                generator=generator,
                lr_schedule=config.training.lr_schedule,
            )
            trainer.step(inputs, targets, workload.per_example_loss)
        except PreflightError:
            raise
        except (ValueError, TypeError, RuntimeError, IndexError) as error:
            raise PreflightError(
                f"model: one private step of {config.optimizer} on variant {variant or workload.default_variant!r} "
                f"failed on a synthetic batch: {one_line(error, 200)}"
            ) from None
    variant = config.variants[0]
    seconds = _time_step(plan, workload, variant, settings[0], batch, concurrency) if time_it else None
    return len(settings) * len(config.variants), seconds


def _build(workload: Any, variant: str | None) -> Any:
    try:
        return workload.build_model(variant)
    except (ValueError, TypeError, RuntimeError) as error:
        raise PreflightError(f"model: {one_line(str(error))}") from None


def _time_step(
    plan: SearchPlan,
    workload: Any,
    variant: str | None,
    hyper: Mapping[str, float],
    batch: Callable[[int], tuple[Any, Any]],
    concurrency: int,
) -> float:
    """Median seconds of a private step at the expected batch size (threads as a trial would have)."""
    import torch

    from tunedp.optim import make_private

    rows = max(1, min(MAX_TIMED_BATCH, round(plan.trial.expected_batch_size)))
    model = _build(workload, variant)
    trainer = make_private(
        model,
        optimizer=plan.config.optimizer,
        hyperparameters=hyper,
        sampling_rate=plan.trial.sampling_rate,
        dataset_size=plan.trial.dataset_size,
        noise_multiplier=plan.noise_multiplier,
        steps=4,
    )
    inputs, targets = batch(rows)
    threads = torch.get_num_threads()
    # A trial gets one thread when several run at once (see the Ray backend).
    torch.set_num_threads(1 if concurrency > 1 else max(1, min(2, os.cpu_count() or 1)))
    try:
        trainer.step(inputs, targets, workload.per_example_loss)  # warm-up
        times = []
        for _ in range(3):
            tick = time.perf_counter()
            trainer.step(inputs, targets, workload.per_example_loss)
            times.append(time.perf_counter() - tick)
    finally:
        torch.set_num_threads(threads)
    return sorted(times)[1]


# ---------------------------------------------------------------------------- figures for the plan


def score_noise_std(plan: SearchPlan) -> float | None:
    """Std of a released validation score in accuracy units: σ_score / validation size (None if public)."""
    sigma = plan.trial.score_noise_multiplier
    return None if sigma is None else sigma / plan.sizes.validation


def score_noise_warning(plan: SearchPlan) -> str | None:
    """A warning when the score noise swamps differences between trials (std > 0.05 in accuracy)."""
    std = score_noise_std(plan)
    if std is None or std <= SCORE_NOISE_WARNING_STD:
        return None
    return (
        f"validation.score_noise_multiplier: score noise std ≈ {std:.3g} in accuracy units "
        f"(σ_score {plan.trial.score_noise_multiplier:g} / {plan.sizes.validation} validation rows) exceeds "
        f"{SCORE_NOISE_WARNING_STD:g}: released scores are mostly noise and selection close to random; "
        f"lower it to ≤ {SCORE_NOISE_WARNING_STD * plan.sizes.validation:.3g}"
    )


def learning_noise_warning(plan: SearchPlan) -> str | None:
    """A warning when a step's noise exceeds anything its gradient can carry: training will not learn.

    Each coordinate of the averaged clipped gradient is at most C in size
    (a whole clipped gradient on one coordinate); the noise added to that
    average has standard deviation σC / (qN) per coordinate. When σ / (qN)
    exceeds 1 the noise is larger than the largest possible signal on every
    coordinate at every step (σ = 157 at a batch of 120, a plan seen in the
    wild): the budget buys nothing. Data-independent: σ and qN are the plan's.
    """
    sigma = max(segment.noise_multiplier for segment in plan.trial.segments)
    batch = plan.trial.expected_batch_size
    if sigma / batch <= 1.0:
        return None
    return (
        f"training: noise multiplier σ = {sigma:.4g} at an expected batch of {batch:.4g} puts more noise on every "
        "coordinate of the averaged gradient than any gradient can carry; training will not learn. Raise "
        "training.expected_batch_size (σ grows more slowly than the batch), train fewer steps, or raise the budget"
    )


#: What a search costs on top of its trials' steps, measured by ``benchmarks/overheads.py`` on the
#: 2-core development machine (``benchmarks/results/overheads.json``): a local Ray start, the
#: pre-flight, the charge and the MLflow run, and the release (the test metric, the model, MLflow's
#: artifacts), and the first trial's worker. Measured 20–22 s (digits, Fashion-MNIST); example.yaml's
#: search then took 21 s against an estimate of 24 s (was 0.5 s without these costs).
SEARCH_OVERHEAD_S = 22.0
#: What each trial costs on top of its steps (same benchmark): a Ray worker, its imports, the data
#: loaded and the model built, the evaluations, Tune's bookkeeping (Ray reuses the worker: ≤ 0.6 s).
TRIAL_OVERHEAD_S = 1.0


def estimate_wall_seconds(
    plan: SearchPlan, step_seconds: float, concurrency: int, *, quantile: float | None = None
) -> float:
    """What a user waits for: fixed costs, then waves of trials (their steps and their own overhead).

    ``quantile`` (for a random K) takes that quantile of K's distribution
    instead of its mean: the plan shows the median and the 90th percentile,
    since a geometric K's tail is long. A staged search runs its stage-1
    trials, then one final run.
    """
    from tunedp.planning.staged import StagedPlan

    def trials_seconds(single: SearchPlan) -> float:
        shape = single.shape
        random_k = quantile is not None and shape.max_trials is None
        trials = float(shape.trial_count_quantile(quantile)) if random_k and quantile else shape.expected_trials
        waves = max(1, math.ceil(trials / concurrency))
        return waves * (TRIAL_OVERHEAD_S + step_seconds * single.trial.steps)

    total = SEARCH_OVERHEAD_S + trials_seconds(plan)
    if isinstance(plan, StagedPlan):  # stage 1's trials first (steps timed at the final run's batch)
        total += trials_seconds(plan.stage1)
    return total


def _concurrency(plan: SearchPlan, max_concurrent: int | None) -> int:
    return max(1, min(max_concurrent or os.cpu_count() or 1, math.ceil(plan.shape.expected_trials)))


# ---------------------------------------------------------------------------- Ray


def _host_port(address: str) -> tuple[str, int] | None:
    """host and port of a ``host:port`` or ``ray://host:port`` address (None for ``auto`` and the like)."""
    bare = address.split("://", 1)[-1]
    host, sep, port = bare.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def _probe(address: str, timeout_s: float) -> None:
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout_s):
            pass
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else (error.strerror or type(error).__name__)
        raise PreflightError(
            f"--ray-address: nothing answers at {address} ({reason.lower()} within {timeout_s:g} s); "
            "start the cluster (`ray start --head`) or drop --ray-address to run locally"
        ) from None


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


@contextmanager
def prepared_cluster(
    plan: SearchPlan,
    ray_address: str | None,
    *,
    max_concurrent: int | None = None,
    output: Path | None = None,
    force: bool = False,
) -> Iterator[None]:
    """Pre-flight ``plan``, then connect Ray (or start a local one) for its trials; stop what was started.

    Everything here happens before the charge and reads no private data, so
    a failure costs nothing; the charge and the trials run inside the block.
    """
    run_preflight(plan, max_concurrent=max_concurrent, output=output, force=force)
    ray_temp = connect_ray(ray_address, resources=plan.config.resources)
    try:
        yield
    finally:
        if ray_temp is not None:
            from tunedp.run.ray_backend import stop_ray

            stop_ray(ray_temp)


def connect_ray(
    address: str | None, *, resources: Resources | None = None, timeout_s: float = RAY_CONNECT_TIMEOUT_S
) -> Path | None:
    """Connect to ``address`` (or start a local Ray) before the charge, and check it can run a trial.

    Returns the private folder of a Ray this call started (for
    :func:`tunedp.run.ray_backend.stop_ray`), else ``None``. A TCP probe with a
    timeout comes first, so an address where nothing listens is one line and
    nothing charged — not minutes of GCS retries. A cluster without the
    CPUs/GPUs one trial asks for (``resources``) is refused here too.
    """
    if address is not None:
        _probe(address, timeout_s)
    from tunedp.run.ray_backend import check_resources, ensure_ray, stop_ray

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


# ---------------------------------------------------------------------------- all of it


def run_preflight(
    plan: SearchPlan,
    *,
    model: bool = True,
    max_concurrent: int | None = None,
    output: Path | None = None,
    force: bool = False,
) -> PreflightResult:
    """The checks ``tunedp plan`` and the driver share (Ray and the ledger are the driver's own)."""
    check_output(output, force=force)
    check_data_files(plan.config.workload)
    concurrency = _concurrency(plan, max_concurrent)
    corners, seconds = check_model_and_optimizer(plan, concurrency=concurrency) if model else (0, None)
    warnings = tuple(warning for warning in (score_noise_warning(plan), learning_noise_warning(plan)) if warning)

    def wall(quantile: float | None) -> float | None:
        return None if seconds is None else estimate_wall_seconds(plan, seconds, concurrency, quantile=quantile)

    return PreflightResult(
        step_seconds=seconds,
        corners=corners,
        concurrency=concurrency,
        estimated_wall_s=wall(None),
        estimated_wall_s_median=wall(0.5),
        estimated_wall_s_p90=wall(0.9),
        warnings=warnings,
    )
