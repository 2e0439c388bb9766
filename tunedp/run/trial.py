"""The trial runner: one DP training run on a workload, releasing scores as planned.

Given a workload, optimizer settings and the :class:`TrialPlan` (sampling rate,
σ_t segments, evaluation points, score noise), it trains with
:mod:`tunedp.optim` on Poisson batches and, at each planned evaluation,
releases the validation score: a Gaussian noisy count of correct predictions
(private validation; part of the trial's DpEvent) or the exact accuracy
(public validation; free). It returns the model state, the released scores,
the test metric and the DpEvent of what actually ran.

What a trial computes but never releases — training losses on private
batches, the exact private validation accuracy — is not returned at all; the
search driver decides which of the returned figures leave it, by mode.

Nothing here imports Ray or MLflow: the driver plugs Ray in through the
``report`` callback.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import torch
from dp_accounting import dp_event

from tunedp.accounting.trial_event import TrialPlan, with_score_releases
from tunedp.errors import UserFacingError
from tunedp.optim.lr_schedule import CONSTANT_LR, LrScheduleShape
from tunedp.workloads.registry import WorkloadReference, resolve_workload

__all__ = ["EvaluationReport", "TrainingSetHook", "TrialError", "TrialResult", "TrialSettings", "run_trial"]


class TrialError(UserFacingError):
    """Bad trial settings, refused before any data is read (one line, names the field).

    A user-facing error: its message is built from the settings alone, so
    :mod:`tunedp.run.failures` may show it under every release policy.
    """


@dataclass(frozen=True, kw_only=True)
class TrialSettings:
    """One point of a search, as the trial runner needs it."""

    #: What the config's ``workload:`` holds (:func:`tunedp.workloads.resolve_workload`):
    #: the driver and every worker resolve this same reference.
    workload: WorkloadReference
    optimizer: str
    hyperparameters: Mapping[str, float]
    plan: TrialPlan
    model: str | None = None
    #: ``None`` (the default, private): initialisation, Poisson batches and
    #: every noise draw come from fresh OS entropy. An integer makes the trial
    #: reproducible and therefore *not private* (debugging and tests only).
    seed: int | None = None
    #: Where to train: "cpu" or a CUDA device ("cuda", "cuda:0"); model, batches and noise live there.
    device: str = "cpu"
    #: The config's ``training.lr_schedule``, over this trial's planned steps.
    lr_schedule: LrScheduleShape = CONSTANT_LR
    #: The config's ``training.train_on_validation``: Poisson batches are drawn from the
    #: training and validation rows together (the plan's N counts both); no score is released.
    train_on_validation: bool = False


@dataclass(frozen=True, kw_only=True)
class EvaluationReport:
    """One planned evaluation: what is released at ``step`` (1-based)."""

    index: int
    step: int
    epoch: float
    released_score: float
    is_last: bool


@dataclass(kw_only=True)
class TrialResult:
    """What a trial produced. Only ``released_scores`` are releases of the private
    validation data; the rest is for the driver to disclose (or not) by mode."""

    released_scores: list[float]
    #: Exact accuracy on the test split (treated as public; never used for
    #: selection); ``None`` when the caller evaluates only the selected model.
    test_metric: float | None
    model_state: dict[str, torch.Tensor]
    dp_event: dp_event.DpEvent
    steps: int
    wall_time_s: float
    train_seconds: float

    @property
    def final_score(self) -> float:
        return self.released_scores[-1] if self.released_scores else math.nan


class TrainingSetHook(Protocol):
    """Audit only (:mod:`tunedp.audit`): adds the auditor's canaries to what one trial trains on.

    The canaries then take the trial's own path — Poisson sampling over the
    extended rows, per-example gradients, clipping, noise, update rule — so an
    audit measures the code a search runs. The divisor qN stays the plan's
    (a public constant under add/remove adjacency). Searches never pass one.
    """

    def wrap_model(self, model: torch.nn.Module) -> torch.nn.Module: ...

    def extend_training_set(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


def check_settings(settings: TrialSettings) -> None:
    """Refuse bad hyperparameters before any data is read."""
    from tunedp.optim import build_update_rule

    plan = settings.plan
    if not 0 < plan.sampling_rate <= 1:
        raise TrialError(f"sampling_rate: {plan.sampling_rate} must be in (0, 1]")
    try:
        build_update_rule(settings.optimizer, settings.hyperparameters)
    except ValueError as error:
        raise TrialError(str(error)) from None


def run_trial(
    settings: TrialSettings,
    *,
    report: Callable[[EvaluationReport], None] | None = None,
    evaluate_test: bool = True,
    training_set_hook: TrainingSetHook | None = None,
) -> TrialResult:
    """Train one model under ``settings.plan`` and release its validation scores.

    ``evaluate_test=False`` skips the test-split evaluation: a search measures
    only the model it selects (:func:`test_metric_of`), not every trial's.
    ``training_set_hook`` is for audits only (see :class:`TrainingSetHook`).
    """
    from tunedp.optim import make_private
    from tunedp.optim.poisson import PoissonSampler

    started = time.perf_counter()
    check_settings(settings)
    plan = settings.plan
    workload = resolve_workload(settings.workload)
    rows = workload.sizes.training_rows(on_validation=settings.train_on_validation)
    if rows != plan.dataset_size:
        raise TrialError(
            f"plan: dataset_size={plan.dataset_size} but workload {workload.name!r} "
            f"declares {rows} training examples"
            + (" (training and validation splits)" if settings.train_on_validation else "")
        )
    if settings.train_on_validation and plan.evaluation_steps:
        raise TrialError(
            "training.train_on_validation: this trial releases validation scores, so it cannot train on "
            "the validation split; drop train_on_validation"
        )
    device = _device(settings.device)
    splits = workload.load()

    init, sampling, noise, score_noise = _generators(settings.seed, device)
    torch.manual_seed(init)
    model = workload.build_model(settings.model)
    if training_set_hook is not None:
        model = training_set_hook.wrap_model(model)
    model = model.to(device)

    trainer = make_private(
        model,
        optimizer=settings.optimizer,
        hyperparameters=settings.hyperparameters,
        sampling_rate=plan.sampling_rate,
        dataset_size=plan.dataset_size,
        segments=plan.segments,
        generator=noise,
        lr_schedule=settings.lr_schedule,
    )
    # The training rows, then (train_on_validation) the validation rows: gathered where they are, not
    # concatenated, so a memory-mapped feature table is never copied (one map per worker process).
    inputs, targets = [splits.train.inputs], [splits.train.targets]
    if settings.train_on_validation:
        inputs.append(splits.validation.inputs)
        targets.append(splits.validation.targets)
    if training_set_hook is not None:
        extended = training_set_hook.extend_training_set(torch.cat(inputs), torch.cat(targets))
        inputs, targets = [extended[0]], [extended[1]]
    # Rows: plan.dataset_size, unless an audit added canaries.
    batches = PoissonSampler(
        [[x.to(device) for x in inputs], [y.to(device) for y in targets]],
        sampling_rate=plan.sampling_rate,
        generator=sampling,
    )
    validation_x, validation_y = splits.validation.inputs.to(device), splits.validation.targets.to(device)
    evaluation_steps = set(plan.evaluation_steps)
    steps_per_epoch = max(1, round(1.0 / plan.sampling_rate))
    released: list[float] = []
    train_seconds = 0.0
    for step in range(1, plan.steps + 1):
        tick = time.perf_counter()
        batch_x, batch_y = batches.draw()  # views of buffers the next draw overwrites: used within this step
        trainer.step(batch_x, batch_y, workload.per_example_loss)
        train_seconds += time.perf_counter() - tick
        if step in evaluation_steps:
            score = _release_score(
                model,
                validation_x,
                validation_y,
                plan.score_noise_multiplier,
                score_noise,
                workload.correct,
            )
            released.append(score)
            if report is not None:
                report(
                    EvaluationReport(
                        index=len(released) - 1,
                        step=step,
                        epoch=step / steps_per_epoch,
                        released_score=score,
                        is_last=step == plan.steps,
                    )
                )
    test_metric = (
        _exact_accuracy(model, splits.test.inputs.to(device), splits.test.targets.to(device), workload.correct)
        if evaluate_test
        else None
    )
    # The event of what actually ran: the optimizer's steps and the releases made.
    event = with_score_releases(trainer.dp_event(), plan.score_noise_multiplier, len(released))
    return TrialResult(
        released_scores=released,
        test_metric=test_metric,
        model_state={k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()},
        dp_event=event,
        steps=trainer.steps_taken,
        wall_time_s=time.perf_counter() - started,
        train_seconds=train_seconds,
    )


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrialError(f"device: {name!r} is not a torch device; use 'cpu' or 'cuda'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrialError(f"device: {name!r} requested but torch sees no CUDA device; use 'cpu'")
    return device


def _generators(
    seed: int | None, device: torch.device | None = None
) -> tuple[int, torch.Generator, torch.Generator, torch.Generator]:
    """The initialisation seed and the batch, noise and score-noise generators of one trial.

    Private (``seed=None``): each from its own OS-entropy draw, so no two
    trials — not even two at the same hyperparameters — share batches or noise.
    The gradient-noise generator lives on the training ``device`` (noise is
    drawn where the gradients are); batches and score noise are drawn on the CPU.
    """
    if seed is None:
        draws = [secrets.randbits(63) for _ in range(4)]
    else:
        draws = [seed, seed + 1, seed + 2, seed + 3]
    sampling = torch.Generator().manual_seed(draws[1])
    noise = torch.Generator(device=device or "cpu").manual_seed(draws[2])
    score = torch.Generator().manual_seed(draws[3])
    return draws[0], sampling, noise, score


def test_metric_of(
    workload_reference: WorkloadReference, variant: str | None, state: Mapping[str, torch.Tensor]
) -> float:
    """Exact test accuracy of a trained state dict: a public figure for a public test split,
    "exact, outside the ε guarantee" for one carved from the protected data (``Workload.test_label``)."""
    workload = resolve_workload(workload_reference)
    model = workload.build_model(variant)
    model.load_state_dict(dict(state))
    test = workload.load().test
    return _exact_accuracy(model, test.inputs, test.targets, workload.correct)


@torch.no_grad()
def _exact_correct(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    correct_count: Callable[[torch.Tensor, torch.Tensor], int],
) -> int:
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, inputs.shape[0], 4096):
        outputs = model(inputs[start : start + 4096])
        correct += correct_count(outputs, targets[start : start + 4096])
    model.train(was_training)
    return correct


def _exact_accuracy(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    correct_count: Callable[[torch.Tensor, torch.Tensor], int],
) -> float:
    return _exact_correct(model, inputs, targets, correct_count) / max(1, int(targets.shape[0]))


def _release_score(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    score_noise_multiplier: float | None,
    generator: torch.Generator,
    correct_count: Callable[[torch.Tensor, torch.Tensor], int],
) -> float:
    """The validation accuracy as released: a Gaussian noisy count when private.

    Adding or removing one validation example changes the count of correct
    predictions by at most 1, so N(0, σ_score²) noise on the count is the
    Gaussian mechanism with noise multiplier σ_score. Dividing by the public
    split size and clipping to [0, 1] are post-processing.
    """
    correct = _exact_correct(model, inputs, targets, correct_count)
    size = max(1, int(targets.shape[0]))
    if score_noise_multiplier is None:
        return correct / size
    noisy = correct + score_noise_multiplier * float(torch.randn((), generator=generator))
    return min(1.0, max(0.0, noisy / size))
