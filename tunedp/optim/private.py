"""The embedding API: ``make_private`` bundles model, privatizer, update rule and noise plan.

One :class:`PrivateTrainer` owns every number whose combination is the DP
guarantee — sampling rate q, dataset size N (so the divisor qN), the σ_t
segments and the clip norms — and reads σ_t from the *same* segments the
accountant composes (``noise_multiplier_at``), so the noise added and the event
reported cannot drift apart. It refuses to step past the planned steps, and
``dp_event()`` reports exactly the steps taken so far. Batches are the
caller's: draw them with :func:`tunedp.optim.poisson.poisson_batches` at the same q.
This module knows nothing of Ray or MLflow.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import torch
from dp_accounting import dp_event
from torch import Tensor, nn

from tunedp.accounting.schedule import NoiseSegment, noise_multiplier_at
from tunedp.accounting.trial_event import steps_event
from tunedp.optim.lr_schedule import CONSTANT_LR, LrScheduleShape
from tunedp.optim.noise import make_generator
from tunedp.optim.per_sample import LossFn
from tunedp.optim.privatizer import Privatizer
from tunedp.optim.rules import build_update_rule
from tunedp.optim.update_rule import StepContext, UpdateRule

__all__ = ["PrivateTrainer", "make_private"]


def _check_segments(segments: tuple[NoiseSegment, ...]) -> None:
    if not segments:
        raise ValueError("Expected segments to hold at least one NoiseSegment")
    for index, segment in enumerate(segments):
        sigma = segment.noise_multiplier
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"Expected segments[{index}].noise_multiplier={sigma} >= 0")
        if isinstance(segment.steps, bool) or not isinstance(segment.steps, int) or segment.steps < 1:
            raise ValueError(f"Expected segments[{index}].steps={segment.steps!r} to be an integer >= 1")


def _prefix(segments: tuple[NoiseSegment, ...], steps: int) -> tuple[NoiseSegment, ...]:
    """The first ``steps`` steps of ``segments`` (the last one cut short)."""
    taken: list[NoiseSegment] = []
    remaining = steps
    for segment in segments:
        if remaining <= 0:
            break
        count = min(segment.steps, remaining)
        taken.append(NoiseSegment(noise_multiplier=segment.noise_multiplier, steps=count))
        remaining -= count
    return tuple(taken)


class PrivateTrainer:
    """Private steps on the user's ``model`` (trained in place) within a fixed noise plan.

    Build it with :func:`make_private`. ``segments`` is the whole plan;
    ``steps_taken`` how much of it has run.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        rule: UpdateRule,
        privatizer: Privatizer,
        sampling_rate: float,
        dataset_size: int,
        segments: tuple[NoiseSegment, ...],
        lr_schedule: LrScheduleShape = CONSTANT_LR,
    ) -> None:
        self.model = model
        self.rule = rule
        self.privatizer = privatizer
        self.sampling_rate = sampling_rate
        self.dataset_size = dataset_size
        self.segments = segments
        self.planned_steps = sum(segment.steps for segment in segments)
        self.lr_schedule = lr_schedule
        self.steps_taken = 0

    @property
    def expected_batch_size(self) -> float:
        """qN: the divisor of every noisy gradient sum."""
        return self.sampling_rate * self.dataset_size

    def step(self, inputs: Tensor, targets: Tensor, loss_fn: LossFn) -> None:
        """One private step on a Poisson batch (it may be empty).

        ``loss_fn(outputs, targets)`` is called on ONE example at a time (a batch
        of one: outputs ``(1, ...)``, targets ``(1, ...)``); mean, sum or no
        reduction all give that example's loss, and its gradient is what is
        clipped. E.g. ``torch.nn.functional.cross_entropy``.
        """
        if self.steps_taken >= self.planned_steps:
            raise RuntimeError(
                f"all {self.planned_steps} planned steps are taken; the privacy plan covers no more "
                "(make_private with more steps)"
            )
        step = self.steps_taken
        sigma = noise_multiplier_at(self.segments, step)
        clipping = self.rule.clipping(step)
        gradients = self.privatizer.privatize(
            inputs,
            targets,
            loss_fn,
            clip_norm=clipping.clip_norm,
            noise_multiplier=sigma,
            hook=clipping.hook,
        )
        context = StepContext(
            step=step,
            noise_multiplier=sigma,
            clip_norm=clipping.clip_norm,
            expected_batch_size=self.expected_batch_size,
            lr_scale=self.lr_schedule.factor(step, self.planned_steps),
        )
        self.rule.update(self.privatizer.parameters, gradients, context)
        self.steps_taken += 1

    def dp_event(self) -> dp_event.DpEvent:
        """The DpEvent of the steps actually taken (``NoOpDpEvent`` before the first)."""
        return steps_event(self.sampling_rate, _prefix(self.segments, self.steps_taken))


def make_private(
    model: nn.Module,
    *,
    optimizer: str,
    hyperparameters: Mapping[str, float],
    sampling_rate: float,
    dataset_size: int,
    segments: tuple[NoiseSegment, ...] | None = None,
    noise_multiplier: float | None = None,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    secure: bool | None = None,
    chunk_size: int | None = None,
    clipping: str = "auto",
    lr_schedule: LrScheduleShape = CONSTANT_LR,
) -> PrivateTrainer:
    """A :class:`PrivateTrainer` for ``model`` with update rule ``optimizer`` (see ``UPDATE_RULES``).

    The noise plan is either ``segments`` (a σ_t schedule, e.g. from
    ``noise_segments``) or a constant ``noise_multiplier`` for ``steps`` steps.
    σ = 0 is accepted for non-private baselines; its event has ε = ∞.
    Noise is secure by default: unless a ``generator`` is given (reproducible,
    for tests), it comes from a generator seeded with OS entropy (see
    :func:`tunedp.optim.make_generator` for what that does and does not
    guarantee). ``secure=False`` without a generator uses torch's global one.
    ``chunk_size`` bounds how many examples are processed at once (default:
    ``DEFAULT_CHUNK_SIZES`` of the method, 256 for vmap, 2560 for ghost; a batch runs in equal passes).
    ``clipping`` picks how per-example clipping is computed (``CLIPPING_METHODS``):
    ``"ghost"`` (book-keeping ghost clipping, one batched backward), ``"vmap"``
    (materialised per-example gradients) or ``"auto"``, ghost where the model
    allows it; the result and the privacy guarantee are the same.
    ``lr_schedule`` (:mod:`tunedp.optim.lr_schedule`, e.g. ``CosineLr()``) multiplies
    every learning rate of the rule at each step over the planned length; it is
    a public function of the step, so the DpEvent does not change.
    """
    if isinstance(sampling_rate, bool) or not (isinstance(sampling_rate, numbers.Real) and 0 < sampling_rate <= 1):
        raise ValueError(f"Expected sampling_rate={sampling_rate!r} in (0, 1]")
    if isinstance(dataset_size, bool) or not isinstance(dataset_size, numbers.Integral) or dataset_size < 1:
        raise ValueError(f"Expected dataset_size={dataset_size!r} to be an integer >= 1")
    if segments is None:
        if noise_multiplier is None or steps is None:
            raise ValueError("Give either segments, or noise_multiplier together with steps")
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise ValueError(f"Expected steps={steps!r} to be an integer >= 1")
        segments = (NoiseSegment(noise_multiplier=float(noise_multiplier), steps=int(steps)),)
    elif noise_multiplier is not None or steps is not None:
        raise ValueError("Give either segments, or noise_multiplier with steps, not both")
    segments = tuple(segments)
    _check_segments(segments)
    if secure and generator is not None:
        raise ValueError("secure=True takes no generator: it seeds its own from OS entropy")
    if secure is None:
        secure = generator is None  # private by default: a known seed only when the caller passes one
    if secure:
        device = next(iter(model.parameters()), torch.empty(0)).device
        generator = make_generator(secure=True, device=device)
    rule = build_update_rule(optimizer, hyperparameters)
    rule.check_segments(segments)
    privatizer = Privatizer(
        model,
        expected_batch_size=float(sampling_rate) * dataset_size,
        chunk_size=chunk_size,
        generator=generator,
        clipping=clipping,
    )
    return PrivateTrainer(
        model=model,
        rule=rule,
        privatizer=privatizer,
        sampling_rate=float(sampling_rate),
        dataset_size=int(dataset_size),
        segments=segments,
        lr_schedule=lr_schedule,
    )
