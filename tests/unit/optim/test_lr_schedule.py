"""Learning-rate schedules: closed forms, config validation, and no effect on what a trial is charged."""

from __future__ import annotations

import pytest
import torch
from search_helpers import small_config

from tunedp.config import ConfigError, parse_config
from tunedp.optim import make_private
from tunedp.optim.lr_schedule import ConstantLr, CosineLr, LinearLr


@pytest.mark.parametrize("steps", [1, 7, 1080])
def test_cosine_is_torch_cosine_annealing(steps: int) -> None:
    """Independent: torch's CosineAnnealingLR with T_max = steps and eta_min = final · lr."""
    lr, final = 2.0, 0.05
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=final * lr)
    schedule = CosineLr(final_fraction=final)
    for step in range(steps):
        assert lr * schedule.factor(step, steps) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-9)
        optimizer.step()
        scheduler.step()


def test_linear_decay_and_warmup_closed_form() -> None:
    schedule = LinearLr(final_fraction=0.1, warmup_fraction=0.2)
    factors = [schedule.factor(step, 10) for step in range(10)]
    # Warm-up over 2 steps (1/2, 1), then 1 − 0.9·t/8 for t = 0..7 past the warm-up.
    expected = [0.5, 1.0] + [0.1 + 0.9 * (1 - t / 8) for t in range(8)]
    assert factors == pytest.approx(expected, rel=1e-12)
    assert max(factors) == 1.0 and min(factors) > 0.1


def test_constant_is_one_and_the_default() -> None:
    assert [ConstantLr().factor(s, 5) for s in range(5)] == [1.0] * 5
    trainer = make_private(
        torch.nn.Linear(2, 2),
        optimizer="dp_sgd",
        hyperparameters={},
        sampling_rate=0.5,
        dataset_size=4,
        noise_multiplier=1.0,
        steps=5,
    )
    assert trainer.lr_schedule == ConstantLr()


def test_a_step_outside_the_run_is_an_error() -> None:
    with pytest.raises(ValueError, match="step=5 < steps=5"):
        CosineLr().factor(5, 5)


def test_config_accepts_a_schedule_and_names_the_field_when_wrong() -> None:
    config = small_config(training={"epochs": 2, "expected_batch_size": 200, "lr_schedule": {"kind": "cosine"}})
    assert isinstance(config.training.lr_schedule, CosineLr)
    assert small_config().training.lr_schedule == ConstantLr()
    data = config.model_dump(mode="json")
    data["training"]["lr_schedule"] = {"kind": "cosine", "final_fraction": 1.5}
    with pytest.raises(ConfigError, match=r"training\.lr_schedule"):
        parse_config(data, source="test")
    data["training"]["lr_schedule"] = {"kind": "step"}
    with pytest.raises(ConfigError, match=r"training\.lr_schedule"):
        parse_config(data, source="test")
