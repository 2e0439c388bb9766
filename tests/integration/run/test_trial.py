"""The trial runner on real digits data: it learns, it accounts exactly, it releases only noisy scores."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from search_helpers import small_config

from tunedp.accounting.epsilon import pld_epsilon, rdp_epsilon
from tunedp.config.space import optimizer_hyperparameters
from tunedp.optim.lr_schedule import ConstantLr
from tunedp.planning import plan_search
from tunedp.run.trial import EvaluationReport, TrialError, TrialSettings, run_trial
from tunedp.workloads import resolve_workload
from tunedp.workloads.metrics import correct_count


def _settings(
    evaluations: int = 2, seed: int = 7, validation: dict | None = None, epochs: int = 10, **hyper: float
) -> TrialSettings:
    # Public validation is allowed only for a workload declaring a public validation source.
    workload = "workload_fixtures:DIGITS_PUBLIC_VALIDATION" if validation == {"policy": "public"} else "digits"
    config = small_config(
        workload=workload,
        training={"epochs": epochs, "expected_batch_size": 200, "evaluations": evaluations},
        validation=validation or {"policy": "private", "score_noise_multiplier": 20.0},
        budget={"epsilon": 4.0, "delta": 1e-5},
    )
    plan = plan_search(config)
    point = {"step_size": hyper.get("step_size", 0.3), "clip_norm": hyper.get("clip_norm", 1.0)}
    return TrialSettings(
        workload=config.workload,
        optimizer="dp_sgd",
        hyperparameters=optimizer_hyperparameters(point, config),
        plan=plan.trial,
        seed=seed,
    )


def _exact_validation_accuracy(state: dict[str, torch.Tensor]) -> float:
    workload = resolve_workload("digits")
    model = workload.build_model()
    model.load_state_dict(state)
    splits = workload.load()
    with torch.no_grad():
        outputs = model(splits.validation.inputs)
    return correct_count(outputs, splits.validation.targets) / len(splits.validation)


def test_a_digits_trial_learns_and_accounts_exactly_what_was_planned() -> None:
    settings = _settings()
    reports: list[EvaluationReport] = []
    result = run_trial(settings, report=reports.append)

    # Learns: 10 classes, chance is 0.1.
    assert result.test_metric > 0.6
    assert result.steps == settings.plan.steps
    assert [r.step for r in reports] == list(settings.plan.evaluation_steps)
    assert reports[-1].is_last and not reports[0].is_last
    assert [r.released_score for r in reports] == result.released_scores

    # The DpEvent of what ran equals the planned one (checked by two accountants).
    planned = settings.plan.dp_event()
    assert rdp_epsilon(result.dp_event, 1e-5) == pytest.approx(rdp_epsilon(planned, 1e-5), rel=1e-12)
    assert pld_epsilon(result.dp_event, 1e-5) == pytest.approx(pld_epsilon(planned, 1e-5), rel=1e-9)

    # The released score is the noisy one, not the exact validation accuracy.
    exact = _exact_validation_accuracy(result.model_state)
    assert result.final_score != exact
    # ... and the noise has the planned scale: |noise| < 6σ/n on the accuracy.
    n_val = resolve_workload("digits").sizes.validation
    assert abs(result.final_score - exact) < 6 * 20.0 / n_val


def test_public_validation_releases_the_exact_score_for_free() -> None:
    settings = _settings(validation={"policy": "public"})
    assert settings.plan.score_releases == 0
    result = run_trial(settings)
    assert result.final_score == pytest.approx(_exact_validation_accuracy(result.model_state), abs=1e-12)
    steps_only = rdp_epsilon(settings.plan.dp_event(), 1e-5)
    assert rdp_epsilon(result.dp_event, 1e-5) == pytest.approx(steps_only, rel=1e-12)


def test_same_seed_same_result_and_another_seed_differs() -> None:
    first = run_trial(_settings(seed=3, evaluations=1, epochs=2))
    second = run_trial(_settings(seed=3, evaluations=1, epochs=2))
    other = run_trial(_settings(seed=4, evaluations=1, epochs=2))
    assert first.released_scores == second.released_scores
    assert first.test_metric == second.test_metric
    for name, tensor in first.model_state.items():
        assert torch.equal(tensor, second.model_state[name])
    assert any(not torch.equal(t, other.model_state[n]) for n, t in first.model_state.items())


def test_secure_noise_is_not_reproducible() -> None:
    settings = dataclasses.replace(_settings(seed=3, evaluations=1, epochs=2), seed=None)
    first, second = run_trial(settings), run_trial(settings)
    assert any(not torch.equal(t, second.model_state[n]) for n, t in first.model_state.items())


@pytest.mark.parametrize(
    ("hyper", "field"),
    [
        ({"lr": -0.1, "clip_norm": 1.0}, "lr"),
        ({"lr": 0.1, "clip_norm": 0.0}, "clip_norm"),
        ({"lr": 0.1, "clip_norm": 1.0, "momentum": 1.5}, "momentum"),
        ({"lr": math.nan, "clip_norm": 1.0}, "lr"),
    ],
)
def test_bad_hyperparameters_are_refused_before_training(hyper: dict[str, float], field: str) -> None:
    settings = dataclasses.replace(_settings(), hyperparameters=hyper)
    with pytest.raises(TrialError) as refused:
        run_trial(settings)
    message = str(refused.value)
    assert field in message and "\n" not in message


@pytest.mark.parametrize("rate", [0.0, 1.5, -0.1])
def test_a_sampling_rate_outside_0_1_is_refused(rate: float) -> None:
    plan = _settings().plan
    with pytest.raises(ValueError, match="sampling_rate"):
        dataclasses.replace(plan, sampling_rate=rate)


class _RecordsTrainingSet:
    """Sees the rows a trial draws its Poisson batches from (the runner's audit hook), changes nothing."""

    def __init__(self) -> None:
        self.rows: tuple[torch.Tensor, torch.Tensor] | None = None

    def wrap_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def extend_training_set(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.rows = (inputs.clone(), targets.clone())
        return inputs, targets


def _on_both_splits(settings: TrialSettings) -> TrialSettings:
    """``settings`` as a final run that releases no score and trains on train + validation."""
    sizes = resolve_workload("digits").sizes
    plan = dataclasses.replace(settings.plan, dataset_size=sizes.train + sizes.validation, evaluation_steps=())
    return dataclasses.replace(settings, plan=plan, train_on_validation=True)


def test_train_on_validation_samples_every_batch_from_both_splits() -> None:
    """The rows a final run trains on are the training split followed by the validation split, N of each."""
    settings = _on_both_splits(_settings(evaluations=1, epochs=2))
    seen = _RecordsTrainingSet()
    result = run_trial(settings, training_set_hook=seen)
    splits = resolve_workload("digits").load()
    assert seen.rows is not None
    inputs, targets = seen.rows
    assert inputs.shape[0] == settings.plan.dataset_size == len(splits.train) + len(splits.validation)
    assert torch.equal(inputs, torch.cat([splits.train.inputs, splits.validation.inputs]))
    assert torch.equal(targets, torch.cat([splits.train.targets, splits.validation.targets]))
    assert result.released_scores == [] and result.steps == settings.plan.steps
    # What ran is the planned event over N = train + validation (no score release in it).
    assert rdp_epsilon(result.dp_event, 1e-5) == pytest.approx(rdp_epsilon(settings.plan.dp_event(), 1e-5), rel=1e-12)


def test_train_on_validation_is_refused_where_the_plan_disagrees_or_a_score_is_released() -> None:
    both = _on_both_splits(_settings(evaluations=1, epochs=2))
    with pytest.raises(TrialError, match="dataset_size"):  # N counts validation, the trial would not
        run_trial(dataclasses.replace(both, train_on_validation=False))
    with pytest.raises(TrialError, match="dataset_size"):  # the trial would, N does not
        run_trial(dataclasses.replace(_settings(evaluations=1, epochs=2), train_on_validation=True))
    scored = dataclasses.replace(both, plan=dataclasses.replace(both.plan, evaluation_steps=(both.plan.steps,)))
    with pytest.raises(TrialError, match=r"training\.train_on_validation"):
        run_trial(scored)


# --- learning-rate schedules: post-processing of the noisy gradient, so the charge is unchanged


def _scheduled_digits_settings(schedule: dict | None) -> TrialSettings:
    training = {"epochs": 4, "expected_batch_size": 200}
    if schedule is not None:
        training["lr_schedule"] = schedule
    config = small_config(training=training, budget={"epsilon": 4.0, "delta": 1e-5})
    plan = plan_search(config)
    return TrialSettings(
        workload=config.workload,
        optimizer="dp_sgd",
        hyperparameters=optimizer_hyperparameters({"step_size": 0.3, "clip_norm": 1.0}, config),
        plan=plan.trial,
        seed=11,
        lr_schedule=config.training.lr_schedule,
    )


def test_a_schedule_changes_the_weights_not_the_charge() -> None:
    """Post-processing: the same plan (and the same noise, seeded) gives the same DpEvent, other weights."""
    constant, cosine = _scheduled_digits_settings(None), _scheduled_digits_settings({"kind": "cosine"})
    assert constant.plan == cosine.plan
    a, b = run_trial(constant), run_trial(cosine)
    assert rdp_epsilon(a.dp_event, 1e-5) == pytest.approx(rdp_epsilon(b.dp_event, 1e-5), rel=1e-12)
    assert math.isfinite(rdp_epsilon(b.dp_event, 1e-5))
    differs = [not torch.equal(a.model_state[k], b.model_state[k]) for k in a.model_state]
    assert any(differs)
    # Seeded and identical up to the schedule: with a constant "schedule" the weights match exactly.
    again = run_trial(dataclasses.replace(cosine, lr_schedule=ConstantLr()))
    assert all(torch.equal(a.model_state[k], again.model_state[k]) for k in a.model_state)
