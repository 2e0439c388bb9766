"""The ``training:`` and ``resources:`` sections: how every trial trains and what it asks Ray for.

Neither is searched: a trial's length, batch geometry, noise schedule and
learning-rate schedule are the same for every trial, so every trial has the
same DpEvent (what repeat-and-select and the planned composition assume).
:class:`Resources` changes where a trial runs, never what it costs.

Imports neither torch nor Ray nor MLflow.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from tunedp.accounting.schedule import ConstantSchedule, NoiseSchedule
from tunedp.config.strict import STRICT
from tunedp.optim.lr_schedule import ConstantLr, LrSchedule

__all__ = ["Resources", "Training"]


class Training(BaseModel):
    """The fixed length and batch geometry of every trial (not searched).

    Sampling rate and length are fixed across trials so that every trial has
    the same DpEvent — what repeat-and-select and the planned composition
    assume. σ is not here: it is calibrated from the budget.
    """

    model_config = STRICT
    epochs: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    steps: int | None = Field(default=None, ge=1)
    expected_batch_size: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    sampling_rate: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    clip_norm: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    noise_schedule: NoiseSchedule = Field(default_factory=ConstantSchedule)
    #: Multiplies every learning rate by a public function of the step (post-processing: no
    #: change to any DpEvent); each trial, and a staged search's final run, decays over its own length.
    lr_schedule: LrSchedule = Field(default_factory=ConstantLr)
    segment_steps: int | None = Field(default=None, ge=1)
    evaluations: int = Field(default=1, ge=1, le=1000)
    #: A staged search's final run with ``final_score: none`` releases no validation score, so
    #: the validation rows have nothing left to do: train on them too (N = train + validation).
    #: The charge is the same kind of event over a larger N (a smaller q for the same batch);
    #: refused anywhere a score is read from the validation split (tunedp.planning).
    train_on_validation: bool = False

    @model_validator(mode="after")
    def _one_of_each(self) -> Training:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("set exactly one of training.epochs or training.steps")
        if (self.expected_batch_size is None) == (self.sampling_rate is None):
            raise ValueError("set exactly one of training.expected_batch_size or training.sampling_rate")
        return self


class Resources(BaseModel):
    """What one trial asks Ray for: CPUs (its torch threads) and GPUs (fractions share one GPU).

    ``cpus`` is the least a trial gets: when a search runs fewer trials at
    once than the cluster has room for (a staged search's final run,
    ``--max-concurrent 1``), each takes its share of the idle cores
    (:func:`tunedp.run.ray_backend.cluster.trial_cpus`).

    A trial that Ray gives a GPU trains on it (model, batches and noise on
    the device); requesting more GPUs than the cluster has is refused before
    the charge.
    """

    model_config = STRICT
    cpus: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    gpus: float = Field(default=0.0, ge=0, allow_inf_nan=False)
