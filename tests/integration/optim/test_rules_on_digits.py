"""Every update rule reduces the loss on real data (scikit-learn's digits) with σ = 0.5, in seconds."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional

from tunedp.optim import UPDATE_RULES, make_generator, make_private
from tunedp.optim.poisson import poisson_batches

SETTINGS: dict[str, dict[str, float]] = {
    "dp_sgd": {"lr": 1.0, "momentum": 0.5, "clip_norm": 1.0},
    "dp_adam": {"lr": 0.02, "clip_norm": 1.0},
    "dp_adamwosm": {"lr": 0.005, "clip_norm": 1.0},
    "dp2_rmsprop": {"lr": 1.0, "delay": 10, "clip_norm_2": 1.0, "lr_2": 0.2, "eps": 1e-3},
}
STEPS, RATE, SIGMA = 60, 0.05, 0.5


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    features, labels = load_digits(return_X_y=True)
    return torch.tensor(features / 16.0, dtype=torch.float32), torch.tensor(labels)


@pytest.mark.parametrize("name", UPDATE_RULES)
def test_rule_reduces_the_loss_on_digits(digits, name):
    inputs, labels = digits
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    trainer = make_private(
        model,
        optimizer=name,
        hyperparameters=SETTINGS[name],
        sampling_rate=RATE,
        dataset_size=len(inputs),
        noise_multiplier=SIGMA,
        steps=STEPS,
        generator=make_generator(seed=1),
    )
    with torch.no_grad():
        before = functional.cross_entropy(model(inputs), labels).item()
    batches = poisson_batches(
        (inputs, labels), sampling_rate=RATE, steps=STEPS, generator=torch.Generator().manual_seed(2)
    )
    for batch_inputs, batch_labels in batches:
        trainer.step(batch_inputs, batch_labels, functional.cross_entropy)
    with torch.no_grad():
        after = functional.cross_entropy(model(inputs), labels).item()
        accuracy = (model(inputs).argmax(1) == labels).float().mean().item()
    assert after < 0.7 * before, (before, after)
    assert accuracy > 0.5
