"""The pre-flight's model and optimizer check: every variant, every corner of the space, one synthetic step.

The model variant builds, and the update rule constructs with every fixed
value and with the corners of every searched range; one
forward/backward/clip/noise step runs on a *synthetic* batch of the
workload's declared ``input_shape`` at each corner (shape and type errors
surface here), and the model's output has one logit per declared class.
The step is also timed: ``tunedp plan``'s wall-time estimate starts there
(:mod:`~tunedp.run.preflight.estimate`). Nothing here reads a private row.

Imports torch only inside the functions that need it.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tunedp.config import ChoiceParam, FixedParam, LogUniformParam, SearchConfig, UniformParam
from tunedp.config.space import optimizer_hyperparameters
from tunedp.errors import one_line
from tunedp.run.preflight.checks import PreflightError

if TYPE_CHECKING:
    from tunedp.planning.single_stage import SearchPlan

__all__ = ["CORNER_BATCH", "MAX_CORNERS", "MAX_TIMED_BATCH", "check_model_and_optimizer", "hyperparameter_corners"]

#: Corners of the searched box tried at most (2^k grows fast; beyond this, a spread subset).
MAX_CORNERS = 64
#: Rows of the synthetic batch a corner's step runs on (its cost, not its result, matters).
CORNER_BATCH = 8
#: Largest synthetic batch timed for the wall-time estimate.
MAX_TIMED_BATCH = 4096


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
