"""Canaries for the one-run audit: examples the auditor adds (each with probability 1/2) and later scores.

Two designs, by what the auditor can see:

* :class:`GradientCanaries` — **white-box** (the auditor owns the model code
  and reads the final parameters). The model gets one extra parameter vector,
  ``canary_coordinates``, that no real example touches; canary j is a
  training row whose per-example gradient is the Dirac direction −g·e_j.
  For the m *audit* canaries g = 10·C (:data:`CANARY_GRADIENT_FACTOR`), so a
  correct clip brings it to exactly C·(−e_j), and a missing clip leaves ten
  times the sensitivity the noise is calibrated to — a leak the ε lower
  bound shows. Its score is the final value of coordinate j: every step that
  samples canary j pushes it up by η·C/(qN), every step adds noise of std
  η·σC/(qN). This is the strongest canary DP-SGD allows (one example's whole
  clipped budget on one otherwise unused direction), so a meaningful bound
  comes from one short run. The canary is an ordinary row of the batch: it
  goes through the trial's Poisson sampling, per-example gradients,
  clipping and noise.

  The optional *reference* canaries have g = 0.9·C
  (:data:`REFERENCE_GRADIENT_FACTOR`): below the clip, so a clip at C (or
  anything above) leaves them untouched. Under a linear update rule the
  mean score gap (in − out) of the audit canaries over that of the
  references is then C / 0.9·C, whatever η, qN, momentum or the step count:
  a ratio above it measures a clip above C — a sensitivity the ε lower
  bound alone cannot show at a claim of 1 (:mod:`tunedp.audit.clip_check`).
* :class:`MislabelledCanaries` — **black-box** (the auditor sees only the
  model's outputs). Canary j is an input the training split does not hold,
  with a wrong label; its score is minus its loss on the final model.
  Much weaker: DP-SGD must have memorised the wrong label for it to show.

Both draw membership (each canary in with probability 1/2) from their own
generator: OS entropy unless a seed is given (tests only).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CANARY_GRADIENT_FACTOR",
    "REFERENCE_GRADIENT_FACTOR",
    "CanaryModel",
    "GradientCanaries",
    "MislabelledCanaries",
    "draw_membership",
]

#: Canary rows are images whose every pixel is −(MARKER_OFFSET + j): far below any
#: standardised pixel (those lie in about [−1, 3]), exact in float32 up to 2²⁴.
MARKER_OFFSET = 1000.0
#: How far above the clip norm an audit canary's raw gradient is. Any factor > 1
#: gives exactly C after a correct clip; 10 makes a *missing* clip a tenfold
#: sensitivity, which the ε lower bound catches at claims of 1 and 4 (with 2 it
#: did not: benchmarks/README.md, "Audit power").
CANARY_GRADIENT_FACTOR = 10.0
#: A reference canary's raw gradient, in units of C: below the clip, so clipping
#: at C or above leaves it exactly as it is (see :mod:`tunedp.audit.clip_check`).
REFERENCE_GRADIENT_FACTOR = 0.9
#: The name of the parameter that holds the canaries' coordinates.
CANARY_PARAMETER = "canary_coordinates"


def draw_membership(canaries: int, seed: int | None) -> npt.NDArray[np.bool_]:
    """Which canaries are included: independent fair coins (OS entropy unless ``seed``)."""
    if canaries < 1:
        raise ValueError(f"Expected canaries={canaries} >= 1")
    rng = np.random.default_rng(secrets.randbits(128) if seed is None else seed)
    return rng.random(canaries) < 0.5


class CanaryModel(nn.Module):
    """The workload's model plus m canary coordinates; a real row's output is the model's, unchanged.

    For a canary row (recognised by its marker pixels) the output is a logit
    vector whose value is always 0 but whose gradient with respect to
    ``canary_coordinates[j]`` is ``gains[j]`` on class 0 (``a − a.detach()``:
    a straight-through term). With target class 0 the cross-entropy gradient
    is then the constant −gains[j]·(1 − 1/K)·e_j, and exactly zero on every
    model weight (``torch.where`` routes the canary row away from the model).
    Real rows get exactly zero gradient on the canary coordinates.
    """

    gains: Tensor

    def __init__(self, base: nn.Module, *, canaries: int, classes: int, gain: float | Sequence[float]) -> None:
        super().__init__()
        self.base = base
        self.canaries = canaries
        self.classes = classes
        gains = torch.full((canaries,), float(gain)) if isinstance(gain, float | int) else torch.tensor(gain)
        if gains.shape != (canaries,):
            raise ValueError(f"Expected {canaries} gains, got shape {tuple(gains.shape)}")
        # A buffer (moves with .to(device)) outside the state dict: not a parameter, not a result.
        self.register_buffer("gains", gains.to(torch.get_default_dtype()), persistent=False)
        self.canary_coordinates = nn.Parameter(torch.zeros(canaries))

    def forward(self, inputs: Tensor) -> Tensor:
        flat = inputs.flatten(1)
        marker = flat[:, 0]
        is_canary = marker <= -(MARKER_OFFSET - 0.5)
        # The model never sees the marker values (they would only saturate it).
        plain = torch.where(is_canary.view(-1, *([1] * (inputs.dim() - 1))), torch.zeros_like(inputs), inputs)
        outputs: Tensor = self.base(plain)
        index = (-marker - MARKER_OFFSET).round()
        onehot = (index.unsqueeze(1) == torch.arange(self.canaries, device=inputs.device)).to(inputs.dtype)
        coordinates = self.canary_coordinates
        straight_through = (onehot * (coordinates - coordinates.detach()) * self.gains.to(inputs.dtype)).sum(dim=1)
        canary_logits = F.pad(straight_through.unsqueeze(1), (0, self.classes - 1))
        return torch.where(is_canary.unsqueeze(1), canary_logits.to(outputs.dtype), outputs)


@dataclass(kw_only=True)
class GradientCanaries:
    """White-box Dirac gradient canaries (see the module docstring); the trial's training-set hook.

    ``clip_norm`` is the *claimed* C: an audit canary's raw gradient is
    ``CANARY_GRADIENT_FACTOR``·C, so that clipping, not the canary, sets its
    norm; a reference canary's is ``REFERENCE_GRADIENT_FACTOR``·C, below it.
    Coordinates 0..m−1 are the audit canaries, m..m+r−1 the references;
    ``included`` and :meth:`scores` cover all m + r in that order.
    """

    canaries: int
    classes: int
    clip_norm: float
    references: int = 0
    seed: int | None = None
    included: npt.NDArray[np.bool_] = field(init=False)

    def __post_init__(self) -> None:
        if not self.clip_norm > 0:
            raise ValueError(f"Expected clip_norm={self.clip_norm} > 0")
        if self.classes < 2:
            raise ValueError(f"Expected classes={self.classes} >= 2")
        if isinstance(self.references, bool) or not isinstance(self.references, int) or self.references < 0:
            raise ValueError(f"Expected references={self.references!r} to be an integer >= 0")
        self.included = draw_membership(self.canaries + self.references, self.seed)

    @property
    def total(self) -> int:
        """Audit canaries and references together: the length of ``canary_coordinates``."""
        return self.canaries + self.references

    def _gain(self, factor: float) -> float:
        # The straight-through logit's cross-entropy gradient is gain·(1 − 1/K): scale it to factor·C.
        return factor * self.clip_norm / (1.0 - 1.0 / self.classes)

    @property
    def gain(self) -> float:
        """Scale of an audit canary's straight-through logit: its gradient has norm ``CANARY_GRADIENT_FACTOR``·C."""
        return self._gain(CANARY_GRADIENT_FACTOR)

    @property
    def gains(self) -> list[float]:
        """Every coordinate's gain: the audit canaries', then the references'."""
        return [self.gain] * self.canaries + [self._gain(REFERENCE_GRADIENT_FACTOR)] * self.references

    def wrap_model(self, model: nn.Module) -> nn.Module:
        return CanaryModel(model, canaries=self.total, classes=self.classes, gain=self.gains)

    def extend_training_set(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        rows = torch.from_numpy(np.flatnonzero(self.included)).to(inputs.dtype)
        markers = (-(MARKER_OFFSET + rows)).view(-1, *([1] * (inputs.dim() - 1)))
        canary_inputs = markers.expand(rows.shape[0], *inputs.shape[1:]).to(inputs.device)
        canary_targets = torch.zeros(rows.shape[0], dtype=targets.dtype, device=targets.device)
        return torch.cat([inputs, canary_inputs]), torch.cat([targets, canary_targets])

    def scores(self, state: dict[str, Tensor]) -> npt.NDArray[np.float64]:
        """Canary j's score: the final value of its coordinate (higher = more likely trained on); all m + r."""
        return state[CANARY_PARAMETER].detach().double().cpu().numpy()


@dataclass(kw_only=True)
class MislabelledCanaries:
    """Black-box input-space canaries: held-out inputs with a wrong label, scored by −loss.

    ``inputs``/``labels`` are m examples outside the training split (e.g. the
    public test split); each canary's label is shifted by a random non-zero
    offset so it is wrong, and the score is minus its cross-entropy on the
    final model (a memorised wrong label has a low loss).
    """

    inputs: Tensor
    labels: Tensor
    classes: int
    seed: int | None = None
    included: npt.NDArray[np.bool_] = field(init=False)
    wrong_labels: Tensor = field(init=False)

    def __post_init__(self) -> None:
        if self.inputs.shape[0] != self.labels.shape[0]:
            raise ValueError("inputs and labels must hold the same number of canaries")
        count = int(self.labels.shape[0])
        self.included = draw_membership(count, self.seed)
        rng = np.random.default_rng(secrets.randbits(128) if self.seed is None else self.seed + 1)
        shift = torch.from_numpy(rng.integers(1, self.classes, size=count))
        self.wrong_labels = (self.labels + shift) % self.classes

    @property
    def canaries(self) -> int:
        return int(self.labels.shape[0])

    def wrap_model(self, model: nn.Module) -> nn.Module:
        return model

    def extend_training_set(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        rows = torch.from_numpy(np.flatnonzero(self.included))
        return (
            torch.cat([inputs, self.inputs.index_select(0, rows).to(inputs.dtype)]),
            torch.cat([targets, self.wrong_labels.index_select(0, rows).to(targets.dtype)]),
        )

    def scores_of(self, model: nn.Module) -> npt.NDArray[np.float64]:
        """−cross-entropy of each canary's wrong label under ``model`` (higher = more likely trained on)."""
        was_training = model.training
        model.eval()
        with torch.no_grad():
            losses = F.cross_entropy(model(self.inputs), self.wrong_labels, reduction="none")
        model.train(was_training)
        return (-losses).double().cpu().numpy()
